"""What every actor shares: raw observations in through a running normaliser, actions out
within the env's bounds."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from spiking_dreamer.normalization import RunningNormalizer


class BoundedActor(nn.Module):
    """Base of the actors: owns the observation normaliser (so every caller feeds raw
    observations through the same pipeline) and the action bounds.

    Args:
        obs_dim: observation size ``O``.
        action_low, action_high: action bounds, each ``[A]``.
        obs_clip: absolute clip of the normalised observations.
    """

    def __init__(
        self, obs_dim: int, action_low: Tensor, action_high: Tensor, obs_clip: float
    ) -> None:
        super().__init__()
        act_dim = int(action_low.numel())
        self.obs_dim, self.act_dim = obs_dim, act_dim
        self.obs_normalizer = RunningNormalizer(obs_dim, clip=obs_clip)
        low = torch.as_tensor(action_low, dtype=torch.float32).reshape(act_dim)
        high = torch.as_tensor(action_high, dtype=torch.float32).reshape(act_dim)
        self.register_buffer("action_scale", (high - low) / 2)
        self.register_buffer("action_bias", (high + low) / 2)

    def scale_action(self, squashed: Tensor) -> Tensor:
        """Map ``[-1, 1]`` to ``[low, high]``."""
        return squashed * self.action_scale + self.action_bias
