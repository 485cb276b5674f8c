"""Value-gradient learning inside a training run (DHMBPO; Kubo, Parmas, Ishii, TMLR 2025):
distribution rollouts feed a start-state pool, and each actor update follows the SVG(H)
gradient through the world model. The maths lives in
:mod:`spiking_dreamer.dreaming.value_gradient`."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor, nn

from spiking_dreamer.agent.objective import ActorObjective
from spiking_dreamer.buffers import ReplayBuffer
from spiking_dreamer.config import ValueGradientConfig
from spiking_dreamer.dreaming.model_env import Policy
from spiking_dreamer.dreaming.value_gradient import (
    StatePool,
    distribution_rollout,
    mve_critic_loss,
    mve_targets,
    value_gradient_loss,
)
from spiking_dreamer.termination import TerminationFn
from spiking_dreamer.world_model import EnsembleDynamicsModel


class ValueGradientLearner:
    """The value gradient as the agent's actor objective
    (:class:`~spiking_dreamer.agent.objective.ModelObjective`), and its start-state pool.

    The agent calls :meth:`actor_objective` for an actor update: the SVG(H) loss of
    ``batch_size`` pool states through a differentiable training rollout; with
    ``critic_target: mve`` it fits its critic with :meth:`critic_loss` on the value-expansion
    targets of the same (detached) rollout instead of the agent's targets on real batches (with
    SAC's temperature ``alpha``, the rollout samples the policy and both carry the entropy
    term). The world
    model is never stepped here: it trains on its own loss only.

    Args:
        cfg: the ``value_gradient`` settings.
        model: the world-model ensemble (its elites supply the transitions).
        termination_fn: the env's termination function (masks only).
        obs_dim: observation size ``O``.
        generator: the model side's generator (member choice, noise, pool sampling).
    """

    def __init__(
        self,
        cfg: ValueGradientConfig,
        model: EnsembleDynamicsModel,
        termination_fn: TerminationFn,
        obs_dim: int,
        generator: torch.Generator,
    ) -> None:
        self.cfg, self.model, self.termination_fn = cfg, model, termination_fn
        self.generator = generator
        self.pool = StatePool(obs_dim, cfg.pool_rounds, generator.device)
        self.round = 0
        self.skipped_updates = 0
        """Actor steps not taken: their objective had a non-finite loss or branch."""

    @property
    def ready(self) -> bool:
        """Whether the pool has start states (until then the agent makes its own updates)."""
        return len(self.pool) > 0

    @property
    def critic_on_real_batches(self) -> bool:
        """``critic_target: td3``: the critic keeps the agent's own targets on real batches."""
        return self.cfg.critic_target == "td3"

    def distribution_phase(self, real: ReplayBuffer, actor: Policy) -> dict[str, float]:
        """One distribution rollout from ``distribution_starts`` uniform real states into the
        pool as a new round."""
        cfg, g = self.cfg, self.generator
        idx = torch.randint(len(real), (cfg.distribution_starts,), generator=g, device=g.device)
        states, stats = distribution_rollout(
            self.model,
            actor,
            self.termination_fn,
            real.obs[idx],
            horizon=cfg.distribution_horizon,
            member=cfg.member,
            exploration_noise=cfg.exploration_noise,
            uncertainty_kind=cfg.uncertainty,
            uncertainty_quantile=cfg.uncertainty_quantile,
            uncertainty_scale=cfg.uncertainty_scale,
            generator=g,
        )
        self.round += 1
        self.pool.add(states, self.round)
        return {**{f"vg/{k}": float(v) for k, v in stats.items()}, "vg/pool_size": len(self.pool)}

    def actor_objective(
        self,
        actor: Policy,
        critic: nn.Module,
        obs_normalizer: Callable[[Tensor], Tensor],
        gamma: float,
        alpha: Tensor | float | None = None,
        actor_step: bool = True,
    ) -> ActorObjective:
        """The SVG(H) loss (:func:`~spiking_dreamer.dreaming.value_gradient.value_gradient_loss`)
        of ``batch_size`` pool states; its stats give ``vg_objective`` (the mean ``J``). With
        ``alpha`` (SAC), the rollout samples the policy and ``J`` carries the entropy term;
        ``log_prob`` is then the first step's ``log pi(a_0 | s_0)``. An unusable objective
        counts in :attr:`skipped_updates` when ``actor_step`` (the agent would have stepped on
        it), not when the rollout is only the critic's."""
        cfg, g = self.cfg, self.generator
        start = self.pool.sample(cfg.batch_size, g)
        loss, traj, stats = value_gradient_loss(
            self.model,
            actor,
            critic,
            obs_normalizer,
            self.termination_fn,
            start,
            horizon=cfg.horizon,
            member=cfg.member,
            gamma=gamma,
            generator=g,
            action_noise=cfg.action_noise,
            alpha=alpha,
        )
        usable = bool(torch.isfinite(loss)) and int(stats["vg/invalid_branches"]) == 0
        self.skipped_updates += actor_step and not usable
        log_prob = traj.log_prob[0].detach() if traj.log_prob is not None else None
        vg_stats = {"vg_objective": stats["vg/objective"]}
        return ActorObjective(loss, start, usable, vg_stats, traj, log_prob)

    def critic_loss(
        self,
        objective: ActorObjective,
        critic: nn.Module,
        actor_target: Policy,
        critic_target: nn.Module,
        obs_normalizer: Callable[[Tensor], Tensor],
        gamma: float,
        target_noise: float,
        noise_clip: float,
        alpha: Tensor | float | None = None,
    ) -> tuple[Tensor, Tensor]:
        """The MVE critic loss on the objective's detached rollout towards its targets
        (:func:`~spiking_dreamer.dreaming.value_gradient.mve_targets`; with ``alpha``, SAC's
        soft values, bootstrapped with a sample of ``actor_target``, SAC's current policy),
        and each critic's mean ``Q`` on the rollout's live pairs ``[2]``."""
        traj = objective.rollout.detach()
        targets = mve_targets(
            traj,
            actor_target,
            critic_target,
            obs_normalizer,
            gamma=gamma,
            target_noise=target_noise,
            noise_clip=noise_clip,
            generator=self.generator,
            alpha=alpha,
        )
        return mve_critic_loss(traj, targets, critic, obs_normalizer)

    def state_dict(self) -> dict[str, Any]:
        """The pool, the round counter and the skipped-update count (the generator is the
        engine's to save)."""
        return {
            "pool": self.pool.state_dict(),
            "round": self.round,
            "skipped_updates": self.skipped_updates,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.pool.load_state_dict(state["pool"])
        self.round = state["round"]
        self.skipped_updates = state["skipped_updates"]
