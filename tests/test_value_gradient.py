"""Value-gradient learning (DHMBPO): the SVG(H) actor loss and its gradient, termination masks,
which parameters get gradients, MVE critic targets, the start-state pool and distribution
rollouts.

Most tests run on a scalar toy system written in torch (float64), wrapped in the real
:class:`EnsembleDynamicsModel` machinery (un-updated normalisers are the identity)::

    member e:  s' = alpha_e s + beta_e a,   r = -s^2 - c a^2
    actor:     a = k s
    critic:    Q_i(s, a) = -(q_i s^2 + p_i a^2),  i = 1, 2

The elites are members 0 and 2 (alpha 1.0 and 1.2, beta 0.4 and 0.6), so their mean transition
is ``s' = 1.1 s + 0.5 a``; member 1 (alpha 5) is not an elite and must never be used for a
transition. With ``k = 0.2`` every step multiplies the state by ``m = alpha + beta k = 1.2``.
Expected values are computed by hand below, term by term, not by the code under test.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor, nn

from spiking_dreamer.agent import PopSpikingActor, TwinQCritic
from spiking_dreamer.config import ValueGradientConfig, WorldModelConfig
from spiking_dreamer.dreaming import ValueGradientLearner
from spiking_dreamer.dreaming.model_env import model_transition
from spiking_dreamer.dreaming.value_gradient import (
    StatePool,
    distribution_rollout,
    imagine,
    mve_critic_loss,
    mve_targets,
    value_gradient_loss,
)
from spiking_dreamer.errors import ConfigError
from spiking_dreamer.world_model import EnsembleDynamicsModel, SpikingEnsembleModel

from .helpers import TINY_ACTOR

F64 = torch.float64
ALPHA, BETA, C, K, GAMMA = 1.1, 0.5, 0.1, 0.2, 0.9  # elite-mean alpha and beta
M = ALPHA + BETA * K  # 1.2
Q1, P1 = 0.3, 0.2  # the online critic's first head
THRESHOLD = 2.5  # the toy terminates when s' > 2.5
S0 = (1.0, 2.0, 2.2, -3.0)  # s1 = 1.2, 2.4, 2.64 (terminal), -3.6; s2 = 1.44, 2.88 (terminal)


class LinearToyModel(EnsembleDynamicsModel):
    """Scalar linear members; ``blowup``: the state change is ``inf`` where ``s > blowup``."""

    def __init__(
        self,
        alpha: tuple[float, ...] = (1.0, 5.0, 1.2),
        beta: tuple[float, ...] = (0.4, 0.0, 0.6),
        elites: tuple[int, ...] = (0, 2),
        blowup: float = math.inf,
    ) -> None:
        super().__init__(1, 1, len(alpha), len(elites), gaussian=False)
        self.elites.copy_(torch.tensor(elites))
        self.alpha = nn.Parameter(torch.tensor(alpha, dtype=F64))
        self.beta = nn.Parameter(torch.tensor(beta, dtype=F64))
        self.blowup = blowup

    def forward_normalized(self, x: Tensor, members: Tensor | None = None) -> tuple[Tensor, None]:
        alpha, beta = self.alpha, self.beta
        if members is not None:
            alpha, beta = alpha[members], beta[members]
        if x.dim() == 2:
            x = x.expand(len(alpha), *x.shape)
        s, a = x[..., :1], x[..., 1:]
        delta = (alpha.view(-1, 1, 1) - 1) * s + beta.view(-1, 1, 1) * a
        delta = torch.where(s > self.blowup, torch.full_like(delta, math.inf), delta)
        reward = -s.square() - C * a.square()
        return torch.cat([delta, reward], -1), None


class LinearActor(nn.Module):
    """``a = k s`` with wide bounds (``±100``, never reached)."""

    def __init__(self, k: float = K) -> None:
        super().__init__()
        self.k = nn.Parameter(torch.tensor([[k]], dtype=F64))
        self.register_buffer("action_scale", torch.full((1,), 100.0, dtype=F64))
        self.register_buffer("action_bias", torch.zeros(1, dtype=F64))

    def forward(self, obs: Tensor, generator: torch.Generator | None = None) -> Tensor:
        return obs @ self.k.T


class QuadraticCritic(nn.Module):
    """``Q_i(s, a) = -(q_i |s|^2 + p_i |a|^2)`` ``[2, B]``."""

    def __init__(self, q: tuple[float, float] = (Q1, 0.7), p: tuple[float, float] = (P1, 0.5)):
        super().__init__()
        self.q = nn.Parameter(torch.tensor(q, dtype=F64))
        self.p = nn.Parameter(torch.tensor(p, dtype=F64))

    def forward(self, obs: Tensor, action: Tensor) -> Tensor:
        return -(self.q[:, None] * obs.square().sum(-1) + self.p[:, None] * action.square().sum(-1))


def toy_termination(obs: Tensor, action: Tensor, next_obs: Tensor) -> Tensor:
    return next_obs[..., 0] > THRESHOLD


def never(obs: Tensor, action: Tensor, next_obs: Tensor) -> Tensor:
    return torch.zeros(next_obs.shape[:-1], dtype=torch.bool)


def start(values: tuple[float, ...] = S0) -> Tensor:
    return torch.tensor(values, dtype=F64)[:, None]


def vg_loss(
    horizon: int,
    s0: Tensor,
    termination=never,
    model: nn.Module | None = None,
    actor: nn.Module | None = None,
    critic: nn.Module | None = None,
    **kw: object,
):
    return value_gradient_loss(
        model or LinearToyModel(),
        actor or LinearActor(),
        critic or QuadraticCritic(),
        nn.Identity(),
        termination,
        s0,
        horizon=horizon,
        member="elite_mean",
        gamma=GAMMA,
        generator=torch.Generator().manual_seed(0),
        **kw,
    )


# Hand-derived terms (functions of s0 ``[B]``) and their derivatives w.r.t. k, with m = alpha +
# beta k, a_h = k s_h, s_h = m^h s0:
#   r_0 = -(1 + c k^2) s0^2                    d/dk: -2 c k s0^2
#   r_1 = -(1 + c k^2) m^2 s0^2                d/dk: -s0^2 (2 c k m^2 + (1 + c k^2) 2 m beta)
#   Q_1(s_H, k s_H) = -(q1 + p1 k^2) m^(2H) s0^2
#                                              d/dk: -s0^2 (2 p1 k m^(2H)
#                                                           + (q1 + p1 k^2) 2H m^(2H-1) beta)
def r0(s0: Tensor) -> tuple[Tensor, Tensor]:
    return -(1 + C * K**2) * s0**2, -2 * C * K * s0**2


def r1(s0: Tensor) -> tuple[Tensor, Tensor]:
    value = -(1 + C * K**2) * M**2 * s0**2
    return value, -(s0**2) * (2 * C * K * M**2 + (1 + C * K**2) * 2 * M * BETA)


def q_end(s0: Tensor, horizon: int) -> tuple[Tensor, Tensor]:
    value = -(Q1 + P1 * K**2) * M ** (2 * horizon) * s0**2
    grad = -(s0**2) * (
        2 * P1 * K * M ** (2 * horizon)
        + (Q1 + P1 * K**2) * 2 * horizon * M ** (2 * horizon - 1) * BETA
    )
    return value, grad


def test_actor_loss_and_gradient_h1_closed_form() -> None:
    s0 = start()[:, 0]
    actor = LinearActor()
    loss, _, _ = vg_loss(1, s0[:, None], actor=actor)
    (v0, g0), (vq, gq) = r0(s0), q_end(s0, 1)
    # J = r_0 + gamma Q_1(s_1, pi(s_1)) = -(1 + c k^2) s0^2 - gamma (q1 + p1 k^2) m^2 s0^2
    closed = -(1 + C * K**2) * s0**2 - GAMMA * (Q1 + P1 * K**2) * M**2 * s0**2
    torch.testing.assert_close(v0 + GAMMA * vq, closed)
    torch.testing.assert_close(loss, -closed.mean())
    loss.backward()
    torch.testing.assert_close(actor.k.grad[0, 0], -(g0 + GAMMA * gq).mean())


def test_actor_loss_and_gradient_h2_closed_form() -> None:
    s0 = start()[:, 0]
    actor = LinearActor()
    loss, _, stats = vg_loss(2, s0[:, None], actor=actor)
    (v0, g0), (v1, g1), (vq, gq) = r0(s0), r1(s0), q_end(s0, 2)
    closed = (
        -(1 + C * K**2) * s0**2 * (1 + GAMMA * M**2) - GAMMA**2 * (Q1 + P1 * K**2) * M**4 * s0**2
    )
    torch.testing.assert_close(v0 + GAMMA * v1 + GAMMA**2 * vq, closed)
    torch.testing.assert_close(loss, -closed.mean())
    torch.testing.assert_close(stats["vg/bootstrap"], (GAMMA**2 * vq).mean())
    loss.backward()
    torch.testing.assert_close(actor.k.grad[0, 0], -(g0 + GAMMA * g1 + GAMMA**2 * gq).mean())


def test_termination_stops_return_and_bootstrap_at_the_terminal_step() -> None:
    s0 = start()[:, 0]
    actor = LinearActor()
    loss, traj, stats = vg_loss(2, s0[:, None], toy_termination, actor=actor)
    assert traj.terminated.tolist() == [[False, False, True, False], [False, True, True, False]]
    assert traj.alive.tolist() == [[1, 1, 1, 1], [1, 1, 0, 1], [1, 0, 0, 1]]
    (v0, g0), (v1, g1), (vq, gq) = r0(s0), r1(s0), q_end(s0, 2)
    full, full_g = v0 + GAMMA * v1 + GAMMA**2 * vq, g0 + GAMMA * g1 + GAMMA**2 * gq
    # row 1 terminates at step 1: its r_1 counts, no bootstrap; row 2 at step 0: only r_0
    j = torch.stack([full[0], v0[1] + GAMMA * v1[1], v0[2], full[3]])
    dj = torch.stack([full_g[0], g0[1] + GAMMA * g1[1], g0[2], full_g[3]])
    torch.testing.assert_close(loss, -j.mean())
    torch.testing.assert_close(stats["vg/alive_fraction"], torch.tensor(0.5, dtype=F64))
    loss.backward()
    torch.testing.assert_close(actor.k.grad[0, 0], -dj.mean())


def test_gradients_reach_the_actor_only() -> None:
    model, actor, critic = LinearToyModel(), LinearActor(), QuadraticCritic()
    loss, _, _ = vg_loss(2, start(), model=model, actor=actor, critic=critic)
    loss.backward()
    assert actor.k.grad is not None
    assert actor.k.grad.abs().item() > 0
    assert all(p.grad is None for p in model.parameters())
    assert all(p.grad is None for p in critic.parameters())
    # the freeze is undone afterwards
    assert all(p.requires_grad for p in (*model.parameters(), *critic.parameters()))


@pytest.mark.parametrize(
    ("head", "member"), [("deterministic", "elite_mean"), ("gaussian", "random_elite")]
)
def test_an_elites_only_forward_gives_the_same_transition_and_gradient(
    head: str, member: str
) -> None:
    """The training rollout runs the model over its elites alone: the same transition, the
    same gradient with respect to the action, as the whole ensemble's forward."""
    torch.manual_seed(0)
    cfg = WorldModelConfig(head=head, ensemble_size=5, num_elites=3)
    model = SpikingEnsembleModel(17, 6, cfg)
    model.elites.copy_(torch.tensor([4, 1, 2]))
    obs = torch.randn(64, 17)
    out = []
    for elites_only in (False, True):
        action = torch.rand(64, 6, generator=torch.Generator().manual_seed(1)) * 2 - 1
        action.requires_grad_(True)
        g = torch.Generator().manual_seed(2)
        s1, r, pred = model_transition(model, obs, action, member, g, elites_only=elites_only)
        (s1.sum() + r.sum()).backward()
        out.append((s1.detach(), r.detach(), action.grad, pred.mean.shape[0]))
    (s_a, r_a, g_a, e_a), (s_b, r_b, g_b, e_b) = out
    assert (e_a, e_b) == (5, 3)
    assert torch.equal(s_a, s_b)
    assert torch.equal(r_a, r_b)
    torch.testing.assert_close(g_a, g_b, rtol=1e-6, atol=1e-7)


def test_model_gradients_option_reaches_the_elites() -> None:
    model, actor, critic = LinearToyModel(), LinearActor(), QuadraticCritic()
    loss, _, _ = vg_loss(2, start(), model=model, actor=actor, critic=critic, model_gradients=True)
    loss.backward()
    assert actor.k.grad.abs().item() > 0
    assert model.alpha.grad is not None
    assert model.beta.grad is not None
    for grad in (model.alpha.grad, model.beta.grad):
        assert grad[0] != 0
        assert grad[2] != 0
        assert grad[1] == 0  # not an elite
    assert all(p.grad is None for p in critic.parameters())


def test_nonfinite_branch_is_dropped() -> None:
    # the model blows up from s > 2.3 on: rows 1 and 2 (s1 = 2.4, 2.64) get s2 = inf
    s0 = start()[:, 0]
    actor = LinearActor()
    loss, traj, stats = vg_loss(2, s0[:, None], actor=actor, model=LinearToyModel(blowup=2.3))
    assert traj.valid.tolist() == [True, False, False, True]
    assert torch.isfinite(traj.obs).all()
    assert stats["vg/invalid_branches"].item() == 2
    (v0, g0), (v1, g1), (vq, gq) = r0(s0), r1(s0), q_end(s0, 2)
    keep = [0, 3]
    j = (v0 + GAMMA * v1 + GAMMA**2 * vq)[keep]
    torch.testing.assert_close(loss, -j.mean())
    loss.backward()
    torch.testing.assert_close(actor.k.grad[0, 0], -(g0 + GAMMA * g1 + GAMMA**2 * gq)[keep].mean())


class OverflowToyModel(LinearToyModel):
    """:class:`LinearToyModel` plus ``exp(10^4 (s - blowup))`` on the state change: nothing
    below ``blowup``, an infinite value and derivative above it."""

    def forward_normalized(self, x: Tensor, members: Tensor | None = None) -> tuple[Tensor, None]:
        out, _ = super().forward_normalized(x, members)
        s = x[..., :1] if x.dim() == 3 else x[None, :, :1]
        burst = torch.exp(1e4 * (s - self.blowup))
        return torch.cat([out[..., :1] + burst, out[..., 1:]], -1), None


@pytest.mark.parametrize("overflow", [False, True])
def test_a_terminated_branch_is_not_dropped_nor_poisons_the_gradient(overflow: bool) -> None:
    """Row 2 terminates at step 0 (s1 = 2.64), then the model blows up from it (s > 2.5): it is
    not dropped, and the gradient stays finite even where the model's derivative at that dead
    state is infinite (the values of the termination test above)."""
    s0 = start()[:, 0]
    actor = LinearActor()
    model = (OverflowToyModel if overflow else LinearToyModel)(blowup=2.5)
    loss, traj, stats = vg_loss(2, s0[:, None], toy_termination, actor=actor, model=model)
    assert traj.valid.all()
    assert stats["vg/invalid_branches"].item() == 0
    (v0, g0), (v1, g1), (vq, gq) = r0(s0), r1(s0), q_end(s0, 2)
    full, full_g = v0 + GAMMA * v1 + GAMMA**2 * vq, g0 + GAMMA * g1 + GAMMA**2 * gq
    j = torch.stack([full[0], v0[1] + GAMMA * v1[1], v0[2], full[3]])
    dj = torch.stack([full_g[0], g0[1] + GAMMA * g1[1], g0[2], full_g[3]])
    torch.testing.assert_close(loss, -j.mean())
    loss.backward()
    torch.testing.assert_close(actor.k.grad[0, 0], -dj.mean())


def test_optional_smoothing_noise_in_the_training_rollout() -> None:
    actor = LinearActor()
    actor.action_scale.fill_(2.0)
    traj = imagine(
        LinearToyModel(),
        actor,
        never,
        start(),
        horizon=2,
        member="elite_mean",
        generator=torch.Generator().manual_seed(0),
        action_noise=0.1,
    )
    deviation = traj.action[..., 0] - K * traj.obs[:-1, :, 0]
    assert deviation.abs().max() <= 2.5 * 0.1 * 2.0  # clipped at 2.5 sigma, in half-ranges
    assert deviation.abs().min() > 0
    assert traj.action.abs().max() <= 2.0
    traj.reward.sum().backward()
    assert actor.k.grad.abs().item() > 0


def test_mve_targets_and_critic_loss_h2() -> None:
    s0 = start()[:, 0]
    _, traj, _ = vg_loss(2, s0[:, None], toy_termination)
    traj = traj.detach()
    kt = 0.1  # target actor
    qt, pt = (0.5, 0.4), (0.1, 0.3)  # target critic: q'+p'k'^2 = 0.501, 0.403 -> min Q' uses 0.501
    g = torch.Generator().manual_seed(0)
    y = mve_targets(
        traj,
        LinearActor(kt),
        QuadraticCritic(qt, pt),
        nn.Identity(),
        gamma=GAMMA,
        target_noise=0.0,
        noise_clip=0.5,
        generator=g,
    )
    s2 = M**2 * s0
    q_min = -(qt[0] + pt[0] * kt**2) * s2**2
    v0, v1 = r0(s0)[0], r1(s0)[0]
    # y_1 = r_1 + gamma (1 - d_1) minQ'(s_2);  y_0 = r_0 + gamma (1 - d_0) y_1
    y1 = v1 + GAMMA * q_min
    y0 = v0 + GAMMA * v1 + GAMMA**2 * q_min
    expected_y0 = torch.stack([y0[0], v0[1] + GAMMA * v1[1], v0[2], y0[3]])
    expected_y1 = torch.stack([y1[0], v1[1], y1[3]])  # row 2 is dead at h = 1
    torch.testing.assert_close(y[0], expected_y0)
    torch.testing.assert_close(y[1, [0, 1, 3]], expected_y1)

    critic = QuadraticCritic()
    loss, q_mean = mve_critic_loss(traj, y, critic, nn.Identity())
    s = torch.stack([s0, M * s0])  # s_h [2, B], a_h = k s_h
    expected, expected_q = 0.0, []
    for q, p in zip(critic.q.tolist(), critic.p.tolist(), strict=True):
        qh = -(q + p * K**2) * s**2  # Q_i(s_h, a_h)
        e0 = (qh[0] - expected_y0).square().sum()  # 4 live pairs at h = 0
        e1 = (qh[1, [0, 1, 3]] - expected_y1).square().sum()  # 3 at h = 1
        expected = expected + (e0 + e1) / 7
        expected_q.append((qh[0].sum() + qh[1, [0, 1, 3]].sum()) / 7)
    torch.testing.assert_close(loss, expected)
    torch.testing.assert_close(q_mean, torch.stack(expected_q))  # Q on live pairs, not y
    loss.backward()
    assert critic.q.grad is not None
    assert torch.isfinite(critic.q.grad).all()


def test_mve_target_smoothing_noise_is_td3s() -> None:
    s0 = start((1.0, -2.0))
    _, traj, _ = vg_loss(1, s0)
    traj = traj.detach()
    actor_t = LinearActor(0.1)
    actor_t.action_scale.fill_(0.3)  # half-range 0.3, bounds [-0.3, 0.3]
    y = mve_targets(
        traj,
        actor_t,
        QuadraticCritic((0.5, 0.4), (0.1, 0.3)),
        nn.Identity(),
        gamma=GAMMA,
        target_noise=0.2,
        noise_clip=0.25,
        generator=torch.Generator().manual_seed(3),
    )
    eps = torch.randn(2, 1, generator=torch.Generator().manual_seed(3)) * 0.2
    s1 = M * s0
    a = (0.1 * s1 + eps.clamp(-0.25, 0.25) * 0.3).clamp(-0.3, 0.3)
    q = torch.stack([-(0.5 * s1**2 + 0.1 * a**2), -(0.4 * s1**2 + 0.3 * a**2)])[..., 0]
    expected = r0(s0[:, 0])[0] + GAMMA * q.min(0).values
    torch.testing.assert_close(y[0], expected)


def test_state_pool_ages_by_rounds_and_round_trips(tmp_path) -> None:
    pool = StatePool(obs_dim=2, pool_rounds=3)
    for r in range(6):
        pool.add(torch.full((r + 1, 2), float(r)), r)  # round r adds r + 1 states
        kept = sorted(set(pool.rounds.tolist()))
        assert kept == list(range(max(0, r - 2), r + 1))
        assert len(pool) == sum(i + 1 for i in kept)
        assert (pool.states[:, 0] == pool.rounds.float()).all()
    pool.add(torch.zeros(0, 2), 6)  # an empty round still ages the pool: round 3 leaves
    assert sorted(set(pool.rounds.tolist())) == [4, 5]
    pool.add(torch.ones(1, 2), 8)  # skipping round 7: rounds 6, 7, 8 remain
    assert pool.rounds.tolist() == [8]
    with pytest.raises(ValueError, match="older"):
        pool.add(torch.ones(1, 2), 7)

    pool.add(torch.randn(5, 2), 9)
    torch.save(pool.state_dict(), tmp_path / "pool.pt")
    other = StatePool(obs_dim=2, pool_rounds=3)
    other.load_state_dict(torch.load(tmp_path / "pool.pt", weights_only=True))
    assert torch.equal(other.states, pool.states)
    assert torch.equal(other.rounds, pool.rounds)
    assert other.latest_round == 9
    a = pool.sample(7, torch.Generator().manual_seed(1))
    b = other.sample(7, torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
    shorter = StatePool(2, 1)  # a fork may change pool_rounds: it ages the pool from then on
    shorter.load_state_dict(pool.state_dict())
    assert torch.equal(shorter.states, pool.states)
    shorter.add(torch.ones(1, 2), 10)
    assert shorter.rounds.tolist() == [10]
    with pytest.raises(ValueError, match="empty"):
        StatePool(2, 4).sample(1, torch.Generator())


def dist_rollout(s0: Tensor, termination=never, horizon: int = 3, **kw):
    args = {
        "horizon": horizon,
        "member": "elite_mean",
        "exploration_noise": 0.0,
        "uncertainty_kind": "variance",
        "uncertainty_quantile": 1.0,
        "uncertainty_scale": 1e9,
        "generator": torch.Generator().manual_seed(0),
    }
    args.update(kw)
    model = args.pop("model", None) or LinearToyModel()
    return distribution_rollout(model, LinearActor(), termination, s0, **args)


def test_distribution_rollout_stops_branches_at_termination() -> None:
    states, stats = dist_rollout(start(), toy_termination)
    # step 0: 1.2, 2.4, -3.6 kept (2.64 terminal); step 1: 1.44, -4.32 (2.88 terminal); step 2
    expected = [1.2, 2.4, -3.6, 1.44, -4.32, 1.728, -5.184]
    torch.testing.assert_close(states[:, 0], torch.tensor(expected, dtype=F64))
    assert stats["terminated"] == 2
    assert stats["kept"] == 7
    assert stats["mean_length"] == 7 / 4


def test_distribution_rollout_filters_by_uncertainty_and_nonfinite() -> None:
    # a transition from s has u = v s^2 (v constant); threshold = 1.0 x max step-0 u = 9 v
    states, stats = dist_rollout(start((1.0, 2.0, -3.0)), horizon=4, uncertainty_scale=1.0)
    # step 0 keeps s1 = 1.2, 2.4, -3.6; step 1 from -3.6 (u = 12.96 v) is rejected: 1.44, 2.88;
    # step 2: 1.728, 3.456 (from 2.88, u = 8.29 v); step 3 from 3.456 (11.9 v) is rejected
    expected = [1.2, 2.4, -3.6, 1.44, 2.88, 1.728, 3.456, 2.0736]
    torch.testing.assert_close(states[:, 0], torch.tensor(expected, dtype=F64))
    assert stats["uncertain"] == 2
    # a non-finite prediction ends its branch: s > 2.3 blows up (2.4 -> inf at step 1)
    states, stats = dist_rollout(start((1.0, 2.0)), model=LinearToyModel(blowup=2.3))
    torch.testing.assert_close(states[:, 0], torch.tensor([1.2, 2.4, 1.44, 1.728], dtype=F64))
    assert stats["nonfinite"] == 1


def test_distribution_rollout_exploration_noise_within_bounds() -> None:
    actor = LinearActor()
    actor.action_scale.fill_(0.1)
    seen = []

    def spy(obs: Tensor, action: Tensor, next_obs: Tensor) -> Tensor:
        seen.append(action)
        return never(obs, action, next_obs)

    args = {
        "horizon": 2,
        "member": "random_elite",
        "exploration_noise": 5.0,
        "uncertainty_kind": "variance",
        "uncertainty_quantile": 1.0,
        "uncertainty_scale": 1e9,
        "generator": torch.Generator().manual_seed(0),
    }
    distribution_rollout(LinearToyModel(), actor, spy, start(), **args)
    actions = torch.cat(seen)
    assert actions.abs().max() <= 0.1
    assert actions.abs().max() == 0.1  # the noise is large: some actions hit the bounds


def test_config_checks() -> None:
    cfg = ValueGradientConfig()
    assert (cfg.horizon, cfg.distribution_horizon, cfg.distribution_every, cfg.pool_rounds) == (
        5,
        20,
        20,
        10,
    )
    with pytest.raises(ConfigError, match="horizon"):
        ValueGradientConfig(horizon=0)
    with pytest.raises(ConfigError, match="uncertainty_quantile"):
        ValueGradientConfig(uncertainty_quantile=0.0)


def test_actor_gradient_through_the_spiking_world_model() -> None:
    torch.manual_seed(0)
    obs_dim, act_dim = 3, 2
    sizes = {"ensemble_size": 3, "num_elites": 2, "hidden_size": 16, "num_blocks": 2}
    wm = WorldModelConfig(**sizes, num_scales=2, spike_ts=3, pop_dim=4)
    model = SpikingEnsembleModel(obs_dim, act_dim, wm)
    high = torch.ones(act_dim)
    actor = PopSpikingActor(obs_dim, -high, high, TINY_ACTOR)
    critic = TwinQCritic(obs_dim, act_dim, (16, 16))
    s0 = torch.randn(16, obs_dim)
    for horizon, gamma in ((1, 0.0), (2, 0.99)):  # gamma 0: the gradient comes via r_0 only
        actor.zero_grad(set_to_none=True)
        loss, traj, _ = value_gradient_loss(
            model,
            actor,
            critic,
            actor.obs_normalizer,
            never,
            s0,
            horizon=horizon,
            member="random_elite",
            gamma=gamma,
            generator=torch.Generator().manual_seed(0),
        )
        assert torch.isfinite(loss)
        loss.backward()
        grads = [p.grad for p in actor.parameters()]
        assert all(g is not None and torch.isfinite(g).all() for g in grads)
        assert sum(g.abs().sum().item() for g in grads) > 0
        assert all(p.grad is None for p in model.parameters())
        assert all(p.grad is None for p in critic.parameters())
    assert traj.obs.shape == (3, 16, obs_dim)
    # and the model's parameters with model_gradients
    loss, _, _ = value_gradient_loss(
        model,
        actor,
        critic,
        actor.obs_normalizer,
        never,
        s0,
        horizon=2,
        member="elite_mean",
        gamma=0.99,
        generator=torch.Generator().manual_seed(0),
        model_gradients=True,
    )
    loss.backward()
    model_grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert model_grads
    assert all(torch.isfinite(g).all() for g in model_grads)
    assert sum(g.abs().sum().item() for g in model_grads) > 0


def test_the_learner_counts_only_the_actor_steps_it_makes_the_agent_skip() -> None:
    cfg = ValueGradientConfig(horizon=2, batch_size=4, member="elite_mean")
    model = LinearToyModel(blowup=2.3)  # s0 = 2.2: s1 = 2.64, then s2 = inf
    learner = ValueGradientLearner(cfg, model, never, 1, torch.Generator().manual_seed(0))
    learner.pool.add(start((2.2,)), 0)
    args = (LinearActor(), QuadraticCritic(), nn.Identity(), GAMMA)
    assert not learner.actor_objective(*args, actor_step=False).usable  # the critic's rollout
    assert learner.skipped_updates == 0
    assert not learner.actor_objective(*args).usable
    assert learner.skipped_updates == 1
