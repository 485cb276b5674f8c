"""TD3 (Fujimoto, van Hoof, Meger, "Addressing Function Approximation Error in Actor-Critic
Methods", ICML 2018) with a spiking actor and a twin ANN critic.

Critic target (clipped double-Q with target policy smoothing)::

    a' = clip(pi_targ(s') + clip(eps, -c, c), low, high),   eps ~ N(0, sigma^2)
    y  = r + gamma * (1 - terminated) * min(Q1_targ(s', a'), Q2_targ(s', a'))

Only termination stops the bootstrap; a time-limit truncation does not (the buffer stores
``terminated`` alone). The actor maximises ``Q1(s, pi(s))`` every ``policy_delay`` critic updates,
followed by Polyak averaging of both targets: ``theta_targ <- tau theta + (1 - tau) theta_targ``.
Noise scales are relative to the half-range of the action space. An optional activity penalty
``firing_rate_penalty * mean firing rate`` (spiking actor only) trades return for fewer spikes.

Target networks. ``pi_targ`` and ``Q_targ`` are slowly moving copies of the online networks:
bootstrapping from them instead of from the networks being fitted keeps the regression target
from chasing every critic step, which is what stabilises the TD bootstrap (TD3 §5.2; DQN's target
network made smooth by Polyak averaging, DDPG). TD3 moves them with every actor step, i.e. every
``policy_delay`` critic steps, so value estimates settle before the policy and the targets
follow them. REDQ (Chen et al., "Randomized Ensembled Double Q-Learning", ICLR 2021) and MBPO's
SAC move the targets with every critic step instead.

Per env step (:meth:`TD3.update_env_step`, G batches, ``td3.schedule``):

* ``td3`` (default): G TD3 steps, exactly ``update(b)`` for each batch in order; at G = 20 and
  ``policy_delay`` 2 that is 10 actor steps, 10 Polyak updates and 20 target-actor forwards.
* ``per_env_step`` (REDQ's arrangement: many critic steps, the policy once per env step): the
  actor and both targets are held fixed during the G critic steps; then
  ``actor_updates_per_step`` (K) actor steps on the last K batches, then **one** Polyak update
  of both targets. Fixed targets make the G TD targets independent of the critic steps, so they
  are computed in one forward of the target actor and target critic over all ``G * B`` next
  states (``batched_targets``); the spiking target actor runs once instead of G times. The
  single Polyak step uses ``tau' = 1 - (1 - tau)^n``: n Polyak steps of rate ``tau`` towards a
  fixed source equal one of rate ``tau'``, so the targets keep the same averaging horizon per
  env step (about ``1 / (n * tau)`` env steps) as n per-update Polyak steps; ``n`` is G
  (``target_tau_per: critic_update``, REDQ/MBPO) or K (``actor_update``, TD3's rule).

With a model-based actor objective (:meth:`TD3.train` with a
:class:`~spiking_dreamer.agent.objective.ModelObjective`, e.g. the SVG(H) value gradient), each
update is a critic step (TD3's target on a real batch, or the objective's critic loss), and
every ``policy_delay``-th update an actor step on the objective (plus the activity penalty) and
a Polyak update of both targets. What each schedule costs is measured in docs/regimes.md.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from spiking_dreamer.agent.base import action_bounds, add_clipped_noise, perturb
from spiking_dreamer.agent.critic import TwinQCritic
from spiking_dreamer.agent.mlp import MLPActor
from spiking_dreamer.agent.objective import ActorObjective, ModelObjective
from spiking_dreamer.agent.popsan import PopSpikingActor
from spiking_dreamer.agent.regularization import firing_rate_penalty
from spiking_dreamer.agent.schedule import EnvStepSchedule
from spiking_dreamer.buffers import Batch
from spiking_dreamer.config import TD3Config
from spiking_dreamer.snn import current_lif_scan_fused


@torch.no_grad()
def polyak_update(source: nn.Module, target: nn.Module, tau: float) -> None:
    """``target <- tau * source + (1 - tau) * target`` over parameters (in place)."""
    src = list(source.parameters())
    tgt = list(target.parameters())
    torch._foreach_lerp_(tgt, src, tau)


def _spiking_actions(actor: PopSpikingActor, spikes: Tensor) -> Tensor:
    """The spiking layers and decoder of ``actor`` on encoder spikes ``[T, N, O * P_in]`` ->
    actions ``[N, A]`` (the rest of :meth:`PopSpikingActor.spike_trains` and ``forward``)."""
    for layer in actor.layers:
        spikes = current_lif_scan_fused(layer(spikes), actor.neuron, actor.spike_fn)
    return actor.decode(spikes)


class TD3(EnvStepSchedule):
    """TD3 learner around a :class:`PopSpikingActor` (or :class:`MLPActor`) and a
    :class:`TwinQCritic`.

    The target actor shares the online actor's observation normaliser, so targets and actions
    always see observations normalised with the same statistics.

    :meth:`update` is one TD3 step; :meth:`update_env_step` is one env step's updates under
    ``cfg.schedule``. Counters (:attr:`update_counts`, saved by :meth:`state_dict`):
    ``num_updates`` critic steps, ``num_actor_updates`` actor steps, ``num_target_updates``
    Polyak updates (of both targets together), ``num_env_steps`` calls of
    :meth:`update_env_step` that ran updates.

    Args:
        actor, critic: online networks (already on ``device``).
        cfg: TD3 hyperparameters.
        generator: torch generator for the target-policy noise (on the networks' device).
    """

    own_schedule = "td3"

    def __init__(
        self,
        actor: PopSpikingActor | MLPActor,
        critic: TwinQCritic,
        cfg: TD3Config,
        generator: torch.Generator,
    ) -> None:
        self.actor, self.critic, self.cfg, self.generator = actor, critic, cfg, generator
        self.actor_target = copy.deepcopy(actor).requires_grad_(False)
        self.actor_target.obs_normalizer = actor.obs_normalizer
        self.critic_target = copy.deepcopy(critic).requires_grad_(False)
        self.actor_optimizer = torch.optim.Adam(actor.parameters(), lr=cfg.actor_lr, fused=True)
        self.critic_optimizer = torch.optim.Adam(critic.parameters(), lr=cfg.critic_lr, fused=True)
        self.num_updates = 0  # critic steps; drives policy_delay
        self.num_actor_updates = 0
        self.num_target_updates = 0
        self.num_env_steps = 0
        # what act(), the actor loss, the TD target and the critic loss call; see compile()
        self._policy: nn.Module = actor
        self._actor_fn: nn.Module = actor
        self._target_actor_fn: nn.Module = self.actor_target
        self._critic_fn: nn.Module = critic
        self._target_critic_fn: nn.Module = self.critic_target
        self._target_from_spikes: Any = _spiking_actions  # (actor, encoder spikes) -> actions
        self._actor_loss = torch.zeros(())
        self._act_input: Tensor | None = None  # act()'s preallocated [1, O] input
        self._half_range = actor.action_scale.cpu().numpy()
        self._low, self._high = (b.cpu().numpy() for b in action_bounds(actor))

    def compile(self) -> None:
        """Use ``torch.compile`` for acting (batch 1) and for every network forward of the
        update (actor loss, TD targets, batched ones included, critic loss); the hand-written
        spiking backward is traced and fused too. Same parameters and maths, far fewer kernel
        launches; compiling costs tens of seconds once per batch shape. On CUDA, acting also
        replays a CUDA graph (``reduce-overhead``): a batch-1 forward is launch-bound there."""
        on_cuda = self.actor.action_scale.device.type == "cuda"
        mode = "reduce-overhead" if on_cuda else None
        self._policy = torch.compile(self.actor, dynamic=False, mode=mode)
        self._actor_fn = torch.compile(self.actor, dynamic=False)
        self._target_actor_fn = torch.compile(self.actor_target, dynamic=False)
        self._critic_fn = torch.compile(self.critic, dynamic=False)
        self._target_critic_fn = torch.compile(self.critic_target, dynamic=False)
        self._target_from_spikes = torch.compile(_spiking_actions, dynamic=False)

    @torch.no_grad()
    def act(
        self, obs: np.ndarray, rng: np.random.Generator | None = None, noise: float = 0.0
    ) -> np.ndarray:
        """Action for one raw observation ``[O]``; Gaussian noise ``noise * half-range`` if set.

        The observation is copied into one preallocated ``[1, O]`` tensor: the compiled policy
        sees the same input every call (cheaper than a new tensor per step)."""
        x, device = self._act_input, self.actor.action_scale.device
        if x is None or x.device != device:
            x = self._act_input = torch.empty(1, self.actor.obs_dim, device=device)
        x.copy_(torch.from_numpy(np.asarray(obs))[None])
        action = self._policy(x)[0].cpu().numpy()
        if noise > 0:
            if rng is None:
                raise ValueError("exploration noise needs an rng")
            action = action + rng.normal(0.0, noise, size=action.shape) * self._half_range
            action = np.clip(action, self._low, self._high)
        return action.astype(np.float32)

    def explore(self, obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """The action taken in the real env while training: the actor's action plus Gaussian
        noise ``td3.exploration_noise * half-range`` drawn from ``rng``, clipped to the bounds."""
        return self.act(obs, rng, self.cfg.exploration_noise)

    def critic_target_value(self, batch: Batch) -> Tensor:
        """The TD target ``y`` ``[B]`` (no gradient)."""
        cfg, actor = self.cfg, self.actor_target
        with torch.no_grad():
            next_action = self._target_actor_fn(batch.next_obs)
            next_action = perturb(
                next_action, actor, cfg.target_noise, cfg.noise_clip, self.generator
            )
            next_q = self._target_critic_fn(actor.obs_normalizer(batch.next_obs), next_action)
            not_done = 1.0 - batch.terminated
            return batch.reward + cfg.gamma * not_done * next_q.min(0).values

    def critic_target_values(self, batches: Sequence[Batch]) -> Tensor:
        """The TD targets ``[G, B]`` of G batches (each ``[B, ...]``, the same ``B``) in one
        forward of the target actor and target critic over the ``[G * B, O]`` next states (no
        gradient).

        Equal to ``stack([critic_target_value(b) for b in batches])`` with the targets fixed:
        the smoothing noise is drawn batch by batch, in order, as ``[B, A]`` draws (one
        ``[G * B, A]`` draw would give other numbers: CPU ``randn`` fills blocks of 16), and a
        Bernoulli encoder draws its spikes batch by batch too (``[T, B, O * P_in]`` each, from
        the global generator, as G forwards would), then one batched pass runs the spiking
        layers. Every remaining op acts on each row alone; on CPU the batched matrix multiplies
        reproduce the per-batch ones bitwise at the PopSAN sizes (B = 100), but a BLAS may pick
        another kernel for another row count (seen for the critic at B = 7): then the targets
        agree to float rounding (about 1e-7 relative), unless a rounding difference flips a
        spike of the target actor.
        """
        if not batches:
            raise ValueError("need at least one batch")
        sizes = {len(b.reward) for b in batches}
        if len(sizes) != 1:
            raise ValueError(f"batches need one size to be stacked, got sizes {sorted(sizes)}")
        cfg, actor = self.cfg, self.actor_target
        n, batch_size = len(batches), sizes.pop()
        with torch.no_grad():
            next_obs = torch.cat([b.next_obs for b in batches])  # [G * B, O]
            if isinstance(actor, PopSpikingActor) and actor.encoder.encoding == "bernoulli":
                spikes = torch.cat(
                    [
                        actor.encoder(actor.obs_normalizer(b.next_obs), actor.cfg.spike_ts)
                        for b in batches
                    ],
                    dim=1,
                )  # [T, G * B, O * P_in]
                next_action = self._target_from_spikes(actor, spikes)
            else:
                next_action = self._target_actor_fn(next_obs)  # [G * B, A]
            device = next_action.device
            eps = torch.cat(
                [
                    torch.randn(
                        (batch_size, actor.act_dim), generator=self.generator, device=device
                    )
                    for _ in batches
                ]
            )
            next_action = add_clipped_noise(
                next_action, actor, eps, cfg.target_noise, cfg.noise_clip
            )
            next_q = self._target_critic_fn(actor.obs_normalizer(next_obs), next_action)
            next_v = next_q.min(0).values.view(n, batch_size)  # [G, B]
            reward = torch.stack([b.reward for b in batches])  # [G, B]
            not_done = 1.0 - torch.stack([b.terminated for b in batches])
            return reward + cfg.gamma * not_done * next_v

    @property
    def penalises_firing(self) -> bool:
        """Whether the actor loss carries the activity penalty (``td3.firing_rate_penalty > 0``
        and a spiking actor)."""
        return self.cfg.firing_rate_penalty > 0 and isinstance(self.actor, PopSpikingActor)

    def _actions_and_penalty(self, obs: Tensor) -> tuple[Tensor, Tensor | None]:
        """Actor actions on raw ``obs`` ``[B, O]`` and, when :attr:`penalises_firing`, the
        activity penalty ``firing_rate_penalty * mean firing rate`` from the same forward."""
        if self.penalises_firing:
            trains = self.actor.spike_trains(obs)
            return self.actor.decode(trains[-1]), self._penalty(trains)
        return self._actor_fn(obs), None

    def _penalty(self, trains: Sequence[Tensor]) -> Tensor:
        """``firing_rate_penalty * mean firing rate`` of the actor's spike trains."""
        return self.cfg.firing_rate_penalty * firing_rate_penalty(trains)

    def _critic_step(self, obs_n: Tensor, action: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
        """One critic step towards the TD target ``[B]``; returns the loss and ``Q`` ``[2, B]``.

        ``obs_n``: normalised observations ``[B, O]``; ``action``: ``[B, A]``."""
        q = self._critic_fn(obs_n, action)  # [2, B]
        critic_loss = F.mse_loss(q, target.expand_as(q), reduction="none").mean(1).sum()
        self._critic_step_on(critic_loss)
        return critic_loss, q

    @property
    def last_actor_loss(self) -> Tensor:
        """The latest actor step's loss (detached; 0 before the first)."""
        return self._actor_loss

    def critic_update(self, batch: Batch) -> tuple[Tensor, Tensor]:
        """One critic step towards TD3's target on ``batch``; returns the loss and ``Q``
        ``[2, B]`` (for update rules built from TD3's parts, e.g. value-gradient learning)."""
        obs_n = self.actor.obs_normalizer(batch.obs)
        return self._critic_step(obs_n, batch.action, self.critic_target_value(batch))

    def _critic_step_on(self, loss: Tensor) -> None:
        """One critic optimiser step on a scalar ``loss`` (a TD or value-expansion loss)."""
        self.critic_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.critic_optimizer.step()
        self.num_updates += 1

    def _actor_step_on(self, loss: Tensor) -> None:
        """One actor optimiser step on a scalar ``loss`` (TD3's ``-Q1(s, pi(s))`` or a value
        gradient's); gradients go to the actor's parameters only."""
        self.actor_optimizer.zero_grad(set_to_none=True)
        loss.backward(inputs=list(self.actor.parameters()))
        self.actor_optimizer.step()
        self._actor_loss = loss.detach()
        self.num_actor_updates += 1

    def _actor_step(self, obs: Tensor, obs_n: Tensor) -> None:
        """One actor step: maximise ``Q1(s, pi(s))`` (minus the activity penalty) on raw
        observations ``obs`` ``[B, O]`` (``obs_n``: the same, normalised)."""
        action, penalty = self._actions_and_penalty(obs)
        actor_loss = -self._critic_fn(obs_n, action)[0].mean()
        self._actor_step_on(actor_loss if penalty is None else actor_loss + penalty)

    def actor_update(self, batch: Batch) -> None:
        """One actor step of TD3's own objective on ``batch`` (no target update)."""
        self._actor_step(batch.obs, self.actor.obs_normalizer(batch.obs))

    @property
    def target_networks(self) -> dict[str, nn.Module]:
        """The target networks by name."""
        return {"target actor": self.actor_target, "target critic": self.critic_target}

    def soft_update_targets(self, tau: float) -> None:
        """Polyak update of both targets: ``theta_targ <- tau theta + (1 - tau) theta_targ``
        (not counted)."""
        polyak_update(self.actor, self.actor_target, tau)
        polyak_update(self.critic, self.critic_target, tau)

    def _losses(self, critic_loss: Tensor, q: Tensor) -> dict[str, Tensor]:
        return {
            "critic_loss": critic_loss.detach(),
            "actor_loss": self._actor_loss,
            "q_mean": q.detach().mean(),
        }

    def _own_step(self, batch: Batch) -> dict[str, Tensor]:
        target = self.critic_target_value(batch)
        obs_n = self.actor.obs_normalizer(batch.obs)
        critic_loss, q = self._critic_step(obs_n, batch.action, target)
        if self.num_updates % self.cfg.policy_delay == 0:
            self._actor_step(batch.obs, obs_n)
            self._update_targets(self.cfg.tau)
        return self._losses(critic_loss, q)

    def update(self, batch: Batch) -> dict[str, Tensor]:
        """One TD3 step (``td3.schedule: td3`` only): a critic step; every ``policy_delay``-th
        call also an actor step and a Polyak update of both targets with ``tau``.

        Returns detached scalar tensors (no host sync here): ``critic_loss``, ``actor_loss``
        (the most recent one), ``q_mean``.

        Raises:
            RuntimeError: under ``td3.schedule: per_env_step``, whose updates exist only per
                env step (:meth:`update_env_step`).
        """
        if self.cfg.schedule != "td3":
            raise RuntimeError(
                f"td3.schedule is {self.cfg.schedule}: run an env step's updates with "
                "update_env_step(batches), not update(batch)"
            )
        return self._own_step(batch)

    def _objective_update(
        self, sample: Callable[[], Batch], objective: ModelObjective
    ) -> dict[str, Tensor]:
        """One update with a model objective (:meth:`train`):

        1. a critic step: TD3's target on a real batch if ``objective.critic_on_real_batches``;
        2. every ``policy_delay``-th update (counting critic steps, this one included): an actor
           step on ``objective.actor_objective`` plus the activity penalty on its start states
           (skipped when the objective is not ``usable``);
        3. otherwise the critic step is on ``objective.critic_loss`` of the same rollout
           (built without a graph when no actor step is due);
        4. with an actor step due, a Polyak update of both targets with ``tau``.

        Returns the loss record (see :meth:`update`), with the objective's ``stats``."""
        cfg, normalize = self.cfg, self.actor.obs_normalizer
        real = objective.critic_on_real_batches
        if real:
            critic_loss, q = self.critic_update(sample())
        actor_due = (self.num_updates + (0 if real else 1)) % cfg.policy_delay == 0
        result: ActorObjective | None = None
        if actor_due or not real:
            with torch.enable_grad() if actor_due else torch.no_grad():
                result = objective.actor_objective(
                    self.actor, self.critic, normalize, cfg.gamma, actor_step=actor_due
                )
        if actor_due and result.usable:
            loss = result.loss
            if self.penalises_firing:
                loss = loss + self._penalty(self.actor.spike_trains(result.obs))
            self._actor_step_on(loss)
        if not real:
            critic_loss, q = objective.critic_loss(
                result,
                self.critic,
                self.actor_target,
                self.critic_target,
                normalize,
                cfg.gamma,
                cfg.target_noise,
                cfg.noise_clip,
            )
            self._critic_step_on(critic_loss)
        if actor_due:
            self._update_targets(cfg.tau)
        losses = self._losses(critic_loss, q)
        return {**losses, **result.stats} if result is not None else losses

    def state_dict(self) -> dict[str, Any]:
        """Networks, targets, optimisers, the update counters and the latest actor loss (the
        target-noise generator is its owner's to save)."""
        return {
            "actor": self.actor.state_dict(),
            "critic": self.critic.state_dict(),
            "actor_target": self.actor_target.state_dict(),
            "critic_target": self.critic_target.state_dict(),
            "actor_optimizer": self.actor_optimizer.state_dict(),
            "critic_optimizer": self.critic_optimizer.state_dict(),
            "actor_loss": self._actor_loss,
            "num_updates": self.num_updates,
            "num_actor_updates": self.num_actor_updates,
            "num_target_updates": self.num_target_updates,
            "num_env_steps": self.num_env_steps,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict`; a state without the actor, target and env-step counters
        (schedule ``td3``) gets ``num_updates // policy_delay`` actor and target updates."""
        self.actor.load_state_dict(state["actor"])
        self.critic.load_state_dict(state["critic"])
        self.actor_target.load_state_dict(state["actor_target"])
        self.critic_target.load_state_dict(state["critic_target"])
        self.actor_optimizer.load_state_dict(state["actor_optimizer"])
        self.critic_optimizer.load_state_dict(state["critic_optimizer"])
        self._actor_loss = state["actor_loss"]
        self.num_updates = state["num_updates"]
        delayed = self.num_updates // self.cfg.policy_delay
        self.num_actor_updates = state.get("num_actor_updates", delayed)
        self.num_target_updates = state.get("num_target_updates", delayed)
        self.num_env_steps = state.get("num_env_steps", 0)
