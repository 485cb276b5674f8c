"""SAC maths against hand-computed values and independent references: the squashed-Gaussian
log-density (``torch.distributions`` with tanh and affine transforms), the critic target with
its entropy term, termination against truncation, the temperature loss and its gradient, the
deterministic evaluation action; the schedules' counts, state round trips, SAC through a model
objective, and the entropy-regularised value gradient (SVG(H) and MVE, as DHMBPO) on a toy
system."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from torch import Tensor, nn
from torch.distributions import Normal, TransformedDistribution
from torch.distributions.transforms import AffineTransform, TanhTransform

from spiking_dreamer.agent import (
    SAC,
    MLPGaussianActor,
    PopSpikingActor,
    PopSpikingGaussianActor,
    SquashedGaussian,
    build_actor,
)
from spiking_dreamer.agent.gaussian import squashed_log_prob, squashed_sample
from spiking_dreamer.agent.objective import ActorObjective
from spiking_dreamer.agent.sac import temperature_loss
from spiking_dreamer.buffers import Batch
from spiking_dreamer.config import ActorConfig, SACConfig
from spiking_dreamer.dreaming.model_env import explore_step
from spiking_dreamer.dreaming.value_gradient import (
    Trajectory,
    mve_targets,
    svg_objective,
    value_gradient_loss,
)

from .helpers import TINY_ACTOR, check_twin_critic_step, tiny_sac
from .test_value_gradient import (
    BETA,
    GAMMA,
    LinearActor,
    LinearToyModel,
    QuadraticCritic,
    never,
    start,
    toy_termination,
)

F64 = torch.float64
SCALE = torch.tensor([1.0, 2.0, 0.5])
BIAS = torch.tensor([0.0, 1.0, -0.2])


def _batch(n: int = 8, obs_dim: int = 3, act_dim: int = 2, seed: int = 0) -> Batch:
    g = torch.Generator().manual_seed(seed)
    return Batch(
        torch.randn(n, obs_dim, generator=g),
        torch.rand(n, act_dim, generator=g) * 2 - 1,
        torch.randn(n, generator=g),
        torch.randn(n, obs_dim, generator=g),
        (torch.rand(n, generator=g) < 0.5).float(),
    )


def _reference(mean: Tensor, log_std: Tensor, scale: Tensor, bias: Tensor):
    """The squashed, scaled Gaussian as ``torch.distributions`` builds it."""
    return TransformedDistribution(
        Normal(mean, log_std.exp()), [TanhTransform(), AffineTransform(bias, scale)]
    )


# --------------------------------------------------------------------------- the policy


def test_squashed_log_prob_matches_torch_distributions() -> None:
    g = torch.Generator().manual_seed(0)
    mean = torch.randn(64, 3, generator=g, dtype=F64) * 2
    log_std = torch.randn(64, 3, generator=g, dtype=F64) * 0.7
    eps = torch.randn(64, 3, generator=g, dtype=F64)
    scale, bias = SCALE.to(F64), BIAS.to(F64)
    action, log_prob = squashed_sample(mean, log_std, eps, scale, bias)
    u = mean + log_std.exp() * eps
    torch.testing.assert_close(action, torch.tanh(u) * scale + bias)
    want = _reference(mean, log_std, scale, bias).log_prob(action).sum(-1)
    torch.testing.assert_close(log_prob, want, rtol=1e-9, atol=1e-9)
    # the stable form holds where tanh saturates: 1 - tanh(x)^2 = 1 / cosh(x)^2
    u_big = torch.tensor([[8.0, -9.0, 12.0]], dtype=F64)
    exact = math.log(2 * math.pi)
    lp = squashed_log_prob(u_big, torch.zeros_like(u_big), torch.zeros_like(u_big), scale)
    by_hand = sum(-0.5 * x**2 - 0.5 * exact + 2 * math.log(math.cosh(x)) for x in (8.0, -9.0, 12.0))
    assert lp.item() == pytest.approx(by_hand - math.log(1.0 * 2.0 * 0.5), rel=1e-9)
    # a tiny std: the sample's density from eps itself, no cancellation in (u - mean) / sigma
    m, e = torch.tensor([[0.7]]), torch.tensor([[1.3]])
    _, lp = squashed_sample(m, torch.full((1, 1), -20.0), e, torch.ones(1), torch.zeros(1))
    by_hand = -0.5 * 1.3**2 + 20.0 - 0.5 * exact + 2 * math.log(math.cosh(0.7))
    assert lp.item() == pytest.approx(by_hand, rel=1e-6)


@pytest.mark.parametrize(
    ("kind", "head"), [("popsan", "ann"), ("popsan", "shared"), ("mlp", "ann")]
)
def test_actor_sample_is_the_reparameterised_squashed_gaussian(kind: str, head: str) -> None:
    sac = SACConfig(log_std_head=head, log_std_hidden_sizes=(16,) if head == "ann" else (256, 256))
    torch.manual_seed(0)
    low, high = torch.tensor([-1.0, 0.0, -0.7]), torch.tensor([1.0, 4.0, 0.3])
    actor = build_actor(5, low, high, ActorConfig(**{**TINY_ACTOR.__dict__, "kind": kind}), sac)
    obs = torch.randn(16, 5)
    action, log_prob = actor.sample(obs, torch.Generator().manual_seed(3))
    dist = actor.gaussian(obs)
    eps = torch.randn(dist.mean.shape, generator=torch.Generator().manual_seed(3))
    u = dist.mean + dist.log_std.exp() * eps
    scale, bias = (high - low) / 2, (high + low) / 2
    torch.testing.assert_close(action, torch.tanh(u) * scale + bias)
    want = _reference(dist.mean, dist.log_std, scale, bias).log_prob(action).sum(-1)
    torch.testing.assert_close(log_prob, want, rtol=1e-4, atol=1e-4)
    assert ((action >= low) & (action <= high)).all()
    action.sum().backward()  # reparameterised: the gradient reaches the mean and the log-std
    assert all(p.grad is not None for p in actor.log_std_parameters())
    assert actor.layers[0].weight.grad is not None


def test_log_std_is_clamped() -> None:
    sac = SACConfig(log_std_min=-1.5, log_std_max=0.25, log_std_hidden_sizes=(16,))
    actor = build_actor(3, -torch.ones(2), torch.ones(2), TINY_ACTOR, sac)
    with torch.no_grad():
        actor.log_std_net.layers[-1].bias.fill_(50.0)
        assert (actor.gaussian(torch.randn(4, 3)).log_std == 0.25).all()
        actor.log_std_net.layers[-1].bias.fill_(-50.0)
        assert (actor.gaussian(torch.randn(4, 3)).log_std == -1.5).all()


@pytest.mark.parametrize(
    ("kind", "head"), [("popsan", "ann"), ("popsan", "shared"), ("mlp", "shared")]
)
def test_the_deterministic_action_is_scaled_tanh_of_the_mean(kind: str, head: str) -> None:
    sac = SACConfig(log_std_head=head, log_std_hidden_sizes=(16,) if head == "ann" else (256, 256))
    agent = tiny_sac(act_dim=3, sac=sac, action_high=2.0, kind=kind)
    actor = agent.actor
    with torch.no_grad():
        actor.action_bias.copy_(BIAS)  # bounds bias ± 2
    obs = torch.randn(6, 3)
    with torch.no_grad():
        mean = actor.gaussian(obs).mean
        want = torch.tanh(mean) * 2.0 + BIAS
        torch.testing.assert_close(actor(obs), want)  # forward: what evaluation calls
    for i, row in enumerate(obs):  # act() without an rng: the same deterministic action
        torch.testing.assert_close(torch.from_numpy(agent.act(row.numpy())), want[i])
    # with an rng: a sample of the policy, reproducible from the rng, within the bounds
    x = obs[0].numpy()
    a = agent.act(x, np.random.default_rng(1))
    assert np.array_equal(a, agent.explore(x, np.random.default_rng(1)))
    assert not np.allclose(a, want[0].numpy())
    eps = torch.from_numpy(np.random.default_rng(1).standard_normal(3)).float()
    with torch.no_grad():
        dist = actor.gaussian(obs[:1])
        by_hand = torch.tanh(dist.mean[0] + dist.log_std[0].exp() * eps) * 2.0 + BIAS
    np.testing.assert_allclose(a, by_hand.numpy(), rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="sampling its policy"):
        agent.act(x, np.random.default_rng(1), noise=0.1)


# --------------------------------------------------------------------------- the critic target


def test_critic_target_has_the_entropy_term_and_the_current_policy_hand_built() -> None:
    """y = r + gamma (1 - terminated) (min_i Q_i'(s', a') - alpha log pi(a'|s')), a' a sample of
    the *online* policy with eps from the agent's generator."""
    agent = tiny_sac(sac=SACConfig(alpha=0.5, auto_alpha=False, gamma=0.9))
    with torch.no_grad():  # a target critic that differs from the online one
        for p in agent.critic_target.parameters():
            p.add_(0.1)
    batch = _batch()
    state = agent.generator.get_state()
    y = agent.critic_target_value(batch)
    g = torch.Generator().set_state(state)
    eps = torch.randn(8, 2, generator=g)
    with torch.no_grad():
        dist = agent.actor.gaussian(batch.next_obs)
        u = dist.mean + dist.log_std.exp() * eps
        a2 = torch.tanh(u)  # bounds ±1
        logp = _reference(dist.mean, dist.log_std, torch.ones(2), torch.zeros(2)).log_prob(a2)
        q = agent.critic_target(agent.actor.obs_normalizer(batch.next_obs), a2)
    for i in range(8):
        v = min(q[0, i].item(), q[1, i].item()) - 0.5 * logp[i].sum().item()
        expected = batch.reward[i].item() + 0.9 * (1 - batch.terminated[i].item()) * v
        assert y[i].item() == pytest.approx(expected, rel=1e-4, abs=1e-5)


def test_a_given_eps_is_the_sampled_actions_noise_and_draws_nothing() -> None:
    agent = tiny_sac(sac=SACConfig(alpha=0.5, auto_alpha=False, gamma=0.9))
    batch = _batch()
    state = agent.generator.get_state()
    drawn = agent.critic_target_value(batch)  # eps from the generator
    eps = torch.randn(8, 2, generator=torch.Generator().set_state(state))
    after = agent.generator.get_state()
    given = agent.critic_target_value(batch, eps=eps)
    assert torch.equal(given, drawn)
    assert torch.equal(agent.generator.get_state(), after)  # nothing drawn
    assert not torch.equal(agent.critic_target_value(batch, eps=-eps), drawn)


def test_only_termination_stops_the_bootstrap() -> None:
    """The same transition, once terminated and once not (a time-limit truncation stores
    ``terminated = 0``): the first target is the reward, the second bootstraps."""
    agent = tiny_sac(sac=SACConfig(gamma=0.9))
    b = _batch(n=1)
    pair = Batch(
        b.obs.repeat(2, 1),
        b.action.repeat(2, 1),
        b.reward.repeat(2),
        b.next_obs.repeat(2, 1),
        torch.tensor([1.0, 0.0]),
    )
    y = agent.critic_target_value(pair)
    assert y[0].item() == pair.reward[0].item()
    assert y[1].item() != pair.reward[1].item()


# --------------------------------------------------------------------------- the temperature


def test_temperature_loss_value_and_gradient_by_hand() -> None:
    log_alpha = torch.tensor(math.log(0.3), requires_grad=True)
    log_prob = torch.tensor([-1.0, 0.5, 2.0, -3.5])
    loss = temperature_loss(log_alpha, log_prob, target_entropy=-2.0)
    # -mean(log_alpha * (log_prob + H)) = -log_alpha * (mean(log_prob) - 2)
    assert loss.item() == pytest.approx(-math.log(0.3) * (-0.5 - 2.0))
    loss.backward()
    assert log_alpha.grad.item() == pytest.approx(-(-0.5 - 2.0))  # entropy 0.5 - H(-2) = 2.5
    # entropy above the target: a gradient step lowers alpha; below: raises it
    for log_probs, down in ((torch.tensor([-5.0]), True), (torch.tensor([5.0]), False)):
        la = torch.tensor(0.0, requires_grad=True)
        temperature_loss(la, log_probs, target_entropy=-2.0).backward()
        assert (la.grad.item() > 0) == down


def test_the_agent_steps_its_temperature_towards_the_target_entropy() -> None:
    agent = tiny_sac(sac=SACConfig(alpha=0.2, alpha_lr=0.01, log_std_hidden_sizes=(16,)))
    assert agent.target_entropy == -2.0  # -|A|
    before = agent.log_alpha.item()
    agent.update(_batch())
    losses = agent.update(_batch(seed=1))
    grad = agent.log_alpha.grad.item()
    # the latest step's gradient is entropy - H from its own samples (recorded as "entropy")
    assert grad == pytest.approx(losses["entropy"].item() - agent.target_entropy, rel=1e-5)
    assert losses["alpha"].item() == pytest.approx(math.exp(agent.log_alpha.item()))
    assert agent.log_alpha.item() != before
    fixed = tiny_sac(sac=SACConfig(alpha=0.2, auto_alpha=False, log_std_hidden_sizes=(16,)))
    fixed.update(_batch())
    assert fixed.alpha.item() == pytest.approx(0.2)
    assert fixed.alpha_optimizer is None
    custom = tiny_sac(sac=SACConfig(target_entropy=-0.5, log_std_hidden_sizes=(16,)))
    assert custom.target_entropy == -0.5


# --------------------------------------------------------------------------- the updates


def test_an_update_moves_the_actor_critic_and_target_and_the_log_std_at_its_rate() -> None:
    agent = tiny_sac()
    groups = agent.actor_optimizer.param_groups
    assert [g["lr"] for g in groups] == [1e-4, 1e-3]  # mean path, log-std network (PopSAN-SAC)
    assert {id(p) for p in groups[1]["params"]} == {id(p) for p in agent.actor.log_std_parameters()}
    nets = {"actor": agent.actor, "critic": agent.critic, "target": agent.critic_target}
    before = {k: copy.deepcopy(v.state_dict()) for k, v in nets.items()}
    losses = agent.update(_batch())
    assert set(losses) == {"critic_loss", "actor_loss", "q_mean", "alpha", "entropy"}
    for name, net in nets.items():
        after = net.state_dict()
        assert any(not torch.equal(before[name][k], after[k]) for k in after), name
    assert agent.update_counts == {"critic": 1, "actor": 1, "target": 1, "env_steps": 0}


def test_the_actor_loss_is_alpha_log_pi_minus_the_smaller_q_by_hand() -> None:
    """``mean_b (alpha log pi(a|s) - min_i Q_i(s, a))`` for the reparameterised sample with eps
    from the agent's generator, log pi from ``torch.distributions``, before the step."""
    agent = tiny_sac(sac=SACConfig(alpha=0.5, auto_alpha=False, log_std_hidden_sizes=(16,)))
    batch = _batch()
    state = agent.generator.get_state()
    with torch.no_grad():
        dist = agent.actor.gaussian(batch.obs)
        eps = torch.randn(8, 2, generator=torch.Generator().set_state(state))
        a = torch.tanh(dist.mean + dist.log_std.exp() * eps)  # bounds ±1
        logp = _reference(dist.mean, dist.log_std, torch.ones(2), torch.zeros(2)).log_prob(a)
        q = agent.critic(agent.actor.obs_normalizer(batch.obs), a)
    want = (0.5 * logp.sum(-1) - torch.minimum(q[0], q[1])).mean()
    agent.actor_update(batch)
    assert agent.last_actor_loss.item() == pytest.approx(want.item(), rel=1e-4, abs=1e-5)


def test_the_critic_loss_is_the_sum_of_both_heads_mean_squared_td_errors() -> None:
    agent = tiny_sac(sac=SACConfig(alpha=0.5, auto_alpha=False, log_std_hidden_sizes=(16,)))
    batch = _batch()
    state = agent.generator.get_state()
    with torch.no_grad():
        y = agent.critic_target_value(batch)
        q = agent.critic(agent.actor.obs_normalizer(batch.obs), batch.action)
    agent.generator.set_state(state)  # the update draws the same next-action noise
    check_twin_critic_step(agent, batch, y, q)


def test_the_actor_step_leaves_the_critic_untouched() -> None:
    agent = tiny_sac()
    critic = copy.deepcopy(agent.critic.state_dict())
    agent.actor_update(_batch())
    assert all(torch.equal(critic[k], v) for k, v in agent.critic.state_dict().items())
    assert all(p.grad is None for p in agent.critic.parameters())


@pytest.mark.parametrize(
    ("schedule", "g", "k"), [("sac", 3, 1), ("per_env_step", 4, 1), ("per_env_step", 3, 2)]
)
def test_update_counts_per_env_step(schedule: str, g: int, k: int) -> None:
    extra = {"actor_updates_per_step": k} if schedule == "per_env_step" else {}
    agent = tiny_sac(sac=SACConfig(schedule=schedule, log_std_hidden_sizes=(16,), **extra))
    for step in range(2):
        agent.update_env_step([_batch(seed=10 * step + i) for i in range(g)])
    per_step = (g, g, g) if schedule == "sac" else (g, k, 1)
    want = dict(zip(("critic", "actor", "target"), (2 * n for n in per_step), strict=True))
    assert agent.update_counts == {**want, "env_steps": 2}
    assert agent.update_env_step([]) == {}


def test_per_env_step_batched_targets_equal_sequential_and_one_compounded_polyak_step() -> None:
    cfg = SACConfig(schedule="per_env_step", log_std_hidden_sizes=(16,), tau=0.1)
    batched = tiny_sac(sac=cfg)
    sequential = tiny_sac(sac=SACConfig(**{**cfg.__dict__, "batched_targets": False}))
    batches = [_batch(seed=i) for i in range(3)]
    state = batched.generator.get_state()
    stacked = batched.critic_target_values(batches)
    batched.generator.set_state(state)
    one_by_one = torch.stack([batched.critic_target_value(b) for b in batches])
    torch.testing.assert_close(stacked, one_by_one)
    batched.generator.set_state(state)  # both agents draw the same policy noise from here
    target = copy.deepcopy(batched.critic_target.state_dict())
    batched.update_env_step(batches)
    sequential.update_env_step(batches)
    for a, b in zip(batched.critic.parameters(), sequential.critic.parameters(), strict=True):
        torch.testing.assert_close(a, b)
    tau = 1 - (1 - 0.1) ** 3  # G = 3 critic updates, compounded into one Polyak step
    critic = batched.critic.state_dict()
    for key, value in batched.critic_target.state_dict().items():
        torch.testing.assert_close(value, target[key] + tau * (critic[key] - target[key]))


def test_update_is_refused_under_per_env_step() -> None:
    agent = tiny_sac(sac=SACConfig(schedule="per_env_step", log_std_hidden_sizes=(16,)))
    with pytest.raises(RuntimeError, match="update_env_step"):
        agent.update(_batch())


def test_state_dict_round_trip_continues_exactly() -> None:
    a = tiny_sac(seed=1)
    for i in range(3):
        a.update(_batch(seed=i))
    b = tiny_sac(seed=2)
    b.load_state_dict(copy.deepcopy(a.state_dict()))
    b.generator.set_state(a.generator.get_state())
    for i in range(3, 5):
        la, lb = a.update(_batch(seed=i)), b.update(_batch(seed=i))
        for k in la:
            assert torch.equal(la[k], lb[k]), k
    for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True):
        if isinstance(x, Tensor):
            assert torch.equal(x, y)
    assert a.update_counts == b.update_counts


def test_firing_rate_penalty_lowers_activity() -> None:
    from spiking_dreamer.agent.regularization import firing_rate_penalty

    def rate_after(coef: float) -> float:
        sac = SACConfig(firing_rate_penalty=coef, actor_lr=3e-3, log_std_hidden_sizes=(16,))
        agent = tiny_sac(sac=sac)
        batch = _batch(n=32)
        for _ in range(40):
            agent.update(batch)
        with torch.no_grad():
            return firing_rate_penalty(agent.actor.spike_trains(batch.obs)).item()

    assert rate_after(50.0) < rate_after(0.0)


def test_sac_refuses_a_deterministic_actor() -> None:
    actor = PopSpikingActor(3, -torch.ones(2), torch.ones(2), TINY_ACTOR)
    critic = copy.deepcopy(tiny_sac().critic)
    with pytest.raises(TypeError, match="stochastic actor"):
        SAC(actor, critic, SACConfig(), torch.Generator())  # type: ignore[arg-type]


# --------------------------------------------------------------------------- model objectives


class FakeObjective:
    """A model objective that records what the agent passes: the actor loss is SAC's own on
    fixed states, the critic loss a squared error on the same states."""

    def __init__(self, real: bool, usable: bool = True) -> None:
        self.critic_on_real_batches, self.usable = real, usable
        self.obs = torch.randn(8, 3, generator=torch.Generator().manual_seed(5))
        self.alphas: list[float] = []
        self.critic_calls: list[tuple[nn.Module, float]] = []
        self.log_prob: Tensor | None = None

    def actor_objective(self, actor, critic, obs_normalizer, gamma, alpha=None) -> ActorObjective:
        self.alphas.append(float(alpha))
        action, log_prob = actor.sample(self.obs, torch.Generator().manual_seed(0))
        q = critic(obs_normalizer(self.obs), action).min(0).values
        loss = (alpha * log_prob - q).mean()
        self.log_prob = log_prob.detach()
        stats = {"vg_objective": -loss.detach()}
        return ActorObjective(loss, self.obs, self.usable, stats, action.detach(), self.log_prob)

    def critic_loss(
        self, objective, critic, actor_target, critic_target, obs_normalizer, *a, alpha=None
    ):
        self.critic_calls.append((actor_target, float(alpha)))
        q = critic(obs_normalizer(objective.obs), objective.rollout)
        return q.square().mean(0).sum(), q


@pytest.mark.parametrize("real", [True, False])
def test_sac_through_a_model_objective(real: bool) -> None:
    agent = tiny_sac(sac=SACConfig(alpha_lr=0.01, log_std_hidden_sizes=(16,)))
    objective = FakeObjective(real)
    sampled = []

    def sample() -> Batch:
        sampled.append(1)
        return _batch(seed=len(sampled))

    alpha0 = agent.alpha.item()
    actor = copy.deepcopy(agent.actor.state_dict())
    losses = agent.train(3, sample, objective)
    assert objective.alphas[0] == pytest.approx(alpha0)  # the temperature before the update
    assert len(objective.alphas) == 3
    assert len(sampled) == (3 if real else 0)
    if not real:  # the bootstrap acts with the online policy (SAC has no target actor)
        assert all(a is agent.actor for a, _ in objective.critic_calls)
        assert [x for _, x in objective.critic_calls] == objective.alphas
    assert agent.update_counts == {"critic": 3, "actor": 3, "target": 3, "env_steps": 0}
    assert any(not torch.equal(actor[k], v) for k, v in agent.actor.state_dict().items())
    # the last temperature step read the objective's log-densities
    want = -(objective.log_prob.mean() + agent.target_entropy)
    assert agent.log_alpha.grad.item() == pytest.approx(want.item(), rel=1e-5)
    assert {"vg_objective", "alpha", "entropy"} <= set(losses)


def test_an_unusable_objective_takes_no_actor_or_temperature_step() -> None:
    agent = tiny_sac()
    log_alpha, actor = agent.log_alpha.item(), copy.deepcopy(agent.actor.state_dict())
    agent.train(2, lambda: _batch(), FakeObjective(real=True, usable=False))
    assert agent.update_counts == {"critic": 2, "actor": 0, "target": 2, "env_steps": 0}
    assert agent.log_alpha.item() == log_alpha
    assert all(torch.equal(actor[k], v) for k, v in agent.actor.state_dict().items())


# --------------------------------------------------------------------------- SVG(H) with entropy

SIGMA, ALPHA_T = 0.3, 0.4  # the toy policy's std, the temperature


class ToyGaussianActor(SquashedGaussian, LinearActor):
    """The toy's linear policy with Gaussian noise and no squashing: ``a = k s + sigma eps``,
    ``log pi = log N(eps; 0, 1) - log sigma`` (differentiable in ``k``)."""

    def sample(self, obs: Tensor, generator: torch.Generator | None = None):
        eps = torch.randn(obs.shape, generator=generator, dtype=F64)
        log_prob = (-0.5 * eps.square() - 0.5 * math.log(2 * math.pi) - math.log(SIGMA)).sum(-1)
        return obs @ self.k.T + SIGMA * eps, log_prob


def _soft_rollout_by_hand(s0: Tensor, k: Tensor, horizon: int, termination) -> dict[str, list]:
    """The toy's rollout written out: elite-mean transition ``s' = 1.1 s + 0.5 a``, reward
    ``-s^2 - 0.1 a^2``, the actor's eps drawn from a generator seeded 0, one ``[B, 1]`` draw per
    step and one for the bootstrap action."""
    g = torch.Generator().manual_seed(0)
    s, alive = s0, torch.ones(s0.shape[0], dtype=F64)
    out: dict[str, list] = {"s": [s], "r": [], "lp": [], "alive": [alive], "done": []}
    for _ in range(horizon + 1):
        eps = torch.randn(s.shape, generator=g, dtype=F64)
        a = s * k + SIGMA * eps
        lp = (-0.5 * eps.square() - 0.5 * math.log(2 * math.pi) - math.log(SIGMA)).sum(-1)
        out["lp"].append(lp)
        if len(out["r"]) == horizon:
            out["a_last"] = a
            break
        nxt = 1.1 * s + BETA * a
        out["r"].append(-(s.square() + 0.1 * a.square()).sum(-1))
        done = termination(s, a, nxt).to(F64)
        alive = alive * (1 - done)
        out["done"].append(done)
        out["alive"].append(alive)
        out["s"].append(nxt)
        s = nxt
    return out


@pytest.mark.parametrize("termination", [never, toy_termination])
def test_soft_svg_objective_by_hand(termination) -> None:
    """J = sum_h gamma^h alive_h (r_h - alpha l_h) + gamma^H alive_H (min_i Q_i(s_H, a_H) -
    alpha l_H), reparameterised: its gradient w.r.t. k matches the hand-written rollout's."""
    s0, horizon = start(), 2
    actor = ToyGaussianActor()
    critic = QuadraticCritic()
    loss, traj, _ = value_gradient_loss(
        LinearToyModel(),
        actor,
        critic,
        nn.Identity(),
        termination,
        s0,
        horizon=horizon,
        member="elite_mean",
        gamma=GAMMA,
        generator=torch.Generator().manual_seed(0),
        alpha=ALPHA_T,
    )
    k = torch.tensor(0.2, dtype=F64, requires_grad=True)
    h = _soft_rollout_by_hand(s0, k, horizon, termination)
    s_last = h["s"][-1]
    q = torch.minimum(
        -(0.3 * s_last.square() + 0.2 * h["a_last"].square()).sum(-1),
        -(0.7 * s_last.square() + 0.5 * h["a_last"].square()).sum(-1),
    )
    j = sum(GAMMA**t * h["alive"][t] * (h["r"][t] - ALPHA_T * h["lp"][t]) for t in range(horizon))
    j = j + GAMMA**horizon * h["alive"][-1] * (q - ALPHA_T * h["lp"][-1])
    torch.testing.assert_close(loss, -j.mean())
    torch.testing.assert_close(traj.log_prob, torch.stack(h["lp"][:horizon]))
    loss.backward()
    (-j.mean()).backward()
    torch.testing.assert_close(actor.k.grad[0, 0], k.grad)
    if termination is toy_termination:  # the masks are exercised: some branches end early
        assert (traj.alive[-1] == 0).any()
        assert (traj.alive[-1] == 1).any()


def test_soft_mve_targets_by_hand() -> None:
    """y_H-bootstrap v_H = min_i Q'_i(s_H, a'_H) - alpha l'_H (a'_H a sample of the policy),
    y_h = r_h + gamma (1 - terminated_h) v_{h+1}, v_h = y_h - alpha l_h."""
    s = torch.tensor([[1.0], [2.0], [-0.5]], dtype=F64)
    traj = Trajectory(
        obs=torch.stack([s, 1.5 * s, 2.0 * s]),
        action=torch.zeros(2, 3, 1, dtype=F64),
        reward=torch.tensor([[1.0, 2.0, 3.0], [-1.0, 0.5, 2.0]], dtype=F64),
        terminated=torch.tensor([[False, True, False], [False, False, False]]),
        alive=torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 1.0], [1.0, 0.0, 1.0]], dtype=F64),
        valid=torch.ones(3, dtype=torch.bool),
        log_prob=torch.tensor([[-0.3, 0.1, 0.7], [0.2, -1.0, 0.4]], dtype=F64),
    )
    actor, critic = ToyGaussianActor(), QuadraticCritic()
    y = mve_targets(
        traj,
        actor,
        critic,
        nn.Identity(),
        gamma=GAMMA,
        target_noise=0.0,
        noise_clip=0.0,
        generator=torch.Generator().manual_seed(4),
        alpha=ALPHA_T,
    )
    a_last, lp_last = ToyGaussianActor().sample(traj.obs[-1], torch.Generator().manual_seed(4))
    s_h = traj.obs[-1][:, 0]
    q = torch.minimum(
        -(0.3 * s_h**2 + 0.2 * a_last[:, 0] ** 2), -(0.7 * s_h**2 + 0.5 * a_last[:, 0] ** 2)
    )
    v2 = q - ALPHA_T * lp_last
    y1 = traj.reward[1] + GAMMA * v2
    y0 = traj.reward[0] + GAMMA * (1 - traj.terminated[0].to(F64)) * (
        y1 - ALPHA_T * traj.log_prob[1]
    )
    torch.testing.assert_close(y, torch.stack([y0, y1]))
    assert y[0, 1].item() == 2.0  # terminated at step 0: the reward alone


def test_deterministic_svg_is_unchanged_without_alpha() -> None:
    """TD3's path: no alpha, no sampling, no log-densities (the closed-form tests of
    test_value_gradient.py cover its values)."""
    loss, traj, _ = value_gradient_loss(
        LinearToyModel(),
        LinearActor(),
        QuadraticCritic(),
        nn.Identity(),
        never,
        start(),
        horizon=2,
        member="elite_mean",
        gamma=GAMMA,
        generator=torch.Generator().manual_seed(0),
    )
    assert traj.log_prob is None
    assert traj.detach().log_prob is None
    j, _ = svg_objective(traj.detach(), LinearActor(), QuadraticCritic(), nn.Identity(), GAMMA)
    torch.testing.assert_close(loss, -j.mean())


# --------------------------------------------------------------------------- exploring dreams


def test_explore_step_samples_a_stochastic_policy_and_refuses_noise_on_top() -> None:
    from spiking_dreamer.config import WorldModelConfig
    from spiking_dreamer.world_model import build_world_model

    torch.manual_seed(0)
    model = build_world_model(3, 2, WorldModelConfig(hidden_size=8, num_scales=2, spike_ts=2))
    actor = tiny_sac().actor
    obs = torch.randn(32, 3)
    kw = {"member": "random_elite", "uncertainty_kind": "variance", "uncertainty_over": "all"}
    with torch.no_grad():
        step = explore_step(
            model,
            actor,
            obs,
            exploration_noise=0.0,
            generator=torch.Generator().manual_seed(1),
            **kw,
        )
        want, _ = actor.sample(obs, torch.Generator().manual_seed(1))
    torch.testing.assert_close(step.action, want)  # the policy's sample, drawn first
    assert not torch.allclose(step.action, actor(obs))
    with torch.no_grad():  # actor and model in chunks of rows: the same draws and values
        chunked = explore_step(
            model,
            actor,
            obs,
            exploration_noise=0.0,
            generator=torch.Generator().manual_seed(1),
            chunk=10,
            **kw,
        )
    for x, y in zip(chunked, step, strict=True):
        torch.testing.assert_close(x, y, rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="sampling its policy"):
        explore_step(model, actor, obs, exploration_noise=0.1, generator=torch.Generator(), **kw)


def test_gaussian_actors_are_subclasses_of_the_deterministic_ones() -> None:
    """Evaluation, export, energy and firing-rate logging take the stochastic actors as they
    take the deterministic ones: the mean path."""
    assert issubclass(PopSpikingGaussianActor, PopSpikingActor)
    from spiking_dreamer.agent import MLPActor

    assert issubclass(MLPGaussianActor, MLPActor)


@pytest.mark.slow
def test_compiled_update_matches_eager() -> None:
    """``train.compile`` compiles acting, the Gaussian's forward and the critics: the same
    parameters, losses and actions as eager, within float tolerance."""
    eager, compiled = tiny_sac(), tiny_sac()
    data = torch.randn(50, 3) * 2 + 1
    eager.actor.obs_normalizer.update(data)
    compiled.actor.obs_normalizer.update(data)
    compiled.compile()
    for i in range(3):
        batch = _batch(n=16, seed=i)
        a, b = eager.update(batch), compiled.update(batch)
        for k in a:
            torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6)
    for net in ("actor", "critic", "critic_target"):
        for p, q in zip(
            getattr(eager, net).parameters(), getattr(compiled, net).parameters(), strict=True
        ):
            torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)
    x = data[0].numpy()
    np.testing.assert_allclose(eager.act(x), compiled.act(x), rtol=1e-5, atol=1e-6)
    rng_a, rng_b = np.random.default_rng(0), np.random.default_rng(0)
    np.testing.assert_allclose(eager.act(x, rng_a), compiled.act(x, rng_b), rtol=1e-5, atol=1e-6)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_update_matches_cpu_and_never_waits_for_the_device() -> None:
    """The same updates on CUDA give the CPU's parameters (float tolerance; the policy's std is
    clamped tiny and alpha fixed, so the devices' different noise draws do not matter), and no
    update blocks the host on the device (sync debug mode reports every such wait)."""
    import warnings

    sac = SACConfig(
        log_std_min=-20.0, log_std_max=-19.0, auto_alpha=False, log_std_hidden_sizes=(16,)
    )
    cpu = tiny_sac(sac=sac)
    cuda = torch.device("cuda")
    gpu = SAC(
        copy.deepcopy(cpu.actor).to(cuda),
        copy.deepcopy(cpu.critic).to(cuda),
        sac,
        torch.Generator(cuda).manual_seed(0),
    )
    batches = [_batch(seed=s) for s in range(4)]
    on_device = [Batch(*(x.to(cuda) for x in b)) for b in batches]
    torch.cuda.synchronize()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            for b in on_device:
                gpu.update(b)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    waits = [f"{w.filename}:{w.lineno}" for w in caught if "a synchronizing" in str(w.message)]
    assert not waits, waits
    for b in batches:
        cpu.update(b)
    for name in ("actor", "critic", "critic_target"):
        want = getattr(cpu, name).state_dict()
        for key, value in getattr(gpu, name).state_dict().items():
            torch.testing.assert_close(value.cpu(), want[key], rtol=1e-4, atol=1e-5, msg=key)
