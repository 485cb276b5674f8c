"""The agents: PopSAN spiking actor (or the MLP reference), twin ANN critic, and the update
that trains them, TD3 (deterministic actor) or SAC (stochastic, squashed-Gaussian actor)."""

from __future__ import annotations

import torch
from torch import Tensor

from spiking_dreamer.agent.critic import TwinQCritic
from spiking_dreamer.agent.gaussian import SquashedGaussian
from spiking_dreamer.agent.mlp import MLPActor, MLPGaussianActor
from spiking_dreamer.agent.popsan import PopSpikingActor, PopSpikingGaussianActor
from spiking_dreamer.agent.sac import SAC
from spiking_dreamer.agent.td3 import TD3, polyak_update
from spiking_dreamer.config import ActorConfig, Config, SACConfig

Actor = PopSpikingActor | MLPActor
"""Any actor: raw observations ``[B, O]`` -> actions ``[B, A]`` within the bounds (the stochastic
actors are subclasses: their ``forward`` is the deterministic action)."""
Agent = TD3 | SAC
"""Any agent: ``train``, ``update_env_step``, ``act``, ``explore``, ``update_counts``,
``state_dict``, ``compile``."""


def build_actor(
    obs_dim: int,
    action_low: Tensor,
    action_high: Tensor,
    cfg: ActorConfig,
    sac: SACConfig | None = None,
) -> Actor:
    """The actor named by ``cfg.kind`` (``popsan`` or ``mlp``): deterministic, or with ``sac``
    the squashed-Gaussian actor of SAC (its log-std head and clamp from ``sac``)."""
    if sac is not None:
        cls = PopSpikingGaussianActor if cfg.kind == "popsan" else MLPGaussianActor
        return cls(obs_dim, action_low, action_high, cfg, sac)
    cls = PopSpikingActor if cfg.kind == "popsan" else MLPActor
    return cls(obs_dim, action_low, action_high, cfg)


def build_policy(obs_dim: int, action_low: Tensor, action_high: Tensor, cfg: Config) -> Actor:
    """The actor a run of ``cfg`` trains: :func:`build_actor`, stochastic under
    ``agent.kind: sac``."""
    sac = cfg.sac if cfg.agent.kind == "sac" else None
    return build_actor(obs_dim, action_low, action_high, cfg.actor, sac)


def build_agent(
    cfg: Config, actor: Actor, critic: TwinQCritic, generator: torch.Generator
) -> Agent:
    """The agent named by ``cfg.agent.kind`` around ``actor`` and ``critic`` (on their device);
    ``generator`` drives its update's noise (TD3's target smoothing, SAC's policy samples)."""
    if cfg.agent.kind == "sac":
        return SAC(actor, critic, cfg.sac, generator)  # type: ignore[arg-type]
    return TD3(actor, critic, cfg.td3, generator)


__all__ = [
    "SAC",
    "TD3",
    "Actor",
    "Agent",
    "MLPActor",
    "MLPGaussianActor",
    "PopSpikingActor",
    "PopSpikingGaussianActor",
    "SquashedGaussian",
    "TwinQCritic",
    "build_actor",
    "build_agent",
    "build_policy",
    "polyak_update",
]
