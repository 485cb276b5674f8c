"""The world model as an environment: one model-rollout step (mbrl-lib's ``ModelEnv``).

Every use of the model steps through here: dream phases (:class:`~.dreamer.Dreamer`), and the
distribution and training rollouts of value-gradient learning (:mod:`.value_gradient`).

* :func:`model_transition`: ``(s, a) -> (s', r)`` from the elites, differentiable; the member
  choice (``member``) is ``random_elite``, one random elite per transition, sampling its
  Gaussian for a Gaussian head (MBPO's TS1; Janner et al., NeurIPS 2019), or ``elite_mean``,
  the mean of the elites' predicted means;
* :func:`uncertainty`: epistemic uncertainty from the members' disagreement (MOPO; Yu et al.,
  NeurIPS 2020);
* :func:`explore_step`: the actor's action with exploration noise (clipped to the actor's
  bounds), or a sample of a stochastic (SAC) actor's policy, the model's transition, its
  uncertainty and which rows are finite;
* termination: the env's own function (:mod:`spiking_dreamer.termination`), passed in.

Shapes: ``N`` rows, ``O`` observation and ``A`` action sizes, ``E`` members, ``K`` elites.
"""

from __future__ import annotations

import math
from typing import Literal, NamedTuple, Protocol

import torch
from torch import Tensor

from spiking_dreamer.agent.base import HasBounds, perturb
from spiking_dreamer.agent.gaussian import Gaussian, SquashedGaussian
from spiking_dreamer.world_model.base import EnsembleDynamicsModel, Prediction, split_rows

Member = Literal["random_elite", "elite_mean"]
UncertaintyKind = Literal["variance", "max_deviation", "max_std"]


class Policy(HasBounds, Protocol):
    """An actor: raw observations ``[N, O]`` -> actions ``[N, A]`` within
    ``action_bias ± action_scale`` (``generator`` drives a stochastic spike encoder)."""

    def __call__(self, obs: Tensor, generator: torch.Generator | None = None) -> Tensor: ...


def uncertainty(pred: Prediction, members: Tensor, kind: str) -> Tensor:
    """Epistemic uncertainty ``[N]`` of per-member predictions, over ``members`` (indices).

    * ``variance``: mean over state dims of the across-member (population) variance of the
      predicted normalised state change (the seed's metric, in target-normaliser units);
    * ``max_deviation``: ``max_i || mu_i - mean_j mu_j ||_2`` over the normalised state change
      (MOPO's disagreement alternative);
    * ``max_std``: ``max_i || sigma_i ||_2`` over normalised state change and reward (MOPO's
      default; needs a Gaussian head).
    """
    obs_dim = pred.next_obs.shape[-1]
    mu = pred.mean[members, :, :obs_dim]  # [K, N, O]
    if kind == "variance":
        return mu.var(0, unbiased=False).mean(-1)
    if kind == "max_deviation":
        return (mu - mu.mean(0)).norm(dim=-1).max(0).values
    if kind == "max_std":
        if pred.logvar is None:
            raise ValueError("max_std uncertainty needs a Gaussian head")
        return torch.exp(0.5 * pred.logvar[members]).norm(dim=-1).max(0).values
    raise ValueError(f"unknown uncertainty {kind!r}")


def model_transition(
    model: EnsembleDynamicsModel,
    obs: Tensor,
    action: Tensor,
    member: Member,
    generator: torch.Generator,
    *,
    elites_only: bool = False,
    chunk: int = 0,
) -> tuple[Tensor, Tensor, Prediction]:
    """One model step, differentiable w.r.t. ``obs`` ``[N, O]`` and ``action`` ``[N, A]``.

    ``elite_mean``: the elites' mean normalised prediction; ``random_elite``: a random elite per
    transition, plus ``exp(logvar / 2) * eps`` for a Gaussian head (reparameterised). The
    normalised (state change, reward) is denormalised and the change added to ``obs``.
    ``elites_only``: the forward runs over the elites alone (the same transition: members are
    independent), so no forward or backward is spent on members the transition does not use;
    the prediction returned then holds the elites only. ``chunk``: rows per forward
    (:meth:`~spiking_dreamer.world_model.EnsembleDynamicsModel.predict`).

    Returns:
        next_obs ``[N, O]``, reward ``[N]`` and the per-member prediction.
    """
    elites = model.elites
    if elites_only:
        pred = model.predict(obs, action, chunk=chunk, members=elites)
        rows_of = torch.arange(len(elites), device=obs.device)  # elite k is row k of pred
    else:
        pred = model.predict(obs, action, chunk=chunk)
        rows_of = elites
    if member == "elite_mean":
        z = pred.mean[rows_of].mean(0)
    elif member == "random_elite":
        n = obs.shape[0]
        pick = rows_of[torch.randint(len(elites), (n,), generator=generator, device=obs.device)]
        rows = torch.arange(n, device=obs.device)
        z = pred.mean[pick, rows]
        if pred.logvar is not None:  # sample that member's Gaussian
            eps = torch.randn(z.shape, generator=generator, device=obs.device)
            z = z + eps * torch.exp(0.5 * pred.logvar[pick, rows])
    else:
        raise ValueError(f"unknown member {member!r}")
    raw = model.target_normalizer.denormalize(z)
    return obs + raw[:, :-1], raw[:, -1], pred


class ExploreStep(NamedTuple):
    """One exploring model step from ``N`` states: ``action`` ``[N, A]``, ``next_obs``
    ``[N, O]``, ``reward`` ``[N]``, ``u`` (uncertainty) ``[N]`` and ``finite`` ``[N]`` (every
    value of the row is finite)."""

    action: Tensor
    next_obs: Tensor
    reward: Tensor
    u: Tensor
    finite: Tensor


def explore_step(
    model: EnsembleDynamicsModel,
    actor: Policy,
    obs: Tensor,
    *,
    member: Member,
    exploration_noise: float,
    uncertainty_kind: str,
    uncertainty_over: Literal["all", "elites"],
    generator: torch.Generator,
    chunk: int = 0,
) -> ExploreStep:
    """``a = clip(pi(s) + eps * half_range, low, high)``, ``eps ~ N(0, exploration_noise^2)``
    (as in the real env), or for a stochastic actor (SAC, :class:`SquashedGaussian`) a sample
    ``a ~ pi(. | s)`` of its policy (as in the real env and MBPO's rollouts; no noise on top),
    then :func:`model_transition` and the uncertainty over all members (MOPO's convention) or
    the elites. Draws, in order: the actor's (a Bernoulli encoder), the noise (or the policy's
    ``eps``), the member choice. ``chunk``: at most this many rows per actor and model forward
    (the same values up to kernel rounding, as in
    :meth:`~spiking_dreamer.world_model.EnsembleDynamicsModel.predict`; a Bernoulli encoder
    draws chunk by chunk).

    Raises:
        ValueError: ``exploration_noise`` is not 0 for a stochastic actor."""
    rows = split_rows(obs, chunk)
    if isinstance(actor, SquashedGaussian):
        if exploration_noise != 0:
            raise ValueError(
                "a stochastic actor explores by sampling its policy: exploration_noise must be "
                f"0, got {exploration_noise}"
            )
        parts = [actor.gaussian(o, generator) for o in rows]
        mean = torch.cat([p.mean for p in parts])
        eps = torch.randn(mean.shape, generator=generator, device=mean.device)
        action = actor.squash(Gaussian(mean, torch.cat([p.log_std for p in parts]), []), eps)[0]
    else:
        mean_action = torch.cat([actor(o, generator) for o in rows])
        action = perturb(mean_action, actor, exploration_noise, math.inf, generator)
    next_obs, reward, pred = model_transition(model, obs, action, member, generator, chunk=chunk)
    members = model.elites
    if uncertainty_over == "all":
        members = torch.arange(model.ensemble_size, device=obs.device)
    u = uncertainty(pred, members, uncertainty_kind)
    finite = (
        torch.isfinite(next_obs).all(-1)
        & torch.isfinite(action).all(-1)
        & torch.isfinite(reward)
        & torch.isfinite(u)
    )
    return ExploreStep(action, next_obs, reward, u, finite)
