"""Uncertainty-guided dreaming: MBPO-style short branched rollouts (Janner et al., NeurIPS 2019)
with MOPO's pessimistic reward (Yu et al., NeurIPS 2020) and a horizon-adaptive filter.

One dream phase:

1. draw ``rollout_batch`` start states from the real buffer (a ``recent_fraction`` of them from
   the newest ``recent_window`` transitions);
2. for ``h = 0 .. horizon - 1`` (fixed, or MBPO's linear schedule over env steps, see
   :func:`rollout_horizon`) on the branches still alive: the current actor picks actions from
   the raw imagined observations (the same ``actor(raw_obs)`` call as in the real env, so the
   observation pipeline cannot differ), Gaussian exploration noise is added and the actions are
   clipped to the env's real bounds; the ensemble predicts every member's next state and reward;
   a random elite per transition supplies the transition (sampling its Gaussian for a Gaussian
   head; with ``member: elite_mean`` the elites' mean prediction does); the uncertainty
   ``u`` is computed over all members (MOPO) or only the elites (``uncertainty_members``; see
   :func:`~spiking_dreamer.dreaming.model_env.uncertainty`); the step is
   :func:`~spiking_dreamer.dreaming.model_env.explore_step`;
3. a transition is kept iff ``u <= threshold * threshold_decay**h`` and every value is finite;
   a rejected transition ends its branch, as does termination (the env's termination function);
4. kept transitions go to the dream buffer with reward ``r - penalty * u``;
5. the step-0 threshold adapts toward ``target_acceptance`` (x(1 +- adapt_rate) per phase outside
   a +-0.1 band, also at zero acceptance) and never falls below the ``min_accept_quantile``
   quantile of this phase's step-0 uncertainties, so acceptance cannot stall at zero. With
   ``calibrate_threshold`` the first phase starts it at the ``target_acceptance`` quantile of
   its step-0 uncertainties (scale-free, like MACURA's quantile threshold) instead of the
   absolute ``threshold``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from spiking_dreamer.buffers import Batch, ReplayBuffer
from spiking_dreamer.config import DreamingConfig
from spiking_dreamer.dreaming.buffer import DreamBuffer
from spiking_dreamer.dreaming.model_env import ExploreStep, Policy, explore_step
from spiking_dreamer.termination import TerminationFn
from spiking_dreamer.world_model.base import EnsembleDynamicsModel


def rollout_horizon(cfg: DreamingConfig, env_step: int) -> int:
    """Rollout length at ``env_step``: ``cfg.horizon``, or with ``cfg.horizon_schedule =
    [a, b, h_a, h_b]`` MBPO's schedule (Janner et al., 2019, App. C): ``h_a`` up to step
    ``a``, ``h_b`` from step ``b`` on, ``floor(h_a + (t - a) / (b - a) * (h_b - h_a))``
    between."""
    if not cfg.horizon_schedule:
        return cfg.horizon
    a, b, h_a, h_b = cfg.horizon_schedule
    if env_step <= a:
        return h_a
    if env_step >= b:
        return h_b
    return math.floor(h_a + (env_step - a) / (b - a) * (h_b - h_a))


class Dreamer:
    """Runs dream phases and keeps the adaptive threshold.

    Args:
        model: the dynamics ensemble (its elites are used).
        actor: ``actor(raw_obs [N, O]) -> actions [N, A]`` within its bounds.
        termination_fn: ``(obs, action, next_obs) -> terminated [N]`` for the env.
        cfg: dreaming settings.
        generator: torch generator on the model's device (start states, noise, member choice).
    """

    def __init__(
        self,
        model: EnsembleDynamicsModel,
        actor: Policy,
        termination_fn: TerminationFn,
        cfg: DreamingConfig,
        generator: torch.Generator,
    ) -> None:
        self.model, self.actor, self.termination_fn = model, actor, termination_fn
        self.cfg, self.generator = cfg, generator
        self.threshold = cfg.threshold
        self.calibrated = False  # calibrate_threshold: whether the first phase has set it

    def _start_indices(self, real: ReplayBuffer) -> Tensor:
        cfg, g, n = self.cfg, self.generator, len(real)
        n_recent = round(cfg.recent_fraction * cfg.rollout_batch)
        idx = torch.randint(n, (cfg.rollout_batch - n_recent,), generator=g, device=real.device)
        if n_recent:
            window = min(cfg.recent_window, n)
            back = torch.randint(window, (n_recent,), generator=g, device=real.device)
            idx = torch.cat([idx, (real.pos - 1 - back) % n])
        return idx

    def imagine_step(self, obs: Tensor) -> tuple[ExploreStep, Tensor]:
        """One imagined step from raw states ``obs`` ``[N, O]``
        (:func:`~spiking_dreamer.dreaming.model_env.explore_step`: the actor's noisy, clipped
        action, the next state and reward of ``member``, the uncertainty, which rows are
        finite) and the termination flags ``[N]`` (nothing is filtered here)."""
        cfg = self.cfg
        step = explore_step(
            self.model,
            self.actor,
            obs,
            member=cfg.member,
            exploration_noise=cfg.exploration_noise,
            uncertainty_kind=cfg.uncertainty,
            uncertainty_over=cfg.uncertainty_members,
            generator=self.generator,  # a Bernoulli encoder draws from it too
            chunk=cfg.predict_chunk,
        )
        return step, self.termination_fn(obs, step.action, step.next_obs)

    @torch.no_grad()
    def phase(
        self, real: ReplayBuffer, dreams: DreamBuffer, env_step: int, model_version: int
    ) -> dict[str, float]:
        """Run one dream phase; returns its statistics for logging."""
        cfg = self.cfg
        obs = real.obs[self._start_indices(real)]
        attempted = accepted = nonfinite = 0
        u_all = []
        horizon = rollout_horizon(cfg, env_step)
        for h in range(horizon):
            if obs.shape[0] == 0:
                break
            (action, next_obs, reward, u, finite), terminated = self.imagine_step(obs)
            u_clean = torch.where(finite, u, torch.full_like(u, float("inf")))
            if h == 0:
                self._calibrate(u_clean[finite])
                self._apply_quantile_floor(u_clean[finite])
            keep = finite & (u_clean <= self.threshold * cfg.threshold_decay**h)
            attempted += obs.shape[0]
            accepted += int(keep.sum())
            nonfinite += int((~finite).sum())
            u_all.append(u[finite])
            if keep.any():
                batch = Batch(
                    obs[keep],
                    action[keep],
                    reward[keep] - cfg.penalty * u[keep],
                    next_obs[keep],
                    terminated[keep].float(),
                )
                dreams.add_dreams(batch, u[keep], env_step, model_version)
            alive = keep & ~terminated
            obs = next_obs[alive]
        acceptance = accepted / max(attempted, 1)
        self._adapt(acceptance)
        u_cat = torch.cat(u_all) if u_all else torch.zeros(0)
        return {
            "dream/acceptance": acceptance,
            "dream/accepted": float(accepted),
            "dream/mean_length": accepted / cfg.rollout_batch,
            "dream/imagined_per_start": attempted / cfg.rollout_batch,
            "dream/uncertainty_mean": u_cat.mean().item() if len(u_cat) else float("nan"),
            "dream/uncertainty_max": u_cat.max().item() if len(u_cat) else float("nan"),
            "dream/threshold": self.threshold,
            "dream/horizon": float(horizon),
            "dream/discarded_nonfinite": float(nonfinite),
            "dream/buffer_size": float(len(dreams)),
        }

    def _calibrate(self, step0_u: Tensor) -> None:
        if self.cfg.calibrate_threshold and not self.calibrated and len(step0_u):
            self.threshold = torch.quantile(step0_u.float(), self.cfg.target_acceptance).item()
            self.calibrated = True

    def _apply_quantile_floor(self, step0_u: Tensor) -> None:
        if self.cfg.min_accept_quantile > 0 and len(step0_u):
            floor = torch.quantile(step0_u.float(), self.cfg.min_accept_quantile).item()
            self.threshold = max(self.threshold, floor)

    def _adapt(self, acceptance: float) -> None:
        cfg = self.cfg
        if not cfg.adaptive_threshold:
            return
        if acceptance < cfg.target_acceptance - 0.1:
            self.threshold *= 1 + cfg.adapt_rate
        elif acceptance > cfg.target_acceptance + 0.1:
            self.threshold *= 1 - cfg.adapt_rate
