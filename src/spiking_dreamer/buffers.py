"""Preallocated replay buffer of transitions that remembers where each one came from."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor


class Batch(NamedTuple):
    """A minibatch of transitions; ``[B, ...]`` tensors, raw (unnormalised) observations."""

    obs: Tensor
    action: Tensor
    reward: Tensor
    next_obs: Tensor
    terminated: Tensor


class NonFiniteTransitionError(ValueError):
    """A transition with a NaN or infinite value was offered to a buffer (and not stored)."""


class ReplayBuffer:
    """Ring buffer of ``(obs, action, reward, next_obs, terminated)`` on one device (real or
    imagined transitions: each buffer holds one kind).

    ``terminated`` is the bootstrap mask (true termination only, never a time-limit truncation).
    Observations are stored raw (float32); normalisation happens in the networks. Every
    stored value is finite: a transition with a NaN or infinite value (after the cast to
    float32) raises :class:`NonFiniteTransitionError` and leaves the buffer unchanged.

    Args:
        capacity: maximum number of transitions; the oldest are overwritten first.
        obs_dim, act_dim: sizes ``O`` and ``A``.
        device: where the storage lives (sampling returns tensors there).
    """

    def __init__(
        self, capacity: int, obs_dim: int, act_dim: int, device: torch.device | str = "cpu"
    ) -> None:
        self.capacity, self.device = capacity, torch.device(device)
        kw = {"device": self.device}
        self.obs = torch.zeros(capacity, obs_dim, **kw)
        self.action = torch.zeros(capacity, act_dim, **kw)
        self.reward = torch.zeros(capacity, **kw)
        self.next_obs = torch.zeros(capacity, obs_dim, **kw)
        self.terminated = torch.zeros(capacity, **kw)
        self.pos = 0
        self.size = 0

    def __len__(self) -> int:
        return self.size

    def add(
        self,
        obs: np.ndarray,
        action: np.ndarray,
        reward: float,
        next_obs: np.ndarray,
        terminated: bool,
    ) -> None:
        """Store one transition (NumPy or Python inputs)."""
        with np.errstate(over="ignore"):  # an overflow to inf is refused below
            o, a, no = (np.asarray(x, dtype=np.float32) for x in (obs, action, next_obs))
            r = np.float32(reward)
        if not (np.isfinite(o).all() and np.isfinite(a).all() and np.isfinite(no).all()):
            raise NonFiniteTransitionError(f"non-finite obs, action or next_obs: {o}, {a}, {no}")
        if not np.isfinite(r):
            raise NonFiniteTransitionError(f"non-finite reward: {reward}")
        i = self.pos
        self.obs[i] = torch.from_numpy(o)
        self.action[i] = torch.from_numpy(a)
        self.reward[i] = float(r)
        self.next_obs[i] = torch.from_numpy(no)
        self.terminated[i] = float(terminated)
        self.pos = (i + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def add_batch(self, batch: Batch) -> None:
        """Store ``N`` transitions given as ``[N, ...]`` tensors (one device sync)."""
        batch = Batch(*(x.to(self.device, torch.float32) for x in batch))
        if not torch.stack([x.isfinite().all() for x in batch]).all():
            raise NonFiniteTransitionError(f"non-finite values in a batch of {len(batch.obs)}")
        n = batch.obs.shape[0]
        if n > self.capacity:  # only the newest `capacity` survive anyway
            batch = Batch(*(x[-self.capacity :] for x in batch))
            n = self.capacity
        idx = (self.pos + torch.arange(n, device=self.device)) % self.capacity
        for name, value in zip(Batch._fields, batch, strict=True):
            store = getattr(self, name)
            store[idx] = value.to(self.device, torch.float32).reshape(n, *store.shape[1:])
        self.pos = (self.pos + n) % self.capacity
        self.size = min(self.size + n, self.capacity)

    _STORES = ("obs", "action", "reward", "next_obs", "terminated")

    def state_dict(self) -> dict[str, object]:
        """Stored transitions (the filled part only) and the ring position, as tensors."""
        state: dict[str, object] = {n: getattr(self, n)[: self.size].cpu() for n in self._STORES}
        state.update(capacity=self.capacity, pos=self.pos, size=self.size)
        return state

    def load_state_dict(self, state: dict[str, object]) -> None:
        """Restore from :meth:`state_dict`, saved by a buffer of this capacity or a smaller one.

        Same capacity: an exact copy (same indices, ``pos`` and ``size``), as for a resume.

        Smaller saved capacity (a resume or fork with a larger ``train.total_steps``, hence a
        larger buffer): the saved transitions go to indices ``0 .. size-1``, oldest first, and
        ``pos = size``, for every store in ``_STORES`` (subclasses' included).

        - If the saved buffer never wrapped (``size < capacity``, or full with ``pos == 0``
          after exactly ``capacity`` adds), the transitions keep their indices and the result
          *is* the buffer this one would be had it had its capacity from the start: the same
          tensors, ``pos`` and ``size``, hence the same later overwrites and,
          with an equally seeded generator, the same samples.
        - If it had wrapped, it has overwritten its oldest transitions, which a buffer of this
          capacity would still hold, so no load can equal that buffer. The ring is unrolled
          instead: the result equals a buffer of this capacity that received only the
          surviving transitions, in their order. Later adds fill the free slots, then overwrite
          the oldest survivor first; sampling is uniform over the survivors. (A full buffer
          with ``pos == 0`` that wrapped a whole number of times cannot be told from one that
          never wrapped; its layout is already oldest first, so it is treated the same.)

        A larger saved capacity raises :class:`ValueError` (it would have to drop transitions).
        """
        fields = ("capacity", "size", "pos")
        capacity, size, pos = (int(state[k]) for k in fields)  # type: ignore[call-overload]
        if capacity > self.capacity:
            raise ValueError(
                f"buffer capacity {capacity} > {self.capacity}: a saved buffer can only be "
                "loaded into one of the same or a larger capacity"
            )
        order = None
        if capacity < self.capacity:
            if size == capacity and pos != 0:  # wrapped: slots pos.. hold the oldest
                order = torch.cat([torch.arange(pos, size), torch.arange(pos)])
            pos = size
        for name in self._STORES:
            saved = state[name]
            if order is not None:
                saved = saved[order]  # type: ignore[index]
            store = getattr(self, name)
            store[:size] = saved.to(self.device)  # type: ignore[union-attr]
            store[size:] = 0  # as in a fresh buffer; nothing beyond size is ever read
        self.pos, self.size = pos, size

    def sample(self, batch_size: int, generator: torch.Generator) -> Batch:
        """Uniform sample with replacement; ``generator`` must live on the buffer's device."""
        if self.size == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        idx = torch.randint(self.size, (batch_size,), generator=generator, device=self.device)
        return self.gather(idx)

    def gather(self, idx: Tensor) -> Batch:
        """Transitions at indices ``idx`` ``[N]``."""
        return Batch(*(getattr(self, name)[idx] for name in Batch._fields))
