"""Running observation normaliser."""

from __future__ import annotations

import numpy as np
import torch

from spiking_dreamer.normalization import RunningNormalizer


def test_running_stats_match_numpy_over_all_batches() -> None:
    rng = np.random.default_rng(0)
    chunks = [rng.normal(3.0, 2.0, size=(n, 4)) for n in (1, 7, 50, 1, 13)]
    norm = RunningNormalizer(4)
    for c in chunks:
        norm.update(torch.as_tensor(c))
    data = np.concatenate(chunks)
    assert np.allclose(norm.mean.numpy(), data.mean(0))
    assert np.allclose(norm.var.numpy(), data.var(0))
    z = norm(torch.as_tensor(data, dtype=torch.float32)).numpy()
    assert np.allclose(z, (data - data.mean(0)) / np.sqrt(data.var(0) + 1e-8), atol=1e-4)


def test_clip_and_identity_before_any_update() -> None:
    norm = RunningNormalizer(2, clip=3.0)
    x = torch.tensor([[0.5, -10.0]])
    assert torch.allclose(norm(x), torch.tensor([[0.5, -3.0]]))


def test_state_dict_round_trip_restores_the_hot_path() -> None:
    a = RunningNormalizer(3, clip=5.0)
    a.update(torch.randn(100, 3) * 5 + 1)
    b = RunningNormalizer(3, clip=5.0)
    b.load_state_dict(a.state_dict())
    x = torch.randn(4, 3)
    assert torch.equal(a(x), b(x))
    assert torch.allclose(b.denormalize(b(x)), x, atol=1e-5)
