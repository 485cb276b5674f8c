"""SAC (Haarnoja, Zhou, Hartikainen, Tucker, Ha, Tan, Kumar, Zhu, Gupta, Abbeel, Levine, "Soft
Actor-Critic Algorithms and Applications", arXiv 1812.05905, 2018: "v2", with the automatic
temperature) with a stochastic spiking actor (PopSAN-SAC; Tang et al., CoRL 2020) and a twin ANN
critic.

Critic target (clipped double-Q, next action sampled from the *current* policy; eqs. 3, 5)::

    a' ~ pi(. | s'),
    y  = r + gamma * (1 - terminated) * (min_i Q_i'(s', a') - alpha log pi(a' | s'))

Only termination stops the bootstrap; a time-limit truncation does not (the buffer stores
``terminated`` alone). There is no target actor: ``Q'`` is a Polyak average of the critic.

Actor loss (reparameterised, eq. 7 with ``a = f(eps; s)``, the minimum of the two critics as in
the authors' code and PopSAN-SAC)::

    a = tanh(mu(s) + sigma(s) * eps) * scale + bias,   eps ~ N(0, I)
    L_pi = mean( alpha log pi(a | s) - min_i Q_i(s, a) )  (+ firing_rate_penalty * firing rate)

Temperature (eq. 18, on ``log alpha`` as in the authors' softlearning code), towards the target
entropy ``H = -|A|`` by default::

    L_alpha = -mean( log_alpha * (log pi(a | s) + H) )      (log pi from the actor step's sample)

One SAC step (``sac.schedule: sac``) is a critic step, an actor step, a temperature step (with
``auto_alpha``) and a Polyak update of the target critic with ``tau``; alpha is the value before
the step for all three. ``per_env_step`` is REDQ's arrangement (Chen et al., ICLR 2021), as for
TD3 (:mod:`spiking_dreamer.agent.td3`): G critic steps with the actor, alpha and the target
critic fixed (their TD targets in one batched forward), then ``actor_updates_per_step`` actor and
temperature steps on the last batches, then one Polyak update with the compounded rate
``1 - (1 - tau)^n``.

With a model-based actor objective (:meth:`SAC.train` with a
:class:`~spiking_dreamer.agent.objective.ModelObjective`, e.g. the SVG(H) value gradient with
SAC's entropy term, as DHMBPO) each update is a critic step (SAC's target on a real batch, or
the objective's critic loss), an actor step on the objective (plus the activity penalty), a
temperature step on the log-densities of the objective's first sampled actions, and a Polyak
update of the target critic.

Randomness: the policy noise ``eps`` of targets and actor steps comes from the agent's
generator (saved with the run), a Bernoulli encoder draws from the global generator (as TD3's);
acting in the real env draws ``eps`` from the run's NumPy generator.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from spiking_dreamer.agent.critic import TwinQCritic
from spiking_dreamer.agent.gaussian import SquashedGaussian, squashed_sample
from spiking_dreamer.agent.mlp import MLPGaussianActor
from spiking_dreamer.agent.objective import ModelObjective
from spiking_dreamer.agent.popsan import PopSpikingActor, PopSpikingGaussianActor
from spiking_dreamer.agent.regularization import firing_rate_penalty
from spiking_dreamer.agent.schedule import EnvStepSchedule
from spiking_dreamer.agent.td3 import polyak_update
from spiking_dreamer.buffers import Batch
from spiking_dreamer.config import SACConfig

GaussianActor = PopSpikingGaussianActor | MLPGaussianActor
"""A stochastic actor: raw observations ``[B, O]`` -> squashed-Gaussian actions ``[B, A]``."""


def temperature_loss(log_alpha: Tensor, log_prob: Tensor, target_entropy: float) -> Tensor:
    """``-mean(log_alpha * (log pi + H))`` for log-densities ``[B]`` (detached) of policy
    samples: its gradient ``-(mean log pi + H) = entropy - H`` lowers alpha while the policy's
    entropy estimate ``-mean log pi`` is above the target ``H`` and raises it below (Haarnoja et
    al. 2018 v2, eq. 18, on ``log alpha``)."""
    return -(log_alpha * (log_prob.detach() + target_entropy)).mean()


def _mean_and_log_std(actor: SquashedGaussian, obs: Tensor) -> tuple[Tensor, Tensor]:
    """The pre-squash mean and clamped log-std ``[B, A]`` of ``actor`` on raw ``obs``."""
    dist = actor.gaussian(obs)
    return dist.mean, dist.log_std


class SAC(EnvStepSchedule):
    """SAC learner around a stochastic :class:`PopSpikingGaussianActor` (or
    :class:`MLPGaussianActor`) and a :class:`TwinQCritic`, with the interface of
    :class:`~spiking_dreamer.agent.TD3` (:meth:`train`, :meth:`update_env_step`, :meth:`act`,
    :meth:`explore`, :attr:`update_counts`, :meth:`state_dict`, :meth:`compile`).

    Counters (saved by :meth:`state_dict`): ``num_updates`` critic steps,
    ``num_actor_updates`` actor steps (each with its temperature step), ``num_target_updates``
    Polyak updates, ``num_env_steps`` calls of :meth:`update_env_step` that ran updates.

    Args:
        actor: the stochastic actor (already on the device).
        critic: the twin critic.
        cfg: SAC hyperparameters.
        generator: torch generator for the policy noise of targets and actor steps.
    """

    own_schedule = "sac"

    def __init__(
        self, actor: GaussianActor, critic: TwinQCritic, cfg: SACConfig, generator: torch.Generator
    ) -> None:
        if not isinstance(actor, SquashedGaussian):
            raise TypeError(
                f"SAC needs a stochastic actor (squashed Gaussian), got {type(actor).__name__}"
            )
        self.actor, self.critic, self.cfg, self.generator = actor, critic, cfg, generator
        self.critic_target = copy.deepcopy(critic).requires_grad_(False)
        log_std = actor.log_std_parameters()
        own = {id(p) for p in log_std}
        mean_path = [p for p in actor.parameters() if id(p) not in own]
        self.actor_optimizer = torch.optim.Adam(
            [{"params": mean_path}, {"params": log_std, "lr": cfg.log_std_lr}],
            lr=cfg.actor_lr,
            fused=True,
        )
        self.critic_optimizer = torch.optim.Adam(critic.parameters(), lr=cfg.critic_lr, fused=True)
        device = actor.action_scale.device
        self.log_alpha = torch.tensor(
            float(np.log(cfg.alpha)), device=device, requires_grad=cfg.auto_alpha
        )
        self.alpha_optimizer = (
            torch.optim.Adam([self.log_alpha], lr=cfg.alpha_lr, fused=True)
            if cfg.auto_alpha
            else None
        )
        self.target_entropy = (
            -float(actor.act_dim) if cfg.target_entropy is None else float(cfg.target_entropy)
        )
        self.num_updates = 0
        self.num_actor_updates = 0
        self.num_target_updates = 0
        self.num_env_steps = 0
        self._actor_loss = torch.zeros((), device=device)
        self._entropy = torch.zeros((), device=device)  # -mean log pi of the latest actor step
        # what act(), the Gaussian's forward and the critic losses call; see compile()
        self._policy: nn.Module = actor
        self._gaussian_fn: Callable[[Tensor], tuple[Tensor, Tensor]] = functools.partial(
            _mean_and_log_std, actor
        )
        self._critic_fn: nn.Module = critic
        self._target_critic_fn: nn.Module = self.critic_target
        self._act_input: Tensor | None = None

    def compile(self) -> None:
        """Use ``torch.compile`` for acting, for the Gaussian's forward (mean and log-std, in
        targets and in actor steps without the activity penalty, which needs the spike trains)
        and for the critics' forwards. Same parameters and maths; compiling costs a while once
        per batch shape."""
        on_cuda = self.actor.action_scale.device.type == "cuda"
        mode = "reduce-overhead" if on_cuda else None
        self._policy = torch.compile(self.actor, dynamic=False, mode=mode)
        self._gaussian_fn = torch.compile(
            functools.partial(_mean_and_log_std, self.actor), dynamic=False
        )
        self._critic_fn = torch.compile(self.critic, dynamic=False)
        self._target_critic_fn = torch.compile(self.critic_target, dynamic=False)

    # ------------------------------------------------------------------------------ acting

    @property
    def alpha(self) -> Tensor:
        """The temperature ``exp(log alpha)`` (a detached scalar tensor)."""
        return self.log_alpha.detach().exp()

    def _input(self, obs: np.ndarray) -> Tensor:
        x, device = self._act_input, self.actor.action_scale.device
        if x is None or x.device != device:
            x = self._act_input = torch.empty(1, self.actor.obs_dim, device=device)
        x.copy_(torch.from_numpy(np.asarray(obs))[None])
        return x

    @torch.no_grad()
    def act(
        self, obs: np.ndarray, rng: np.random.Generator | None = None, noise: float = 0.0
    ) -> np.ndarray:
        """Action for one raw observation ``[O]``: without ``rng`` the deterministic action
        ``tanh(mean)`` within the bounds (evaluation); with ``rng`` a sample of the policy, its
        ``eps ~ N(0, I)`` drawn from ``rng``.

        Raises:
            ValueError: ``noise > 0``: SAC explores by sampling its policy, not by TD3's
                Gaussian action noise.
        """
        if noise > 0:
            raise ValueError("SAC explores by sampling its policy: no Gaussian action noise")
        x = self._input(obs)
        if rng is None:
            action = self._policy(x)[0]
        else:
            mean, log_std = self._gaussian_fn(x)
            eps = torch.as_tensor(rng.standard_normal(self.actor.act_dim), dtype=mean.dtype)
            actor = self.actor
            action = squashed_sample(
                mean, log_std, eps.to(mean.device)[None], actor.action_scale, actor.action_bias
            )[0][0]
        return action.cpu().numpy().astype(np.float32)

    def explore(self, obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """The action taken in the real env while training: a sample of the policy."""
        return self.act(obs, rng)

    # ------------------------------------------------------------------------------ critic

    def _next_value(self, next_obs: Tensor, dist: tuple[Tensor, Tensor], eps: Tensor) -> Tensor:
        """``min_i Q_i'(s', a') - alpha log pi(a' | s')`` ``[N]`` for ``a'`` the sample of the
        Gaussian ``dist`` (mean, log-std ``[N, A]``) with noise ``eps``."""
        actor = self.actor
        action, log_prob = squashed_sample(*dist, eps, actor.action_scale, actor.action_bias)
        next_q = self._target_critic_fn(actor.obs_normalizer(next_obs), action)
        return next_q.min(0).values - self.alpha * log_prob

    def _policy_noise(self, rows: int) -> Tensor:
        device = self.actor.action_scale.device
        return torch.randn((rows, self.actor.act_dim), generator=self.generator, device=device)

    def critic_target_value(self, batch: Batch, eps: Tensor | None = None) -> Tensor:
        """SAC's TD target ``y`` ``[B]`` (no gradient): draws a Bernoulli encoder's spikes
        (global generator), then ``eps`` ``[B, A]``, the noise of the sampled next action, from
        the agent's generator unless given (the same ``eps`` for two batches compares their
        targets with common random numbers)."""
        with torch.no_grad():
            dist = self._gaussian_fn(batch.next_obs)
            if eps is None:
                eps = self._policy_noise(len(batch.reward))
            next_v = self._next_value(batch.next_obs, dist, eps)
            not_done = 1.0 - batch.terminated
            return batch.reward + self.cfg.gamma * not_done * next_v

    def critic_target_values(self, batches: Sequence[Batch]) -> Tensor:
        """The TD targets ``[G, B]`` of G batches (each ``[B, ...]``, the same ``B``), with one
        forward of the actor and one of the target critic over all ``G * B`` next states (a
        Bernoulli encoder: the actor batch by batch, to draw its spikes as G forwards would);
        ``eps`` is drawn batch by batch. Equal to ``stack([critic_target_value(b) ...])`` with
        the actor, alpha and targets fixed, up to the rounding of larger matrix products (see
        :meth:`~spiking_dreamer.agent.TD3.critic_target_values`)."""
        if not batches:
            raise ValueError("need at least one batch")
        sizes = {len(b.reward) for b in batches}
        if len(sizes) != 1:
            raise ValueError(f"batches need one size to be stacked, got sizes {sorted(sizes)}")
        n, batch_size = len(batches), sizes.pop()
        actor = self.actor
        with torch.no_grad():
            next_obs = torch.cat([b.next_obs for b in batches])  # [G * B, O]
            if isinstance(actor, PopSpikingActor) and actor.encoder.encoding == "bernoulli":
                parts = [self._gaussian_fn(b.next_obs) for b in batches]
                dist = (torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts]))
            else:
                dist = self._gaussian_fn(next_obs)
            eps = torch.cat([self._policy_noise(batch_size) for _ in batches])
            next_v = self._next_value(next_obs, dist, eps).view(n, batch_size)
            reward = torch.stack([b.reward for b in batches])
            not_done = 1.0 - torch.stack([b.terminated for b in batches])
            return reward + self.cfg.gamma * not_done * next_v

    def _critic_step(self, obs_n: Tensor, action: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
        """One critic step towards ``target`` ``[B]``: ``sum_i mean_b (Q_i - y)^2``; returns
        the loss and ``Q`` ``[2, B]``."""
        q = self._critic_fn(obs_n, action)
        critic_loss = F.mse_loss(q, target.expand_as(q), reduction="none").mean(1).sum()
        self._critic_step_on(critic_loss)
        return critic_loss, q

    def _critic_step_on(self, loss: Tensor) -> None:
        self.critic_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.critic_optimizer.step()
        self.num_updates += 1

    def critic_update(self, batch: Batch) -> tuple[Tensor, Tensor]:
        """One critic step towards SAC's target on ``batch``; returns the loss and ``Q``
        ``[2, B]``."""
        obs_n = self.actor.obs_normalizer(batch.obs)
        return self._critic_step(obs_n, batch.action, self.critic_target_value(batch))

    # ------------------------------------------------------------------------------ actor

    @property
    def penalises_firing(self) -> bool:
        """Whether the actor loss carries the activity penalty (``sac.firing_rate_penalty > 0``
        and a spiking actor)."""
        return self.cfg.firing_rate_penalty > 0 and isinstance(self.actor, PopSpikingActor)

    @property
    def last_actor_loss(self) -> Tensor:
        """The latest actor step's loss (detached; 0 before the first)."""
        return self._actor_loss

    def _actor_step_on(self, loss: Tensor) -> None:
        """One actor optimiser step on a scalar ``loss``; gradients go to the actor only."""
        self.actor_optimizer.zero_grad(set_to_none=True)
        loss.backward(inputs=list(self.actor.parameters()))
        self.actor_optimizer.step()
        self._actor_loss = loss.detach()
        self.num_actor_updates += 1

    def _temperature_step(self, log_prob: Tensor) -> None:
        """Record the entropy estimate ``-mean log pi`` of ``log_prob`` ``[B]`` (detached) and,
        with ``auto_alpha``, one step on ``-mean(log_alpha * (log pi + H))``."""
        log_prob = log_prob.detach()
        self._entropy = -log_prob.mean()
        if self.alpha_optimizer is None:
            return
        loss = temperature_loss(self.log_alpha, log_prob, self.target_entropy)
        self.alpha_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.alpha_optimizer.step()

    def _actor_step(self, obs: Tensor, obs_n: Tensor) -> None:
        """One actor step on ``mean(alpha log pi(a|s) - min_i Q_i(s, a))`` (plus the activity
        penalty) for reparameterised samples ``a`` on raw ``obs`` ``[B, O]`` (``obs_n``: the
        same, normalised), then its temperature step."""
        actor = self.actor
        if self.penalises_firing:
            dist = actor.gaussian(obs)
            penalty = self.cfg.firing_rate_penalty * firing_rate_penalty(dist.spike_trains)
            mean, log_std = dist.mean, dist.log_std
        else:
            (mean, log_std), penalty = self._gaussian_fn(obs), None
        eps = self._policy_noise(obs.shape[0])
        action, log_prob = squashed_sample(
            mean, log_std, eps, actor.action_scale, actor.action_bias
        )
        q = self._critic_fn(obs_n, action).min(0).values
        loss = (self.alpha * log_prob - q).mean()
        self._actor_step_on(loss if penalty is None else loss + penalty)
        self._temperature_step(log_prob)

    def actor_update(self, batch: Batch) -> None:
        """One actor and temperature step on ``batch`` (no target update)."""
        self._actor_step(batch.obs, self.actor.obs_normalizer(batch.obs))

    # ------------------------------------------------------------------------------ targets

    @property
    def target_networks(self) -> dict[str, nn.Module]:
        """The target networks by name (SAC has a target critic only)."""
        return {"target critic": self.critic_target}

    def soft_update_targets(self, tau: float) -> None:
        """Polyak update of the target critic (not counted)."""
        polyak_update(self.critic, self.critic_target, tau)

    # ------------------------------------------------------------------------------ updates

    def _losses(self, critic_loss: Tensor, q: Tensor) -> dict[str, Tensor]:
        return {
            "critic_loss": critic_loss.detach(),
            "actor_loss": self._actor_loss,
            "q_mean": q.detach().mean(),
            "alpha": self.alpha,
            "entropy": self._entropy,
        }

    def _own_step(self, batch: Batch) -> dict[str, Tensor]:
        target = self.critic_target_value(batch)
        obs_n = self.actor.obs_normalizer(batch.obs)
        critic_loss, q = self._critic_step(obs_n, batch.action, target)
        self._actor_step(batch.obs, obs_n)
        self._update_targets(self.cfg.tau)
        return self._losses(critic_loss, q)

    def update(self, batch: Batch) -> dict[str, Tensor]:
        """One SAC step (``sac.schedule: sac`` only): a critic step, an actor and temperature
        step, a Polyak update of the target critic with ``tau``.

        Returns detached scalar tensors: ``critic_loss``, ``actor_loss``, ``q_mean``, ``alpha``
        (after the step) and ``entropy`` (``-mean log pi`` of the actor step's samples).

        Raises:
            RuntimeError: under ``sac.schedule: per_env_step`` (:meth:`update_env_step`).
        """
        if self.cfg.schedule != "sac":
            raise RuntimeError(
                f"sac.schedule is {self.cfg.schedule}: run an env step's updates with "
                "update_env_step(batches), not update(batch)"
            )
        return self._own_step(batch)

    def _objective_update(
        self, sample: Callable[[], Batch], objective: ModelObjective
    ) -> dict[str, Tensor]:
        """One update with a model objective (:meth:`train`):

        1. a critic step on SAC's target on a real batch, if ``objective.critic_on_real_batches``;
        2. an actor step on ``objective.actor_objective(..., alpha=alpha)`` plus the activity
           penalty on its start states, and a temperature step on its ``log_prob`` (both
           skipped when the objective is not ``usable``);
        3. otherwise the critic step on ``objective.critic_loss`` of the same rollout, whose
           bootstrap samples the (online) policy with ``alpha``;
        4. a Polyak update of the target critic with ``tau``.

        ``alpha`` is the temperature before the update. Returns the loss record, with the
        objective's ``stats``."""
        cfg, normalize, alpha = self.cfg, self.actor.obs_normalizer, self.alpha
        real = objective.critic_on_real_batches
        if real:
            critic_loss, q = self.critic_update(sample())
        with torch.enable_grad():
            result = objective.actor_objective(
                self.actor, self.critic, normalize, cfg.gamma, alpha=alpha
            )
        if result.usable:
            loss = result.loss
            if self.penalises_firing:
                trains = self.actor.spike_trains(result.obs)
                loss = loss + cfg.firing_rate_penalty * firing_rate_penalty(trains)
            self._actor_step_on(loss)
            if result.log_prob is not None:
                self._temperature_step(result.log_prob)
        if not real:
            critic_loss, q = objective.critic_loss(
                result,
                self.critic,
                self.actor,  # SAC's targets sample the current policy
                self.critic_target,
                normalize,
                cfg.gamma,
                0.0,
                0.0,
                alpha=alpha,
            )
            self._critic_step_on(critic_loss)
        self._update_targets(cfg.tau)
        return {**self._losses(critic_loss, q), **result.stats}

    # ------------------------------------------------------------------------------ state

    def state_dict(self) -> dict[str, Any]:
        """Networks, the target critic, optimisers, the temperature (``log_alpha``, its
        optimiser), the counters and the latest actor loss and entropy (the generator is its
        owner's to save)."""
        return {
            "actor": self.actor.state_dict(),
            "critic": self.critic.state_dict(),
            "critic_target": self.critic_target.state_dict(),
            "actor_optimizer": self.actor_optimizer.state_dict(),
            "critic_optimizer": self.critic_optimizer.state_dict(),
            "log_alpha": self.log_alpha.detach().clone(),
            "alpha_optimizer": (
                self.alpha_optimizer.state_dict() if self.alpha_optimizer is not None else None
            ),
            "actor_loss": self._actor_loss,
            "entropy": self._entropy,
            "num_updates": self.num_updates,
            "num_actor_updates": self.num_actor_updates,
            "num_target_updates": self.num_target_updates,
            "num_env_steps": self.num_env_steps,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        self.actor.load_state_dict(state["actor"])
        self.critic.load_state_dict(state["critic"])
        self.critic_target.load_state_dict(state["critic_target"])
        self.actor_optimizer.load_state_dict(state["actor_optimizer"])
        self.critic_optimizer.load_state_dict(state["critic_optimizer"])
        with torch.no_grad():
            self.log_alpha.copy_(state["log_alpha"])
        if self.alpha_optimizer is not None:
            self.alpha_optimizer.load_state_dict(state["alpha_optimizer"])
        self._actor_loss = state["actor_loss"]
        self._entropy = state["entropy"]
        self.num_updates = state["num_updates"]
        self.num_actor_updates = state["num_actor_updates"]
        self.num_target_updates = state["num_target_updates"]
        self.num_env_steps = state["num_env_steps"]


__all__ = ["SAC", "GaussianActor", "temperature_loss"]
