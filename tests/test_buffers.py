"""Replay buffer: wrap-around, dtypes and the termination flag."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from spiking_dreamer.buffers import Batch, NonFiniteTransitionError, ReplayBuffer
from spiking_dreamer.dreaming import DreamBuffer


def _add(buf: ReplayBuffer, i: int, terminated: bool = False) -> None:
    buf.add(np.full(2, i), np.full(1, i), float(i), np.full(2, i + 1), terminated)


def test_wraps_around_and_overwrites_the_oldest() -> None:
    buf = ReplayBuffer(3, 2, 1)
    for i in range(5):
        _add(buf, i)
    assert len(buf) == 3
    assert sorted(buf.reward.tolist()) == [2.0, 3.0, 4.0]
    assert buf.pos == 2


def test_batch_larger_than_capacity_keeps_the_newest() -> None:
    buf = ReplayBuffer(2, 1, 1)
    n = 5
    r = torch.arange(n, dtype=torch.float32)
    buf.add_batch(
        Batch(torch.zeros(n, 1), torch.zeros(n, 1), r, torch.zeros(n, 1), torch.zeros(n)),
    )
    assert sorted(buf.reward.tolist()) == [3.0, 4.0]


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


@pytest.mark.parametrize(("adds", "stored"), [(3, [0, 1, 2]), (5, [2, 3, 4]), (2, [0, 1])])
def test_samples_are_uniform_over_exactly_the_stored_transitions(
    adds: int, stored: list[int]
) -> None:
    """Capacity 3: each stored transition (the newest included, after wrapping the oldest
    gone) is drawn 1/n of the time: 3,000 draws give each of 3 rows 1,000 +- 150 (5 sigma is
    about 130), and nothing else."""
    buf = ReplayBuffer(3, 2, 1)
    for i in range(adds):
        _add(buf, i)
    draws = buf.sample(3000, torch.Generator().manual_seed(0)).reward
    values, counts = torch.unique(draws, return_counts=True)
    assert values.tolist() == [float(i) for i in stored]
    expect = 3000 / len(stored)
    assert all(abs(c - expect) < 150 for c in counts.tolist()), counts.tolist()


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
    assert (len(buf), buf.pos) == (1, 1)
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
        real.add_batch(Batch(**parts))
    with pytest.raises(NonFiniteTransitionError):
        dreams.add_dreams(Batch(**parts), torch.zeros(n), env_step=5, model_version=1)
    for buf in (real, dreams):
        assert (len(buf), buf.pos) == (0, 0)


# --------------------------------------------------------------------------- growing on load


def _add_mixed(buf: ReplayBuffer, start: int, stop: int) -> None:
    """Transitions ``start .. stop-1``, every third a dream, every fourth terminal."""
    for i in range(start, stop):
        _add(buf, i, terminated=i % 4 == 0)


def _assert_same(a: ReplayBuffer, b: ReplayBuffer) -> None:
    assert (a.capacity, a.pos, a.size) == (b.capacity, b.pos, b.size)
    for name in a._STORES:
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    for seed in (0, 1, 2):
        sa = a.sample(32, torch.Generator().manual_seed(seed))
        sb = b.sample(32, torch.Generator().manual_seed(seed))
        assert all(torch.equal(x, y) for x, y in zip(sa, sb, strict=True))


def _saved(capacity: int, n: int) -> dict[str, object]:
    small = ReplayBuffer(capacity, 2, 1)
    _add_mixed(small, 0, n)
    state = small.state_dict()
    assert state["capacity"] == capacity
    return state


def test_grown_buffer_equals_one_that_had_the_larger_capacity_from_the_start() -> None:
    big = ReplayBuffer(20, 2, 1)
    big.load_state_dict(_saved(10, 6))
    _add_mixed(big, 6, 14)
    direct = ReplayBuffer(20, 2, 1)
    _add_mixed(direct, 0, 14)
    _assert_same(big, direct)


def test_a_full_buffer_that_never_wrapped_grows_exactly_and_later_wraps_alike() -> None:
    big = ReplayBuffer(20, 2, 1)
    big.load_state_dict(_saved(10, 10))  # full, pos 0
    assert (big.pos, big.size) == (10, 10)
    _add_mixed(big, 10, 27)  # wraps the grown buffer: overwrites 0..6
    direct = ReplayBuffer(20, 2, 1)
    _add_mixed(direct, 0, 27)
    _assert_same(big, direct)


def test_a_wrapped_buffer_is_unrolled_oldest_first() -> None:
    """Transitions 0..2 are gone from the small buffer; a larger buffer from the start would
    still hold them, so equality is impossible. The survivors keep their order: the result is a
    buffer of the larger capacity that received only the survivors 3..12."""
    big = ReplayBuffer(20, 2, 1)
    big.load_state_dict(_saved(10, 13))  # pos 3: slots 0..2 hold 10..12
    assert (big.pos, big.size) == (10, 10)
    assert big.reward[:10].tolist() == [float(i) for i in range(3, 13)]
    survivors = ReplayBuffer(20, 2, 1)
    _add_mixed(survivors, 3, 13)
    _assert_same(big, survivors)
    _add_mixed(big, 13, 28)  # fills 10..19, then overwrites the oldest (3, 4, ...) first
    _add_mixed(survivors, 13, 28)
    _assert_same(big, survivors)
    assert sorted(big.reward.tolist()) == [float(i) for i in range(8, 28)]


def test_same_capacity_load_is_an_exact_copy_even_when_wrapped() -> None:
    small = ReplayBuffer(10, 2, 1)
    _add_mixed(small, 0, 13)
    copy = ReplayBuffer(10, 2, 1)
    copy.load_state_dict(small.state_dict())
    _assert_same(copy, small)
    _add_mixed(copy, 13, 17)
    _add_mixed(small, 13, 17)
    _assert_same(copy, small)


def test_a_larger_saved_buffer_is_refused() -> None:
    buf = ReplayBuffer(5, 2, 1)
    with pytest.raises(ValueError, match="capacity 10"):
        buf.load_state_dict(_saved(10, 6))
    assert (buf.pos, buf.size) == (0, 0)


def test_loading_replaces_what_the_buffer_held() -> None:
    big = ReplayBuffer(20, 2, 1)
    _add_mixed(big, 100, 118)  # stale contents beyond the loaded size must not survive
    big.load_state_dict(_saved(10, 6))
    direct = ReplayBuffer(20, 2, 1)
    _add_mixed(direct, 0, 6)
    _assert_same(big, direct)


def _dreams(buf: DreamBuffer, start: int, stop: int, batch: int = 3) -> None:
    for lo in range(start, stop, batch):
        hi = min(lo + batch, stop)
        r = torch.arange(lo, hi, dtype=torch.float32)
        n = hi - lo
        b = Batch(r[:, None].expand(n, 2), r[:, None], r, r[:, None].expand(n, 2) + 1, r % 2)
        buf.add_dreams(b, uncertainty=r / 100, env_step=lo * 10, model_version=lo // 4)


@pytest.mark.parametrize(("n", "wrapped"), [(7, False), (12, False), (16, True)])
def test_dream_buffer_grows_with_its_provenance(n: int, wrapped: bool) -> None:
    small = DreamBuffer(12, 2, 1)
    _dreams(small, 0, n, batch=1)  # one per call: created_step 10 i, model_version i // 4
    assert (small.size == small.capacity and small.pos != 0) == wrapped
    big = DreamBuffer(30, 2, 1)
    big.load_state_dict(small.state_dict())
    first = n - small.size  # the oldest transition the small buffer still holds
    assert (first > 0) == wrapped
    reference = DreamBuffer(30, 2, 1)
    _dreams(reference, first, n, batch=1)  # exact growth when first == 0; the survivors else
    _assert_same(big, reference)
    assert big.created_step[: big.size].tolist() == [10 * i for i in range(first, n)]
    _dreams(big, n, n + 25)
    _dreams(reference, n, n + 25)
    _assert_same(big, reference)
