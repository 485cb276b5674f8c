"""The TD3 agent: PopSAN spiking actor (or the MLP reference), twin ANN critic, TD3 update."""

from __future__ import annotations

from torch import Tensor

from spiking_dreamer.agent.critic import TwinQCritic
from spiking_dreamer.agent.mlp import MLPActor
from spiking_dreamer.agent.popsan import PopSpikingActor
from spiking_dreamer.agent.td3 import TD3, polyak_update
from spiking_dreamer.config import ActorConfig

Actor = PopSpikingActor | MLPActor
"""Any actor: raw observations ``[B, O]`` -> actions ``[B, A]`` within the bounds."""


def build_actor(obs_dim: int, action_low: Tensor, action_high: Tensor, cfg: ActorConfig) -> Actor:
    """The actor named by ``cfg.kind`` (``popsan`` or ``mlp``)."""
    cls = PopSpikingActor if cfg.kind == "popsan" else MLPActor
    return cls(obs_dim, action_low, action_high, cfg)


__all__ = [
    "TD3",
    "Actor",
    "MLPActor",
    "PopSpikingActor",
    "TwinQCritic",
    "build_actor",
    "polyak_update",
]
