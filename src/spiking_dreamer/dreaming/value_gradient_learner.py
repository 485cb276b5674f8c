"""Value-gradient learning inside a training run (DHMBPO; Kubo, Parmas, Ishii, TMLR 2025):
distribution rollouts feed a start-state pool, and each update arranges TD3's parts around the
SVG(H) actor step. The maths lives in :mod:`spiking_dreamer.dreaming.value_gradient`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from spiking_dreamer.config import ValueGradientConfig
from spiking_dreamer.dreaming.value_gradient import (
    StatePool,
    TerminationFn,
    distribution_rollout,
    mve_critic_loss,
    mve_targets,
    value_gradient_loss,
)


class ValueGradientLearner:
    """Value-gradient learning inside a training run (DHMBPO): distribution rollouts feed a
    start-state pool; each update is TD3's parts arranged around the SVG(H) actor step.

    One update, per batch of the env step (``train.updates_per_step`` of them):

    1. ``critic_target: td3``: a TD3 critic step on the real batch;
    2. the actor step on the SVG(H) loss of ``batch_size`` pool states, skipped when a branch
       or the loss is non-finite;
    3. ``critic_target: mve``: a critic step on the MVE targets of the same (detached)
       training rollout;
    4. a Polyak update of both targets with ``td3.tau``.

    The world model is never stepped here: it trains on its own loss only.

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
        model: nn.Module,
        termination_fn: TerminationFn,
        obs_dim: int,
        generator: torch.Generator,
    ) -> None:
        self.cfg, self.model, self.termination_fn = cfg, model, termination_fn
        self.generator = generator
        self.pool = StatePool(obs_dim, cfg.pool_rounds, generator.device)
        self.round = 0
        self.skipped_updates = 0

    @property
    def ready(self) -> bool:
        """Whether the pool has start states (until then the run makes TD3's updates)."""
        return len(self.pool) > 0

    def distribution_phase(self, real: Any, actor: nn.Module) -> dict[str, float]:
        """One distribution rollout from ``distribution_starts`` uniform real states (a
        :class:`~spiking_dreamer.buffers.ReplayBuffer`) into the pool as a new round."""
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

    def update(self, agent: Any, batches: Sequence[Any]) -> dict[str, Tensor]:
        """This env step's updates on ``agent`` (a :class:`~spiking_dreamer.agent.TD3`), one
        per real batch; returns TD3's loss record (``q_mean``: of the critic's TD3 batch, or of
        the MVE targets) plus ``vg_objective`` (the mean SVG(H) objective ``J``)."""
        cfg, td3, g = self.cfg, agent.cfg, self.generator
        normalize = agent.actor.obs_normalizer
        losses: dict[str, Tensor] = {}
        for batch in batches:
            if cfg.critic_target == "td3":
                critic_loss, q = agent.critic_update(batch)
            start = self.pool.sample(cfg.batch_size, g)
            loss, traj, stats = value_gradient_loss(
                self.model,
                agent.actor,
                agent.critic,
                normalize,
                self.termination_fn,
                start,
                horizon=cfg.horizon,
                member=cfg.member,
                gamma=td3.gamma,
                generator=g,
                action_noise=cfg.action_noise,
            )
            if torch.isfinite(loss) and int(stats["vg/invalid_branches"]) == 0:
                agent.actor_step_on(loss)
            else:
                self.skipped_updates += 1
            if cfg.critic_target == "mve":
                detached = traj.detach()
                targets = mve_targets(
                    detached,
                    agent.actor_target,
                    agent.critic_target,
                    normalize,
                    gamma=td3.gamma,
                    target_noise=td3.target_noise,
                    noise_clip=td3.noise_clip,
                    generator=g,
                )
                critic_loss = mve_critic_loss(detached, targets, agent.critic, normalize)
                agent.critic_step_on(critic_loss)
                q = targets  # the value-expansion targets: what Q is trained towards
            agent.update_targets(td3.tau)
            losses = {
                "critic_loss": critic_loss.detach(),
                "actor_loss": agent.last_actor_loss,
                "q_mean": q.detach().mean(),
                "vg_objective": stats["vg/objective"],
            }
        return losses

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
