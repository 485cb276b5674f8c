"""The seam between an agent and a model-based actor objective.

An agent owns its update (:meth:`~spiking_dreamer.agent.TD3.train`); a :class:`ModelObjective`
replaces what the actor maximises (and, optionally, what the critic is fitted to) with
something computed through a world model, e.g. the SVG(H) value gradient of
:class:`~spiking_dreamer.dreaming.ValueGradientLearner`. The agent keeps its own schedule
around it: the policy delay, the activity penalty of a spiking actor, the target updates.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

from torch import Tensor, nn


class ActorObjective(NamedTuple):
    """What a :class:`ModelObjective` gives for one actor update.

    loss: scalar actor loss to minimise, with its graph to the actor's parameters.
    obs: ``[B, O]`` raw states the loss starts from (where a spiking actor's firing-rate
        penalty is measured).
    usable: whether the agent may step on ``loss`` (finite, every imagined branch valid).
    stats: detached scalars for the agent's loss record (e.g. ``vg_objective``).
    rollout: what :meth:`ModelObjective.critic_loss` reads (e.g. the imagined trajectory).
    log_prob: for a stochastic actor (an ``alpha`` was passed), ``[B]`` detached
        ``log pi(a_0 | s_0)`` of the actions sampled at ``obs``: what SAC's temperature step
        reads; ``None`` otherwise.
    """

    loss: Tensor
    obs: Tensor
    usable: bool
    stats: dict[str, Tensor]
    rollout: Any
    log_prob: Tensor | None = None


class ModelObjective(Protocol):
    """An actor objective computed through a world model.

    ``critic_on_real_batches``: the critic keeps the agent's own TD targets on real batches;
    otherwise the objective's :meth:`critic_loss` (on its rollout) is the critic's loss and no
    real batch is sampled.

    ``alpha``: a maximum-entropy agent (SAC) passes its temperature; the objective then samples
    the stochastic actor (reparameterised) and adds ``-alpha log pi`` to the returns it
    maximises and to the values it fits (DHMBPO). ``None`` (TD3): the deterministic actor."""

    critic_on_real_batches: bool

    def actor_objective(
        self,
        actor: nn.Module,
        critic: nn.Module,
        obs_normalizer: Callable[[Tensor], Tensor],
        gamma: float,
        alpha: Tensor | float | None = None,
        actor_step: bool = True,
    ) -> ActorObjective:
        """The actor's objective on a new rollout; ``actor_step=False``: the agent takes no
        actor step on it this update (a rollout for :meth:`critic_loss` only)."""
        ...

    def critic_loss(
        self,
        objective: ActorObjective,
        critic: nn.Module,
        actor_target: nn.Module,
        critic_target: nn.Module,
        obs_normalizer: Callable[[Tensor], Tensor],
        gamma: float,
        target_noise: float,
        noise_clip: float,
        alpha: Tensor | float | None = None,
    ) -> tuple[Tensor, Tensor]:
        """The critic's loss and its ``Q`` values on the pairs it is fitted on (any shape;
        their mean is the loss record's ``q_mean``); ``actor_target`` is the policy the
        bootstrap acts with (SAC: the online actor)."""
        ...
