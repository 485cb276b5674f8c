"""Value-gradient learning through the world model (DHMBPO; Kubo, Parmas, Ishii, TMLR 2025).

Two kinds of imagined rollouts with two horizons:

* **Distribution rollouts** (:func:`distribution_rollout`, no gradient): every
  ``distribution_every`` env steps, ``distribution_starts`` real states are rolled ``D``
  (``distribution_horizon``) steps through the model with the current actor and exploration
  noise (as :class:`~spiking_dreamer.dreaming.dreamer.Dreamer` does). Their imagined states
  feed a :class:`StatePool` that keeps each round's states for ``pool_rounds`` rounds: a cheap
  supply of (nearly) on-policy start states.
* **Training rollouts** (:func:`imagine`): from ``B`` pool states, ``H`` (``horizon``) steps
  through the model's *differentiable* transition: the spiking model's surrogate gradients carry
  ``d s_{h+1} / d (s_h, a_h)`` and ``d r_h / d (s_h, a_h)`` back to the actor. The same rollout
  gives

  - the SVG(H) actor loss (Heess et al., "Learning Continuous Control Policies by Stochastic
    Value Gradients", NeurIPS 2015; :func:`value_gradient_loss`)::

        alive_0 = 1,   alive_{h+1} = alive_h * (1 - terminated_h)
        J(s_0)  = sum_{h=0}^{H-1} gamma^h alive_h r_h  +  gamma^H alive_H Q_1(s_H, pi(s_H))
        loss    = -mean_b J(s_0^b)

    with ``a_h = pi(s_h)`` (deterministic; see :func:`imagine` for why there is no exploration
    noise), ``r_h`` and ``s_{h+1}`` the model's, ``Q_1`` the online critic's first head on
    ``obs_normalizer(s_H)``. Gradients reach the actor only: the world model's and the critic's
    parameters are frozen while the loss is built (the model's unless ``model_gradients``).
    ``terminated_h`` is the env's termination function on ``(s_h, a_h, s_{h+1})``; it only masks
    (no gradient). A terminal transition's own reward counts; nothing after it does, and there
    is no bootstrap past it (as TD3's ``r + gamma (1 - d) Q'``).
  - MVE critic targets (Feinberg et al., "Model-Based Value Estimation for Efficient
    Model-Free RL", 2018; :func:`mve_targets`, :func:`mve_critic_loss`) on the same detached
    trajectory, by the recursion ``y_H = min_i Q'_i(s_H, a'_H)``,
    ``y_h = r_h + gamma (1 - terminated_h) y_{h+1}``, i.e. for a branch alive at ``h``::

        y_h = sum_{k=h}^{H-1} gamma^{k-h} alive_k r_k  +  gamma^{H-h} alive_H min_i Q'_i(s_H, a'_H)
        a'_H = clip(pi'(s_H) + clip(eps, -c, c) * half_range, low, high),  eps ~ N(0, sigma^2)

    (TD3's clipped double-Q target with target-policy smoothing at the end of the expansion),
    and the critic loss is ``sum_i sum_{h,b} w_hb (Q_i(s_h, a_h) - y_h)^2 / sum_{h,b} w_hb``
    with ``w_hb = alive_h`` (states after a termination are not trained on).

With a stochastic (SAC) actor and its temperature ``alpha`` (DHMBPO's SAC-based SVG), the
rollout samples ``a_h ~ pi(. | s_h)`` reparameterised (``a_h = f(eps_h; s_h)``, differentiable)
with log-densities ``l_h = log pi(a_h | s_h)``, and the entropy term enters both losses::

    J(s_0) = sum_{h=0}^{H-1} gamma^h alive_h (r_h - alpha l_h)
             + gamma^H alive_H (min_i Q_i(s_H, a_H) - alpha l_H),       a_H ~ pi(. | s_H)
    v_H = min_i Q'_i(s_H, a'_H) - alpha l'_H,                           a'_H ~ pi(. | s_H)
    y_h = r_h + gamma (1 - terminated_h) v_{h+1},   v_h = y_h - alpha l_h   (soft values)

i.e. SAC's actor objective and soft Bellman target unrolled through the model (the minimum of
the twin critics, as SAC's own actor loss; the bootstrap action of the targets from the current
policy, as SAC's TD target).

A branch in which the model produced a non-finite state or reward is dropped from both losses
(weight 0; its later states are replaced by the last finite one so the rest of the batch stays
finite); the count is reported so a caller can skip an update whose gradients are not finite.
After a branch terminates, its states and actions are detached (no gradient flows through
steps that count for nothing), and a non-finite value there no longer drops it.

Shapes: ``B`` start states, ``O`` observation and ``A`` action sizes, ``E`` members.
All randomness comes from an explicit ``torch.Generator``.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Mapping
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from spiking_dreamer.agent.base import perturb
from spiking_dreamer.agent.gaussian import SquashedGaussian
from spiking_dreamer.dreaming.model_env import Member, Policy, explore_step, model_transition
from spiking_dreamer.termination import TerminationFn
from spiking_dreamer.world_model.base import EnsembleDynamicsModel


@contextlib.contextmanager
def frozen(*modules: nn.Module) -> Iterator[None]:
    """Parameters of ``modules`` do not require grad inside the block (restored after): a graph
    built inside treats them as constants, so ``backward`` leaves their ``.grad`` untouched
    while gradients still flow *through* the modules to their inputs."""
    params = [p for m in modules for p in m.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


# --------------------------------------------------------------------------- start-state pool


class StatePool:
    """Start states of training rollouts, each tagged with the round that produced it.

    ``add(states, round)`` stores the states and drops every state of a round
    ``<= round - pool_rounds``: after adding round ``r`` the pool holds exactly the states of
    rounds ``r - pool_rounds + 1 .. r``. Rounds must not decrease. Adding an empty batch still
    ages the pool.

    Args:
        obs_dim: ``O``.
        pool_rounds: rounds a state is kept.
        device: where the states live.
    """

    def __init__(self, obs_dim: int, pool_rounds: int, device: torch.device | str = "cpu") -> None:
        if pool_rounds < 1:
            raise ValueError(f"pool_rounds must be >= 1, got {pool_rounds}")
        self.obs_dim, self.pool_rounds, self.device = obs_dim, pool_rounds, torch.device(device)
        self.states = torch.zeros(0, obs_dim, device=self.device)
        self.rounds = torch.zeros(0, dtype=torch.int64, device=self.device)
        self.latest_round = -1

    def __len__(self) -> int:
        return self.states.shape[0]

    def add(self, states: Tensor, round: int) -> None:
        """Store ``states`` ``[N, O]`` as round ``round`` and drop the expired rounds."""
        if round < self.latest_round:
            raise ValueError(f"round {round} is older than the latest round {self.latest_round}")
        if states.dim() != 2 or states.shape[1] != self.obs_dim:
            raise ValueError(f"states must be [N, {self.obs_dim}], got {list(states.shape)}")
        self.latest_round = round
        tags = torch.full((states.shape[0],), round, dtype=torch.int64, device=self.device)
        keep = self.rounds > round - self.pool_rounds
        self.states = torch.cat([self.states[keep], states.detach().to(self.device)])
        self.rounds = torch.cat([self.rounds[keep], tags])

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        """``n`` states ``[n, O]`` drawn uniformly with replacement."""
        if len(self) == 0:
            raise ValueError("the state pool is empty")
        idx = torch.randint(len(self), (n,), generator=generator, device=self.device)
        return self.states[idx]

    def state_dict(self) -> dict[str, Any]:
        """Tensors and ints only (loadable with ``torch.load(weights_only=True)``)."""
        return {
            "states": self.states.clone(),
            "rounds": self.rounds.clone(),
            "latest_round": self.latest_round,
            "pool_rounds": self.pool_rounds,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore the pool; this pool's ``pool_rounds`` (a fork may change it) ages it from
        its next :meth:`add` on."""
        self.states = state["states"].to(self.device, torch.float32).reshape(-1, self.obs_dim)
        self.rounds = state["rounds"].to(self.device, torch.int64)
        self.latest_round = int(state["latest_round"])


# --------------------------------------------------------------------------- distribution rollouts


@torch.no_grad()
def distribution_rollout(
    model: EnsembleDynamicsModel,
    actor: Policy,
    termination_fn: TerminationFn,
    start_obs: Tensor,
    *,
    horizon: int,
    member: Member,
    exploration_noise: float,
    uncertainty_kind: str,
    uncertainty_quantile: float,
    uncertainty_scale: float,
    generator: torch.Generator,
) -> tuple[Tensor, dict[str, float]]:
    """Roll ``horizon`` steps from real ``start_obs`` ``[N, O]``; return the kept imagined states.

    Per step, on the branches still alive: ``a = clip(pi(s) + eps * half_range)``,
    ``eps ~ N(0, exploration_noise^2)``; ``(s', r)`` from :func:`model_transition`; the
    uncertainty ``u`` over all members. The threshold is ``uncertainty_scale`` times the
    ``uncertainty_quantile`` quantile of the finite step-0 uncertainties. ``s'`` is kept, and its
    branch continues, iff ``s'``, ``a`` and ``u`` are finite, ``u <= threshold`` and the
    transition is not terminal (a terminal state cannot start a rollout). The real start states
    themselves are not returned.

    Returns:
        kept states ``[M, O]`` (``M <= N * horizon``) and statistics: ``kept`` (M),
        ``mean_length`` (kept steps per start state), ``threshold``, ``terminated``,
        ``nonfinite`` and ``uncertain`` (branches ended by each cause).
    """
    obs = start_obs
    kept: list[Tensor] = []
    threshold = math.nan
    n_term = n_nonfinite = n_uncertain = 0
    for h in range(horizon):
        if obs.shape[0] == 0:
            break
        action, next_obs, _, u, finite = explore_step(
            model,
            actor,
            obs,
            member=member,
            exploration_noise=exploration_noise,
            uncertainty_kind=uncertainty_kind,
            uncertainty_over="all",
            generator=generator,
        )
        if h == 0:
            u0 = u[finite].float()
            if len(u0) == 0:
                n_nonfinite += obs.shape[0]
                break
            threshold = uncertainty_scale * torch.quantile(u0, uncertainty_quantile).item()
        certain = finite & (u <= threshold)
        terminated = termination_fn(obs, action, next_obs) & certain
        keep = certain & ~terminated
        n_nonfinite += int((~finite).sum())
        n_uncertain += int((finite & ~certain).sum())
        n_term += int(terminated.sum())
        kept.append(next_obs[keep])
        obs = next_obs[keep]
    states = torch.cat(kept) if kept else start_obs.new_zeros(0, start_obs.shape[1])
    return states, {
        "kept": float(states.shape[0]),
        "mean_length": states.shape[0] / max(start_obs.shape[0], 1),
        "threshold": threshold,
        "terminated": float(n_term),
        "nonfinite": float(n_nonfinite),
        "uncertain": float(n_uncertain),
    }


# --------------------------------------------------------------------------- training rollouts


class Trajectory(NamedTuple):
    """An imagined ``H``-step trajectory from ``B`` start states.

    obs: ``[H + 1, B, O]`` states ``s_0 .. s_H`` (after a non-finite step: the last finite one).
    action: ``[H, B, A]`` actions ``a_h = pi(s_h)`` (plus ``action_noise`` if set).
    reward: ``[H, B]`` model rewards ``r_h`` (0 where non-finite).
    terminated: ``[H, B]`` bool, the termination function on ``(s_h, a_h, s_{h+1})``.
    alive: ``[H + 1, B]`` float, ``alive_0 = 1``, ``alive_{h+1} = alive_h (1 - terminated_h)``.
    valid: ``[B]`` bool, every transition of the branch was finite (up to its termination).
    log_prob: ``[H, B]`` ``log pi(a_h | s_h)`` of a stochastic actor's sampled actions; ``None``
        for a deterministic actor.
    """

    obs: Tensor
    action: Tensor
    reward: Tensor
    terminated: Tensor
    alive: Tensor
    valid: Tensor
    log_prob: Tensor | None = None

    def detach(self) -> Trajectory:
        return Trajectory(*(x.detach() if x is not None else None for x in self))

    @property
    def horizon(self) -> int:
        return self.action.shape[0]


def imagine(
    model: EnsembleDynamicsModel,
    actor: Policy,
    termination_fn: TerminationFn,
    start_obs: Tensor,
    *,
    horizon: int,
    member: Member,
    generator: torch.Generator,
    action_noise: float = 0.0,
    stochastic: bool = False,
) -> Trajectory:
    """The differentiable training rollout from ``start_obs`` ``[B, O]`` (graph kept).

    ``stochastic`` (a SAC actor, :class:`SquashedGaussian`): ``a_h`` is a reparameterised
    sample of the policy, its log-density kept in ``log_prob``; otherwise:

    ``a_h = pi(s_h)``, ``(s_{h+1}, r_h) = model_transition(s_h, a_h)``. No exploration noise by
    default: TD3's actor is deterministic, its critic estimates the value of the deterministic
    (target) policy, and the SVG(H) gradient of that policy's H-step return is the
    deterministic policy gradient unrolled through the model (Silver et al., ICML 2014;
    Heess et al., 2015, SVG(0) = DPG). Exploration belongs to data collection (the real env and
    the distribution rollouts); noise here would estimate the gradient of a different, noisy
    policy, add variance and, clipped at the bounds, zero the gradient of saturated actions.
    ``action_noise > 0`` adds TD3-style smoothing noise (``clip(eps, ±2.5 sigma)``, then the
    bounds) anyway, e.g. to widen the actions MVE targets are fitted on.

    Termination flags are computed on detached tensors (they mask, they carry no gradient).
    """
    obs = start_obs
    n = start_obs.shape[0]
    alive = torch.ones(n, dtype=obs.dtype, device=obs.device)
    valid = torch.ones(n, dtype=torch.bool, device=obs.device)
    states, actions, rewards, dones, alives, log_probs = [obs], [], [], [], [alive], []
    if stochastic and not isinstance(actor, SquashedGaussian):
        raise TypeError(f"a stochastic rollout needs a stochastic actor, got {type(actor)}")
    for _ in range(horizon):
        dead = (alive == 0)[:, None]  # terminated: what follows counts for nothing
        obs = torch.where(dead, obs.detach(), obs)
        if stochastic:
            action, log_prob = actor.sample(obs, generator)
            log_probs.append(log_prob)
        else:
            action = actor(obs, generator)
        if action_noise > 0:
            action = perturb(action, actor, action_noise, 2.5 * action_noise, generator)
        action = torch.where(dead, action.detach(), action)  # no gradient path through it
        next_obs, reward, _ = model_transition(
            model, obs, action, member, generator, elites_only=True
        )
        ok = torch.isfinite(next_obs).all(-1) & torch.isfinite(reward)
        finite = ok & valid
        next_obs = torch.where(finite[:, None], next_obs, obs.detach())
        reward = torch.where(finite, reward, torch.zeros_like(reward))
        done = termination_fn(obs.detach(), action.detach(), next_obs.detach()).to(torch.bool)
        valid = valid & (ok | dead[:, 0])  # a terminated branch's later steps do not matter
        alive = alive * (1.0 - done.float())
        states.append(next_obs)
        actions.append(action)
        rewards.append(reward)
        dones.append(done)
        alives.append(alive)
        obs = next_obs
    return Trajectory(
        torch.stack(states),
        torch.stack(actions),
        torch.stack(rewards),
        torch.stack(dones),
        torch.stack(alives),
        valid,
        torch.stack(log_probs) if stochastic else None,
    )


def svg_objective(
    traj: Trajectory,
    actor: Policy,
    critic: nn.Module,
    obs_normalizer: Callable[[Tensor], Tensor],
    gamma: float,
    generator: torch.Generator | None = None,
    alpha: Tensor | float | None = None,
) -> tuple[Tensor, Tensor]:
    """``J`` ``[B]`` of each start state and its bootstrap part ``gamma^H alive_H Q_1`` ``[B]``:
    ``J = sum_h gamma^h alive_h r_h + gamma^H alive_H Q_1(obs_normalizer(s_H), pi(s_H))``.

    With ``alpha`` (a stochastic trajectory): the soft return of the module docstring,
    ``sum_h gamma^h alive_h (r_h - alpha l_h) + gamma^H alive_H (min_i Q_i(s_H, a_H) - alpha
    l_H)`` with ``a_H`` a reparameterised sample; the bootstrap part is the last term."""
    horizon = traj.horizon
    discounts = gamma ** torch.arange(horizon, device=traj.reward.device, dtype=traj.reward.dtype)
    s_last = traj.obs[-1]
    if alpha is None:
        model_return = (discounts[:, None] * traj.alive[:-1] * traj.reward).sum(0)
        q1 = critic(obs_normalizer(s_last), actor(s_last, generator))[0]
        bootstrap = gamma**horizon * traj.alive[-1] * q1
        return model_return + bootstrap, bootstrap
    if traj.log_prob is None:
        raise ValueError("an entropy-regularised objective needs a stochastic trajectory")
    soft_reward = traj.reward - alpha * traj.log_prob
    model_return = (discounts[:, None] * traj.alive[:-1] * soft_reward).sum(0)
    a_last, log_prob_last = actor.sample(s_last, generator)
    q = critic(obs_normalizer(s_last), a_last).min(0).values
    bootstrap = gamma**horizon * traj.alive[-1] * (q - alpha * log_prob_last)
    return model_return + bootstrap, bootstrap


def value_gradient_loss(
    model: nn.Module,
    actor: nn.Module,
    critic: nn.Module,
    obs_normalizer: Callable[[Tensor], Tensor],
    termination_fn: TerminationFn,
    start_obs: Tensor,
    *,
    horizon: int,
    member: Member,
    gamma: float,
    generator: torch.Generator,
    model_gradients: bool = False,
    action_noise: float = 0.0,
    alpha: Tensor | float | None = None,
) -> tuple[Tensor, Trajectory, dict[str, Tensor]]:
    """The SVG(H) actor loss ``-mean_b J(s_0^b)`` over the valid branches (module docstring).

    The critic's parameters, and the model's unless ``model_gradients``, are frozen while the
    graph is built, so ``loss.backward()`` writes gradients to the actor's parameters (and the
    model's with ``model_gradients``) only.

    Args:
        model: the dynamics ensemble (:class:`EnsembleDynamicsModel`).
        actor: the online actor (:class:`Policy`).
        critic: the online twin critic, ``(normalised obs [B, O], action [B, A]) -> [2, B]``.
        obs_normalizer: the critic's observation normaliser (TD3: ``actor.obs_normalizer``).
        termination_fn: the env's termination function.
        start_obs: ``[B, O]`` raw start states (no grad).
        horizon, member, gamma, model_gradients, action_noise: see :class:`ValueGradientConfig`
            (``gamma``: the agent's discount).
        generator: member choice, Gaussian-head and smoothing noise, a Bernoulli encoder, a
            stochastic actor's ``eps``.
        alpha: a SAC actor's temperature: sampled actions and the entropy term (module
            docstring); ``None``: the deterministic policy's value gradient.

    Returns:
        the loss (scalar, with graph), the trajectory (with graph; ``.detach()`` it for
        :func:`mve_targets`) and detached scalar statistics: ``vg/objective`` (mean ``J``),
        ``vg/bootstrap`` (mean bootstrap part), ``vg/alive_fraction`` (mean ``alive_H``),
        ``vg/invalid_branches`` (branches dropped for non-finite values).
    """
    frozen_modules = (critic,) if model_gradients else (critic, model)
    with frozen(*frozen_modules):
        traj = imagine(
            model,
            actor,
            termination_fn,
            start_obs,
            horizon=horizon,
            member=member,
            generator=generator,
            action_noise=action_noise,
            stochastic=alpha is not None,
        )
        objective, bootstrap = svg_objective(
            traj, actor, critic, obs_normalizer, gamma, generator, alpha
        )
    count = traj.valid.sum().clamp_min(1).to(objective.dtype)
    objective = torch.where(traj.valid, objective, torch.zeros_like(objective))
    bootstrap = torch.where(traj.valid, bootstrap.detach(), torch.zeros_like(objective))
    loss = -objective.sum() / count
    stats = {
        "vg/objective": -loss.detach(),
        "vg/bootstrap": bootstrap.sum() / count,
        "vg/alive_fraction": traj.alive[-1].mean(),
        "vg/invalid_branches": (~traj.valid).sum().to(objective.dtype),
    }
    return loss, traj, stats


# --------------------------------------------------------------------------- MVE critic


@torch.no_grad()
def mve_targets(
    traj: Trajectory,
    actor_target: Policy,
    critic_target: nn.Module,
    obs_normalizer: Callable[[Tensor], Tensor],
    *,
    gamma: float,
    target_noise: float,
    noise_clip: float,
    generator: torch.Generator,
    alpha: Tensor | float | None = None,
) -> Tensor:
    """MVE targets ``y`` ``[H, B]`` for ``Q(s_h, a_h)`` on a (detached) trajectory:
    ``y_H = min_i Q'_i(obs_normalizer(s_H), a'_H)`` with TD3's smoothed target action
    ``a'_H = clip(pi'(s_H) + clip(eps, -noise_clip, noise_clip) * half_range, low, high)``,
    ``eps ~ N(0, target_noise^2)``, then ``y_h = r_h + gamma (1 - terminated_h) y_{h+1}``.

    With ``alpha`` (a stochastic trajectory; ``actor_target`` is then SAC's current policy and
    the noise arguments are unused): the soft values of the module docstring,
    ``v_H = min_i Q'_i(s_H, a'_H) - alpha l'_H`` with ``a'_H ~ pi(. | s_H)``,
    ``y_h = r_h + gamma (1 - terminated_h) v_{h+1}``, ``v_h = y_h - alpha l_h``."""
    if alpha is not None:
        return _soft_mve_targets(
            traj, actor_target, critic_target, obs_normalizer, gamma, alpha, generator
        )
    s_last = traj.obs[-1]
    a_last = actor_target(s_last, generator)
    if target_noise > 0:
        a_last = perturb(a_last, actor_target, target_noise, noise_clip, generator)
    y = critic_target(obs_normalizer(s_last), a_last).min(0).values
    targets = []
    for h in reversed(range(traj.horizon)):
        y = traj.reward[h] + gamma * (1.0 - traj.terminated[h].to(y.dtype)) * y
        targets.append(y)
    return torch.stack(targets[::-1])


def _soft_mve_targets(
    traj: Trajectory,
    policy: Policy,
    critic_target: nn.Module,
    obs_normalizer: Callable[[Tensor], Tensor],
    gamma: float,
    alpha: Tensor | float,
    generator: torch.Generator,
) -> Tensor:
    """:func:`mve_targets` with SAC's soft values (no gradient)."""
    if traj.log_prob is None:
        raise ValueError("soft value-expansion targets need a stochastic trajectory")
    s_last = traj.obs[-1]
    a_last, log_prob_last = policy.sample(s_last, generator)
    v = critic_target(obs_normalizer(s_last), a_last).min(0).values - alpha * log_prob_last
    targets = []
    for h in reversed(range(traj.horizon)):
        y = traj.reward[h] + gamma * (1.0 - traj.terminated[h].to(v.dtype)) * v
        targets.append(y)
        v = y - alpha * traj.log_prob[h]
    return torch.stack(targets[::-1])


def mve_critic_loss(
    traj: Trajectory,
    targets: Tensor,
    critic: nn.Module,
    obs_normalizer: Callable[[Tensor], Tensor],
) -> tuple[Tensor, Tensor]:
    """``sum_i sum_{h,b} w_hb (Q_i(s_h, a_h) - y_hb)^2 / sum_{h,b} w_hb`` with
    ``w_hb = alive_h`` on valid branches (0 otherwise): TD3's per-critic mean squared error,
    summed over the two critics, averaged over the ``H x B`` imagined pairs.

    Args:
        traj: the detached trajectory (``s_h``, ``a_h`` for ``h < H``).
        targets: ``[H, B]`` from :func:`mve_targets`.
        critic: ``(normalised obs [N, O], action [N, A]) -> [2, N]``.

    Returns:
        The loss and each critic's mean ``Q_i`` over the same weighted pairs ``[2]``
        (detached, for the loss record; 0 when no pair is live: the run's loss record must stay
        finite).
    """
    h, b = targets.shape
    obs = traj.obs[:-1].detach().reshape(h * b, -1)
    action = traj.action.detach().reshape(h * b, -1)
    q = critic(obs_normalizer(obs), action).reshape(-1, h, b)
    w = traj.alive[:-1].detach() * traj.valid.to(targets.dtype)
    total = w.sum().clamp_min(1.0)
    err = (q - targets.detach()).square() * w
    return (err.sum((1, 2)) / total).sum(), (q.detach() * w).sum((1, 2)) / total
