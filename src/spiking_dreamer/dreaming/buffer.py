"""Dream buffer: a replay buffer of imagined transitions that carry their provenance."""

from __future__ import annotations

import torch
from torch import Tensor

from spiking_dreamer.buffers import Batch, ReplayBuffer


class DreamBuffer(ReplayBuffer):
    """FIFO buffer of imagined transitions with, per transition, the env step and model version
    at creation and the uncertainty that admitted it (``created_step``, ``model_version``,
    ``uncertainty``, each ``[capacity]``)."""

    def __init__(
        self, capacity: int, obs_dim: int, act_dim: int, device: torch.device | str = "cpu"
    ) -> None:
        super().__init__(capacity, obs_dim, act_dim, device)
        self.created_step = torch.zeros(capacity, dtype=torch.int64, device=self.device)
        self.model_version = torch.zeros(capacity, dtype=torch.int64, device=self.device)
        self.uncertainty = torch.zeros(capacity, device=self.device)

    _STORES = (*ReplayBuffer._STORES, "created_step", "model_version", "uncertainty")

    def add_dreams(
        self, batch: Batch, uncertainty: Tensor, env_step: int, model_version: int
    ) -> None:
        """Store ``N`` imagined transitions; a non-finite value in ``batch`` raises
        :class:`~spiking_dreamer.buffers.NonFiniteTransitionError` and stores nothing."""
        n = min(batch.obs.shape[0], self.capacity)
        if n == 0:
            return
        idx = (self.pos + torch.arange(n, device=self.device)) % self.capacity
        self.add_batch(batch)
        self.created_step[idx] = env_step
        self.model_version[idx] = model_version
        self.uncertainty[idx] = uncertainty[-n:].to(self.device, torch.float32)
