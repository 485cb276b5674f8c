"""The world model in use: one model-rollout step (``model_env``), uncertainty-guided imagined
rollouts from real states into a separate dream buffer, and value-gradient learning through
the world model."""

from spiking_dreamer.dreaming.buffer import DreamBuffer
from spiking_dreamer.dreaming.dreamer import Dreamer
from spiking_dreamer.dreaming.engine import DreamEngine
from spiking_dreamer.dreaming.model_env import explore_step, model_transition, uncertainty
from spiking_dreamer.dreaming.value_gradient import (
    StatePool,
    Trajectory,
    distribution_rollout,
    imagine,
    mve_critic_loss,
    mve_targets,
    value_gradient_loss,
)
from spiking_dreamer.dreaming.value_gradient_learner import ValueGradientLearner

__all__ = [
    "DreamBuffer",
    "DreamEngine",
    "Dreamer",
    "StatePool",
    "Trajectory",
    "ValueGradientLearner",
    "distribution_rollout",
    "explore_step",
    "imagine",
    "model_transition",
    "mve_critic_loss",
    "mve_targets",
    "uncertainty",
    "value_gradient_loss",
]
