"""Tests for the population encoder in ``spiking_dreamer.snn.encoding``."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from torch import Tensor

from spiking_dreamer.snn.encoding import (
    ENCODER_THRESHOLD,
    PopulationEncoder,
    regular_spike_grads,
    regular_spikes,
)


def make_encoder(
    in_dim: int = 2, pop_dim: int = 5, encoding: str = "deterministic", **kwargs: Any
) -> PopulationEncoder:
    kwargs.setdefault("mean_range", (-2.0, 2.0))
    kwargs.setdefault("std", 0.5)
    return PopulationEncoder(in_dim, pop_dim, encoding=encoding, **kwargs)


# --------------------------------------------------------------------------------------------
# Receptive fields
# --------------------------------------------------------------------------------------------


def test_initial_means_and_stds() -> None:
    enc = make_encoder(in_dim=3, pop_dim=5)
    expected = torch.tensor([-2.0, -1.0, 0.0, 1.0, 2.0])
    assert enc.mean.shape == enc.std.shape == (3, 5)
    for row in enc.mean:
        torch.testing.assert_close(row, expected)
    assert torch.equal(enc.std, torch.full((3, 5), 0.5))
    assert enc.out_dim == 15

    default = PopulationEncoder(1, 4)
    torch.testing.assert_close(default.mean[0], torch.tensor([-3.0, -1.0, 1.0, 3.0]))
    torch.testing.assert_close(default.std[0], torch.full((4,), math.sqrt(0.15)))


def test_activation_hand_values() -> None:
    """``A = exp(-0.5 (x - mu)^2 / sigma^2)`` with sigma 0.5, i.e. ``exp(-2 (x - mu)^2)``,
    flattened dimension-major: index ``d * P + j``."""
    enc = make_encoder()
    act = enc.activation(torch.tensor([[0.0, 1.5]]))
    # d=0, x=0:   x - mu = (2, 1, 0, -1, -2)
    # d=1, x=1.5: x - mu = (3.5, 2.5, 1.5, 0.5, -0.5)
    exponents = [8.0, 2.0, 0.0, 2.0, 8.0, 24.5, 12.5, 4.5, 0.5, 0.5]
    expected = torch.tensor([[math.exp(-e) for e in exponents]])
    assert act.shape == (1, 10)
    torch.testing.assert_close(act, expected, rtol=1e-6, atol=0.0)


def test_activation_one_at_mean_and_exp_half_at_one_std() -> None:
    enc = make_encoder(in_dim=2, pop_dim=4)
    with torch.no_grad():  # distinct per-neuron widths
        enc.std.copy_(torch.tensor([[0.3, 0.5, 0.7, 0.9], [1.1, 0.2, 0.4, 0.6]]))
    for j in range(4):
        mu, sigma = enc.mean[:, j].detach(), enc.std[:, j].detach()
        idx = [d * 4 + j for d in range(2)]
        at_mean = enc.activation(mu.unsqueeze(0))
        assert at_mean.shape == (1, 8)
        torch.testing.assert_close(at_mean[0, idx], torch.ones(2))
        for sign in (1.0, -1.0):
            at_std = enc.activation((mu + sign * sigma).unsqueeze(0))
            torch.testing.assert_close(at_std[0, idx], torch.full((2,), math.exp(-0.5)))


def test_activation_batch_shape() -> None:
    enc = make_encoder(in_dim=3, pop_dim=6)
    act = enc.activation(torch.randn(7, 3, generator=torch.Generator().manual_seed(0)))
    assert act.shape == (7, 18)
    assert ((act > 0) & (act <= 1)).all()


# --------------------------------------------------------------------------------------------
# Deterministic (regular) spikes
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("activation", "expected"),
    [
        # v: 0.5, 1.0 > 0.999 spike -> 0.001, 0.501, 1.001 spike -> 0.002, 0.502, 1.002 spike, ...
        (0.5, [0, 1, 0, 1, 0, 1, 0, 1, 0, 1]),
        # v: 0.3, 0.6, 0.9, 1.2 spike -> 0.201, 0.501, 0.801, 1.101 spike -> 0.102, 0.402, 0.702,
        #    1.002 spike
        (0.3, [0, 0, 0, 1, 0, 0, 1, 0, 0, 1]),
        # strict inequality: v = 0.999 does not fire; then 1.998 fires -> 0.999, 1.998 fires, ...
        (0.999, [0, 1, 1, 1, 1, 1, 1, 1, 1, 1]),
        (1.0, [1] * 10),  # v: 1.0 spike -> 0.001, 1.001 spike -> 0.002, ...
        (0.0, [0] * 10),
    ],
)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_regular_spikes_hand_values(
    activation: float, expected: list[int], dtype: torch.dtype
) -> None:
    spikes = regular_spikes(torch.tensor([activation], dtype=dtype), 10)
    assert spikes.shape == (10, 1)
    assert spikes.dtype == dtype
    assert spikes.flatten().tolist() == [float(s) for s in expected]


def test_regular_spikes_first_steps_of_half() -> None:
    """A = 0.5 over T = 5 fires at steps 2 and 4 (1-based)."""
    assert regular_spikes(torch.tensor(0.5), 5).tolist() == [0.0, 1.0, 0.0, 1.0, 0.0]


def test_regular_spike_count_monotone() -> None:
    act = torch.linspace(0.0, 1.0, 201)
    for time_steps in (1, 5, 16):
        counts = regular_spikes(act, time_steps).sum(0)
        assert (counts[1:] >= counts[:-1]).all()
        assert counts[0] == 0
        assert counts[-1] == time_steps


def test_regular_spike_grads_hand_values() -> None:
    # g_1 = 1, g_2 = 0.001 * 1 + 1, g_3 = 0.001 * 1.001 + 1
    grads = regular_spike_grads(3, torch.float64).tolist()
    assert grads == pytest.approx([1.0, 1.001, 1.001001], rel=1e-12)
    assert regular_spike_grads(0).shape == (0,)


def test_encoder_forward_matches_regular_spikes() -> None:
    enc = make_encoder(in_dim=3, pop_dim=4)
    x = torch.randn(6, 3, generator=torch.Generator().manual_seed(0))
    spikes = enc(x, 5)
    assert spikes.shape == (5, 6, 12)
    assert spikes.requires_grad
    expected = regular_spikes(enc.activation(x).detach(), 5)
    assert torch.equal(spikes.detach(), expected)
    with torch.no_grad():
        no_grad = enc(x, 5)
    assert not no_grad.requires_grad
    assert torch.equal(no_grad, expected)


class _StraightThrough(torch.autograd.Function):
    """Forward ``(x > 0)``, backward identity."""

    @staticmethod
    def forward(ctx: Any, x: Tensor) -> Tensor:
        return (x > 0).to(x.dtype)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        return grad


def reference_encode(enc: PopulationEncoder, x: Tensor, time_steps: int) -> Tensor:
    """Straightforward autograd version of PopSAN's regular-spike encoder."""
    act = torch.exp(-0.5 * (x.unsqueeze(-1) - enc.mean).square() / enc.std.square()).flatten(-2)
    volt = torch.zeros_like(act)
    spikes = []
    for _ in range(time_steps):
        volt = volt + act
        spike = _StraightThrough.apply(volt - 0.999)
        volt = volt - 0.999 * spike
        spikes.append(spike)
    return torch.stack(spikes)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_encoder_straight_through_gradient_matches_reference(dtype: torch.dtype, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    enc = PopulationEncoder(3, 5, mean_range=(-1.5, 1.5)).to(dtype)
    with torch.no_grad():  # perturb the parameters so each receptive field differs
        enc.mean.add_(0.2 * torch.randn(enc.mean.shape, generator=gen, dtype=dtype))
        enc.std.mul_(1.0 + 0.3 * torch.rand(enc.std.shape, generator=gen, dtype=dtype))
    x = torch.randn(8, 3, generator=gen, dtype=dtype)
    time_steps = 5
    upstream = torch.randn(time_steps, 8, 15, generator=gen, dtype=dtype)

    spikes = enc(x, time_steps)
    (spikes * upstream).sum().backward()
    grads = (enc.mean.grad.clone(), enc.std.grad.clone())  # type: ignore[union-attr]
    enc.zero_grad()

    ref = reference_encode(enc, x, time_steps)
    (ref * upstream).sum().backward()
    ref_grads = (enc.mean.grad, enc.std.grad)

    assert torch.equal(spikes, ref)
    assert 0 < spikes.sum() < spikes.numel()
    for got, want in zip(grads, ref_grads, strict=True):
        assert want is not None
        assert want.abs().max() > 0
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_gradients_reach_mean_and_std() -> None:
    enc = make_encoder(in_dim=2, pop_dim=5)
    x = torch.tensor([[0.3, -0.7], [1.2, 0.1]])
    enc(x, 5).sum().backward()
    assert enc.mean.grad is not None
    assert enc.std.grad is not None
    assert torch.isfinite(enc.mean.grad).all()
    assert torch.isfinite(enc.std.grad).all()
    assert enc.mean.grad.abs().sum() > 0
    assert enc.std.grad.abs().sum() > 0


# --------------------------------------------------------------------------------------------
# Bernoulli spikes
# --------------------------------------------------------------------------------------------


def test_bernoulli_values_and_shape() -> None:
    enc = make_encoder(encoding="bernoulli")
    x = torch.randn(4, 2, generator=torch.Generator().manual_seed(0))
    spikes = enc(x, 20, generator=torch.Generator().manual_seed(1))
    assert spikes.shape == (20, 4, 10)
    assert ((spikes == 0) | (spikes == 1)).all()
    assert 0 < spikes.sum() < spikes.numel()


def test_bernoulli_seeding() -> None:
    enc = make_encoder(encoding="bernoulli")
    x = torch.tensor([[0.1, -0.2], [0.6, 0.0]])
    first = enc(x, 50, generator=torch.Generator().manual_seed(7))
    again = enc(x, 50, generator=torch.Generator().manual_seed(7))
    other = enc(x, 50, generator=torch.Generator().manual_seed(8))
    assert torch.equal(first, again)
    assert not torch.equal(first, other)


def test_bernoulli_firing_rate_matches_activation() -> None:
    """Over T = 4000 steps the rate's standard error is at most 0.008; allow 0.04."""
    enc = make_encoder(encoding="bernoulli")
    x = torch.tensor([[0.0, 1.5], [-0.4, 0.25]])
    act = enc.activation(x).detach()
    assert ((act > 0.2) & (act < 0.8)).any()  # some intermediate rates are tested
    with torch.no_grad():
        rate = enc(x, 4000, generator=torch.Generator().manual_seed(0)).mean(0)
    torch.testing.assert_close(rate, act, rtol=0.0, atol=0.04)


def test_bernoulli_gradient_is_straight_through() -> None:
    """``d spikes_t / d A = 1``: the gradient equals that of ``sum_t w_t * A``."""
    enc = make_encoder(encoding="bernoulli")
    x = torch.tensor([[0.2, -0.9], [1.1, 0.4]])
    w = torch.randn(6, 2, 10, generator=torch.Generator().manual_seed(3))
    (enc(x, 6, generator=torch.Generator().manual_seed(4)) * w).sum().backward()
    grads = (enc.mean.grad.clone(), enc.std.grad.clone())  # type: ignore[union-attr]
    enc.zero_grad()
    (enc.activation(x).unsqueeze(0) * w).sum().backward()
    for got, want in zip(grads, (enc.mean.grad, enc.std.grad), strict=True):
        assert want is not None
        assert want.abs().max() > 0
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["poisson", "Deterministic", ""])
def test_invalid_encoding_raises(encoding: str) -> None:
    with pytest.raises(ValueError, match="unknown encoding"):
        PopulationEncoder(2, 4, encoding=encoding)


@pytest.mark.parametrize("pop_dim", [1, 0, -3])
def test_small_pop_dim_raises(pop_dim: int) -> None:
    with pytest.raises(ValueError, match="pop_dim"):
        PopulationEncoder(2, pop_dim)


def test_encoder_threshold_constant() -> None:
    assert ENCODER_THRESHOLD == 0.999


def test_logging_firing_rates_leaves_the_global_generator_alone() -> None:
    # a training run draws its networks and more from the global generator: with a Bernoulli
    # encoder, logging the firing rates at each evaluation must not shift it
    from dataclasses import replace

    from spiking_dreamer.agent import PopSpikingActor
    from spiking_dreamer.training.evaluate import firing_rates

    from .helpers import TINY_ACTOR

    actor = PopSpikingActor(
        3, -torch.ones(2), torch.ones(2), replace(TINY_ACTOR, encoding="bernoulli")
    )
    obs = torch.randn(64, 3)
    before = torch.get_rng_state()
    rates = [firing_rates(actor, obs, torch.Generator().manual_seed(7)) for _ in range(2)]
    assert torch.equal(torch.get_rng_state(), before)
    assert rates[0] == rates[1]  # the same draws from the same seed
    assert 0.0 < rates[0]["encoder"] < 1.0
