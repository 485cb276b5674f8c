"""Replay buffer: wrap-around, provenance counts, dtypes and the termination flag."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from spiking_dreamer.buffers import Batch, NonFiniteTransitionError, ReplayBuffer, Source
from spiking_dreamer.dreaming import DreamBuffer


def _add(buf: ReplayBuffer, i: int, source: Source = Source.REAL, terminated: bool = False) -> None:
    buf.add(np.full(2, i), np.full(1, i), float(i), np.full(2, i + 1), terminated, source)


def test_wraps_around_and_overwrites_the_oldest() -> None:
    buf = ReplayBuffer(3, 2, 1)
    for i in range(5):
        _add(buf, i)
    assert len(buf) == 3
    assert sorted(buf.reward.tolist()) == [2.0, 3.0, 4.0]
    assert buf.pos == 2


def test_source_counts_survive_wrap_around_for_single_and_batch_adds() -> None:
    buf = ReplayBuffer(4, 2, 1)
    for i in range(3):
        _add(buf, i, Source.REAL)
    n = 3
    batch = Batch(
        torch.zeros(n, 2), torch.zeros(n, 1), torch.ones(n), torch.zeros(n, 2), torch.zeros(n)
    )
    buf.add_batch(batch, Source.DREAM)  # slots 3, 0, 1: overwrites two REAL transitions
    assert (buf.count(Source.REAL), buf.count(Source.DREAM)) == (1, 3)
    buf.add_batch(batch, Source.DREAM)
    assert (buf.count(Source.REAL), buf.count(Source.DREAM)) == (0, 4)
    _add(buf, 9, Source.REAL)
    assert (buf.count(Source.REAL), buf.count(Source.DREAM)) == (1, 3)
    assert buf.count(Source.REAL) == int((buf.source[: len(buf)] == Source.REAL).sum())


def test_batch_larger_than_capacity_keeps_the_newest() -> None:
    buf = ReplayBuffer(2, 1, 1)
    n = 5
    r = torch.arange(n, dtype=torch.float32)
    buf.add_batch(
        Batch(torch.zeros(n, 1), torch.zeros(n, 1), r, torch.zeros(n, 1), torch.zeros(n)),
        Source.DREAM,
    )
    assert sorted(buf.reward.tolist()) == [3.0, 4.0]
    assert buf.count(Source.DREAM) == 2


def test_sample_is_reproducible_and_typed() -> None:
    buf = ReplayBuffer(10, 2, 1)
    for i in range(10):
        _add(buf, i, terminated=i % 2 == 0)
    b1 = buf.sample(6, torch.Generator().manual_seed(3))
    b2 = buf.sample(6, torch.Generator().manual_seed(3))
    assert all(torch.equal(x, y) for x, y in zip(b1, b2, strict=True))
    assert b1.obs.dtype == torch.float32
    assert b1.obs.shape == (6, 2)
    assert b1.terminated.shape == (6,)
    # stored terminated flags belong to their transitions
    assert torch.equal(b1.terminated, (b1.reward % 2 == 0).float())


def test_empty_buffer_refuses_to_sample() -> None:
    with pytest.raises(ValueError, match="empty"):
        ReplayBuffer(3, 1, 1).sample(2, torch.Generator())


@pytest.mark.parametrize("field", ["obs", "action", "reward", "next_obs", "overflow"])
def test_non_finite_transitions_are_refused_and_nothing_changes(field: str) -> None:
    buf = ReplayBuffer(4, 2, 1)
    _add(buf, 1)
    before = [t.clone() for t in (buf.obs, buf.action, buf.reward, buf.next_obs)]
    row = {"obs": np.ones(2), "action": np.ones(1), "reward": 1.0, "next_obs": np.ones(2)}
    if field == "overflow":  # finite in float64, infinite once stored as float32
        row["next_obs"] = np.array([1.0, 1e300])
    elif field == "reward":
        row["reward"] = float("nan")
    else:
        row[field] = np.array([np.inf] + [1.0] * (row[field].shape[0] - 1))
    with pytest.raises(NonFiniteTransitionError):
        buf.add(row["obs"], row["action"], row["reward"], row["next_obs"], False)
    assert (len(buf), buf.pos, buf.count(Source.REAL)) == (1, 1, 1)
    after = (buf.obs, buf.action, buf.reward, buf.next_obs)
    assert all(torch.equal(x, y) for x, y in zip(before, after, strict=True))


@pytest.mark.parametrize("field", Batch._fields)
def test_batches_with_a_non_finite_value_are_refused_whole(field: str) -> None:
    n = 3
    parts = {
        "obs": torch.zeros(n, 2),
        "action": torch.zeros(n, 1),
        "reward": torch.ones(n),
        "next_obs": torch.zeros(n, 2),
        "terminated": torch.zeros(n),
    }
    parts[field] = parts[field].clone()
    parts[field][1] = float("nan")
    real, dreams = ReplayBuffer(4, 2, 1), DreamBuffer(4, 2, 1)
    with pytest.raises(NonFiniteTransitionError):
        real.add_batch(Batch(**parts), Source.DREAM)
    with pytest.raises(NonFiniteTransitionError):
        dreams.add_dreams(Batch(**parts), torch.zeros(n), env_step=5, model_version=1)
    for buf in (real, dreams):
        assert (len(buf), buf.pos, buf.count(Source.DREAM)) == (0, 0, 0)
