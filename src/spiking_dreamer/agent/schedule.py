"""How an off-policy agent arranges one env step's G updates, shared by TD3 and SAC.

* the agent's own schedule (``td3.schedule: td3``, ``sac.schedule: sac``): G of its own steps,
  in order;
* ``per_env_step`` (REDQ: Chen et al., "Randomized Ensembled Double Q-Learning", ICLR 2021):
  G critic steps towards the targets of the fixed actor and target networks (all G at once with
  ``batched_targets``); then K = ``actor_updates_per_step`` actor steps, step ``j`` (0-based) on
  batch ``(G - K + j) mod G``, i.e. the last K batches in order (cycling when K > G); then one
  Polyak update with :meth:`EnvStepSchedule.env_step_tau`: ``1 - (1 - tau)^n``, n Polyak steps
  of rate ``tau`` towards a fixed source in one, ``n`` = G (``target_tau_per: critic_update``)
  or K (``actor_update``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from torch import Tensor, nn

from spiking_dreamer.agent.objective import ModelObjective
from spiking_dreamer.buffers import Batch


def compounded_tau(tau: float, steps: int) -> float:
    """``1 - (1 - tau)^steps``: one Polyak step of this rate equals ``steps`` steps of rate
    ``tau`` towards a fixed source (``tau`` itself for one step, exactly)."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if steps == 1 or tau == 1.0:
        return tau
    return -math.expm1(steps * math.log1p(-tau))


class EnvStepSchedule:
    """Mixin of :class:`~spiking_dreamer.agent.TD3` and :class:`~spiking_dreamer.agent.SAC`:
    :meth:`update_env_step`, :meth:`train`, :meth:`env_step_tau` and :attr:`update_counts`.

    The agent provides ``cfg`` (``schedule``, ``tau``, ``actor_updates_per_step``,
    ``batched_targets``, ``target_tau_per``), ``actor`` (with ``obs_normalizer``), the counters,
    :attr:`own_schedule`, ``_own_step(batch)``, ``critic_target_value(s)``, ``_critic_step``,
    ``_actor_step``, :meth:`soft_update_targets`, ``_losses`` and ``_objective_update``.
    """

    own_schedule: str
    """The agent's own schedule's name (``td3``, ``sac``)."""
    cfg: Any
    actor: nn.Module
    num_updates: int
    num_actor_updates: int
    num_target_updates: int
    num_env_steps: int

    def soft_update_targets(self, tau: float) -> None:
        """Polyak update of the agent's target networks (not counted)."""
        raise NotImplementedError

    def _update_targets(self, tau: float) -> None:
        """:meth:`soft_update_targets`, counted in ``num_target_updates``."""
        self.soft_update_targets(tau)
        self.num_target_updates += 1

    def env_step_tau(self, num_batches: int) -> float:
        """The rate of ``per_env_step``'s one Polyak update in an env step of ``num_batches``
        (G) critic steps (module docstring)."""
        cfg = self.cfg
        n = num_batches if cfg.target_tau_per == "critic_update" else cfg.actor_updates_per_step
        return compounded_tau(cfg.tau, n)

    def update_env_step(self, batches: Sequence[Batch]) -> dict[str, Tensor]:
        """This env step's updates: one critic step per batch (G = ``len(batches)``, each
        ``[B, ...]``) and the actor and target updates the schedule places with them (module
        docstring); under the agent's own schedule, ``update(b)`` for each batch in order.

        Returns the agent's loss record of the last update (detached scalar tensors); no
        batches: nothing happens and ``{}`` is returned.
        """
        if not batches:
            return {}
        self.num_env_steps += 1
        if self.cfg.schedule == self.own_schedule:
            for batch in batches:
                losses = self._own_step(batch)
            return losses
        normalize, num = self.actor.obs_normalizer, len(batches)
        targets = self.critic_target_values(batches) if self.cfg.batched_targets else None
        for g, batch in enumerate(batches):
            target = targets[g] if targets is not None else self.critic_target_value(batch)
            critic_loss, q = self._critic_step(normalize(batch.obs), batch.action, target)
        k = self.cfg.actor_updates_per_step
        for j in range(k):
            batch = batches[(num - k + j) % num]
            self._actor_step(batch.obs, normalize(batch.obs))
        self._update_targets(self.env_step_tau(num))
        return self._losses(critic_loss, q)

    def train(
        self,
        gradient_steps: int,
        sample: Callable[[], Batch],
        objective: ModelObjective | None = None,
    ) -> dict[str, Tensor]:
        """This env step's ``gradient_steps`` updates, on batches drawn by ``sample()`` when
        (and only when) they are read: :meth:`update_env_step` on ``gradient_steps`` batches,
        or with a :class:`~spiking_dreamer.agent.objective.ModelObjective` that many of the
        agent's ``_objective_update`` (its docstring says what one is). Returns the loss record
        of the last update."""
        if objective is None:
            return self.update_env_step([sample() for _ in range(gradient_steps)])
        losses: dict[str, Tensor] = {}
        for _ in range(gradient_steps):
            losses = self._objective_update(sample, objective)
        return losses

    @property
    def update_counts(self) -> dict[str, int]:
        """How many critic steps, actor steps, target (Polyak) updates and env steps (calls of
        :meth:`update_env_step` with batches) ran so far."""
        return {
            "critic": self.num_updates,
            "actor": self.num_actor_updates,
            "target": self.num_target_updates,
            "env_steps": self.num_env_steps,
        }
