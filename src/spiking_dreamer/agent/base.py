"""What every actor shares: raw observations in through a running normaliser, actions out
within the env's bounds."""

from __future__ import annotations

from typing import Protocol

import torch
from torch import Tensor, nn

from spiking_dreamer.normalization import RunningNormalizer


class HasBounds(Protocol):
    """An actor's action bounds: ``action_bias ± action_scale``, each ``[A]``."""

    action_scale: Tensor
    action_bias: Tensor


def action_bounds(actor: HasBounds) -> tuple[Tensor, Tensor]:
    """The actor's action bounds ``low, high`` (each ``[A]``)."""
    return actor.action_bias - actor.action_scale, actor.action_bias + actor.action_scale


def add_clipped_noise(
    action: Tensor, actor: HasBounds, eps: Tensor, sigma: float, clip: float
) -> Tensor:
    """``clip(action + clip(sigma * eps, -clip, clip) * half_range, low, high)`` for standard
    normal draws ``eps`` shaped like ``action`` ``[N, A]``: exploration noise (``clip = inf``)
    and TD3's target-policy smoothing (Fujimoto et al., ICML 2018, eq. 14), relative to the
    half-range of the action space."""
    low, high = action_bounds(actor)
    noise = (eps * sigma).clamp(-clip, clip)
    return torch.clamp(action + noise * actor.action_scale, low, high)


def perturb(
    action: Tensor, actor: HasBounds, sigma: float, clip: float, generator: torch.Generator
) -> Tensor:
    """:func:`add_clipped_noise` with ``eps ~ N(0, 1)`` drawn from ``generator``."""
    eps = torch.randn(action.shape, generator=generator, device=action.device)
    return add_clipped_noise(action, actor, eps, sigma, clip)


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
