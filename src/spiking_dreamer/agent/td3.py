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
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from spiking_dreamer.agent.critic import TwinQCritic
from spiking_dreamer.agent.mlp import MLPActor
from spiking_dreamer.agent.popsan import PopSpikingActor
from spiking_dreamer.agent.regularization import firing_rate_penalty
from spiking_dreamer.buffers import Batch
from spiking_dreamer.config import TD3Config


@torch.no_grad()
def polyak_update(source: nn.Module, target: nn.Module, tau: float) -> None:
    """``target <- tau * source + (1 - tau) * target`` over parameters (in place)."""
    src = list(source.parameters())
    tgt = list(target.parameters())
    torch._foreach_lerp_(tgt, src, tau)


class TD3:
    """TD3 learner around a :class:`PopSpikingActor` (or :class:`MLPActor`) and a
    :class:`TwinQCritic`.

    The target actor shares the online actor's observation normaliser, so targets and actions
    always see observations normalised with the same statistics.

    Args:
        actor, critic: online networks (already on ``device``).
        cfg: TD3 hyperparameters.
        generator: torch generator for the target-policy noise (on the networks' device).
    """

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
        self.num_updates = 0
        # what act(), the actor loss, the TD target and the critic loss call; see compile()
        self._policy: nn.Module = actor
        self._actor_fn: nn.Module = actor
        self._target_actor_fn: nn.Module = self.actor_target
        self._critic_fn: nn.Module = critic
        self._target_critic_fn: nn.Module = self.critic_target
        self._actor_loss = torch.zeros(())
        self._act_input: Tensor | None = None  # act()'s preallocated [1, O] input
        self._half_range = actor.action_scale.cpu().numpy()
        self._low = (actor.action_bias - actor.action_scale).cpu().numpy()
        self._high = (actor.action_bias + actor.action_scale).cpu().numpy()

    def compile(self) -> None:
        """Use ``torch.compile`` for acting (batch 1) and for every network forward of the
        update (actor loss, TD target, critic loss); the hand-written spiking backward is traced
        and fused too. Same parameters and maths, far fewer kernel launches; compiling costs
        tens of seconds once per batch shape. On CUDA, acting also replays a CUDA graph
        (``reduce-overhead``): a batch-1 forward is launch-bound there."""
        on_cuda = self.actor.action_scale.device.type == "cuda"
        mode = "reduce-overhead" if on_cuda else None
        self._policy = torch.compile(self.actor, dynamic=False, mode=mode)
        self._actor_fn = torch.compile(self.actor, dynamic=False)
        self._target_actor_fn = torch.compile(self.actor_target, dynamic=False)
        self._critic_fn = torch.compile(self.critic, dynamic=False)
        self._target_critic_fn = torch.compile(self.critic_target, dynamic=False)

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

    def critic_target_value(self, batch: Batch) -> Tensor:
        """The TD target ``y`` ``[B]`` (no gradient)."""
        cfg, actor = self.cfg, self.actor_target
        with torch.no_grad():
            next_action = self._target_actor_fn(batch.next_obs)
            noise = torch.randn(
                next_action.shape, generator=self.generator, device=next_action.device
            )
            noise = (noise * cfg.target_noise).clamp(-cfg.noise_clip, cfg.noise_clip)
            low = actor.action_bias - actor.action_scale
            high = actor.action_bias + actor.action_scale
            next_action = torch.clamp(next_action + noise * actor.action_scale, low, high)
            next_q = self._target_critic_fn(actor.obs_normalizer(batch.next_obs), next_action)
            not_done = 1.0 - batch.terminated
            return batch.reward + cfg.gamma * not_done * next_q.min(0).values

    def _actions_with_penalty(self, obs: Tensor) -> Tensor:
        """Actor actions; with ``firing_rate_penalty > 0`` (spiking actor) also sets the
        activity penalty ``coef * mean firing rate`` to add to the actor loss."""
        coef = self.cfg.firing_rate_penalty
        if coef > 0 and isinstance(self.actor, PopSpikingActor):
            trains = self.actor.spike_trains(obs)
            self._penalty = coef * firing_rate_penalty(trains)
            return self.actor.decode(trains[-1])
        self._penalty = torch.zeros((), device=obs.device)
        return self._actor_fn(obs)

    def update(self, batch: Batch) -> dict[str, Tensor]:
        """One critic step; every ``policy_delay``-th call also an actor step and Polyak updates.

        Returns detached scalar tensors (no host sync here): ``critic_loss``, ``actor_loss``
        (the most recent one), ``q_mean``.
        """
        target = self.critic_target_value(batch)
        obs_n = self.actor.obs_normalizer(batch.obs)
        q = self._critic_fn(obs_n, batch.action)  # [2, B]
        critic_loss = F.mse_loss(q, target.expand_as(q), reduction="none").mean(1).sum()
        self.critic_optimizer.zero_grad(set_to_none=True)
        critic_loss.backward()
        self.critic_optimizer.step()

        self.num_updates += 1
        if self.num_updates % self.cfg.policy_delay == 0:
            actor_loss = -self._critic_fn(obs_n, self._actions_with_penalty(batch.obs))[0].mean()
            actor_loss = actor_loss + self._penalty
            self.actor_optimizer.zero_grad(set_to_none=True)
            actor_loss.backward(inputs=list(self.actor.parameters()))
            self.actor_optimizer.step()
            polyak_update(self.actor, self.actor_target, self.cfg.tau)
            polyak_update(self.critic, self.critic_target, self.cfg.tau)
            self._actor_loss = actor_loss.detach()
        return {
            "critic_loss": critic_loss.detach(),
            "actor_loss": self._actor_loss,
            "q_mean": q.detach().mean(),
        }

    def state_dict(self) -> dict[str, Any]:
        """Networks, targets, optimisers, the update count and the latest actor loss (the
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
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        self.actor.load_state_dict(state["actor"])
        self.critic.load_state_dict(state["critic"])
        self.actor_target.load_state_dict(state["actor_target"])
        self.critic_target.load_state_dict(state["critic_target"])
        self.actor_optimizer.load_state_dict(state["actor_optimizer"])
        self.critic_optimizer.load_state_dict(state["critic_optimizer"])
        self._actor_loss = state["actor_loss"]
        self.num_updates = state["num_updates"]
