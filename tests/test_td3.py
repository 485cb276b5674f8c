"""TD3 maths: targets, termination masks, delayed updates and Polyak averaging."""

from __future__ import annotations

import copy
import warnings

import numpy as np
import pytest
import torch

from spiking_dreamer.agent import polyak_update
from spiking_dreamer.buffers import Batch
from spiking_dreamer.config import TD3Config

from .helpers import check_twin_critic_step, tiny_td3


def _batch(n: int = 8, obs_dim: int = 3, act_dim: int = 2, seed: int = 0) -> Batch:
    g = torch.Generator().manual_seed(seed)
    return Batch(
        torch.randn(n, obs_dim, generator=g),
        torch.rand(n, act_dim, generator=g) * 2 - 1,
        torch.randn(n, generator=g),
        torch.randn(n, obs_dim, generator=g),
        (torch.rand(n, generator=g) < 0.5).float(),
    )


def test_target_is_clipped_double_q_with_termination_mask() -> None:
    """Without target noise, y = r + gamma * (1 - terminated) * min(Q1', Q2')(s', pi'(s'))."""
    agent = tiny_td3(td3=TD3Config(target_noise=0.0, gamma=0.9))
    with torch.no_grad():  # targets that differ from the online networks
        for p in (*agent.actor_target.parameters(), *agent.critic_target.parameters()):
            p.add_(0.1)
    batch = _batch()
    y = agent.critic_target_value(batch)
    with torch.no_grad():
        a2 = agent.actor_target(batch.next_obs)
        q = agent.critic_target(agent.actor.obs_normalizer(batch.next_obs), a2)
    for i in range(len(y)):
        q_min = min(q[0, i].item(), q[1, i].item())
        expected = batch.reward[i].item() + 0.9 * (1 - batch.terminated[i].item()) * q_min
        assert y[i].item() == pytest.approx(expected, rel=1e-5, abs=1e-6)
    terminated = batch.terminated.bool()
    assert torch.allclose(y[terminated], batch.reward[terminated])


def test_target_policy_noise_is_clipped_and_actions_stay_in_bounds() -> None:
    agent = tiny_td3(td3=TD3Config(target_noise=10.0, noise_clip=0.5), action_high=2.0)
    batch = _batch()
    with torch.no_grad():
        clean = agent.actor_target(batch.next_obs)
    seen = []

    def spy(obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        seen.append(action.clone())
        return torch.zeros(2, action.shape[0])

    agent.critic_target.forward = spy  # type: ignore[method-assign]
    agent.critic_target_value(batch)
    noisy = seen[0]
    # noise clipped to 0.5 * half-range (2.0) = 1.0; actions clipped to [-2, 2]
    assert (noisy - clean).abs().max() <= 1.0 + 1e-6
    assert noisy.abs().max() <= 2.0
    assert not torch.allclose(noisy, clean)


def test_actor_and_targets_update_only_every_policy_delay() -> None:
    agent = tiny_td3(td3=TD3Config(policy_delay=2))
    actor0 = copy.deepcopy(agent.actor.state_dict())
    critic_t0 = copy.deepcopy(agent.critic_target.state_dict())
    agent.update(_batch(seed=1))
    assert all(torch.equal(v, agent.actor.state_dict()[k]) for k, v in actor0.items())
    assert all(torch.equal(v, agent.critic_target.state_dict()[k]) for k, v in critic_t0.items())
    agent.update(_batch(seed=2))
    changed = [not torch.equal(v, agent.actor.state_dict()[k]) for k, v in actor0.items()]
    assert any(changed)
    assert any(
        not torch.equal(v, agent.critic_target.state_dict()[k]) for k, v in critic_t0.items()
    )


def test_actor_update_leaves_the_critic_untouched() -> None:
    agent = tiny_td3(td3=TD3Config(policy_delay=1, critic_lr=1e-30))
    critic0 = copy.deepcopy(agent.critic.state_dict())
    agent.update(_batch())
    for k, v in critic0.items():
        assert torch.allclose(v, agent.critic.state_dict()[k], atol=1e-20)


def test_polyak_update_hand_computed() -> None:
    src = torch.nn.Linear(2, 1)
    tgt = torch.nn.Linear(2, 1)
    with torch.no_grad():
        src.weight.fill_(1.0)
        src.bias.fill_(2.0)
        tgt.weight.fill_(0.0)
        tgt.bias.fill_(-2.0)
    polyak_update(src, tgt, 0.25)
    assert torch.allclose(tgt.weight, torch.full((1, 2), 0.25))
    assert torch.allclose(tgt.bias, torch.tensor([-2.0 * 0.75 + 2.0 * 0.25]))


def test_repeated_updates_fit_a_fixed_batch() -> None:
    agent = tiny_td3(td3=TD3Config(gamma=0.0))  # y = r: a pure regression problem
    batch = _batch(n=32)
    first = agent.update(batch)["critic_loss"].item()
    for _ in range(600):
        last = agent.update(batch)["critic_loss"].item()
    assert last < 0.1 * first


def test_target_actor_shares_the_online_normaliser() -> None:
    agent = tiny_td3()
    agent.actor.obs_normalizer.update(torch.randn(50, 3) * 4 + 2)
    obs = torch.randn(5, 3)
    assert torch.equal(agent.actor.obs_normalizer(obs), agent.actor_target.obs_normalizer(obs))
    assert agent.actor_target.obs_normalizer is agent.actor.obs_normalizer


def test_act_with_noise_stays_in_bounds_and_is_reproducible() -> None:
    agent = tiny_td3(action_high=0.4)
    obs = np.ones(3, dtype=np.float32)
    a1 = agent.act(obs, np.random.default_rng(0), noise=5.0)
    a2 = agent.act(obs, np.random.default_rng(0), noise=5.0)
    assert np.array_equal(a1, a2)
    assert np.all(np.abs(a1) <= 0.4 + 1e-7)
    assert a1.dtype == np.float32
    with pytest.raises(ValueError, match="rng"):
        agent.act(obs, None, noise=0.1)


def test_act_is_the_actor_on_any_observation_dtype_and_never_aliases() -> None:
    agent = tiny_td3()
    agent.actor.obs_normalizer.update(torch.randn(50, 3) * 4 + 2)
    rng = np.random.default_rng(1)
    obs = [rng.normal(size=3) * 3 for _ in range(4)]
    actions = [agent.act(o) for o in obs]
    for o, a in zip(obs, actions, strict=True):
        with torch.no_grad():
            want = agent.actor(torch.as_tensor(o, dtype=torch.float32)[None])[0].numpy()
        assert np.array_equal(a, want)
        assert np.array_equal(agent.act(o.astype(np.float32)), want)
        assert np.array_equal(agent.act(o.tolist()), want)
    assert not any(np.shares_memory(a, b) for a in actions for b in actions if a is not b)


def test_firing_rate_penalty_lowers_activity() -> None:
    """With a large activity penalty the actor update drives firing rates down."""
    from spiking_dreamer.agent.regularization import firing_rate_penalty

    def rate_after(coef: float) -> float:
        agent = tiny_td3(td3=TD3Config(policy_delay=1, firing_rate_penalty=coef, actor_lr=3e-3))
        batch = _batch(n=32)
        for _ in range(40):
            agent.update(batch)
        with torch.no_grad():
            return firing_rate_penalty(agent.actor.spike_trains(batch.obs)).item()

    assert rate_after(50.0) < rate_after(0.0)


@pytest.mark.slow
def test_compiled_update_matches_eager() -> None:
    """``train.compile`` compiles every network forward of the update (and the spiking
    backward): the same parameters, losses and targets as eager, within float tolerance."""
    eager, compiled = tiny_td3(), tiny_td3()
    data = torch.randn(50, 3) * 2 + 1
    eager.actor.obs_normalizer.update(data)
    compiled.actor.obs_normalizer.update(data)
    compiled.compile()
    for i in range(4):  # two critic-only and two critic + actor updates
        batch = _batch(n=16, seed=i)
        a, b = eager.update(batch), compiled.update(batch)
        for k in a:
            torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6)
    for net in ("actor", "critic", "actor_target", "critic_target"):
        for p, q in zip(
            getattr(eager, net).parameters(), getattr(compiled, net).parameters(), strict=True
        ):
            torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_update_matches_cpu_and_never_waits_for_the_device() -> None:
    """The same updates on CUDA give the CPU's parameters (float tolerance), and no update
    blocks the host on the device (sync debug mode reports every such wait)."""
    from spiking_dreamer.agent import TD3

    cfg = TD3Config(target_noise=0.0, policy_delay=2)
    cpu = tiny_td3(td3=cfg)
    cuda = torch.device("cuda")
    gpu = TD3(
        copy.deepcopy(cpu.actor).to(cuda),
        copy.deepcopy(cpu.critic).to(cuda),
        cfg,
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
    for name in ("actor", "critic", "actor_target", "critic_target"):
        want = getattr(cpu, name).state_dict()
        for key, value in getattr(gpu, name).state_dict().items():
            torch.testing.assert_close(value.cpu(), want[key], rtol=1e-4, atol=1e-5, msg=key)


class QuadraticCritic(torch.nn.Module):
    """``Q_i(s, a) = -w_i |a - c|^2`` ``[2, B]``: a critic whose best action is ``c``."""

    def __init__(self, c: float) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor([1.0, 3.0]))
        self.c = c

    def forward(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return -self.w[:, None] * (action - self.c).square().sum(-1)


def test_the_actor_step_minimises_minus_q1_of_its_action() -> None:
    """The loss of an actor step is ``-mean_b Q_1(s, pi(s))`` before the step (Q_1, not Q_2
    nor their minimum), and steps move pi(s) towards the critic's best action."""
    from spiking_dreamer.agent import TD3, PopSpikingActor

    torch.manual_seed(0)
    high = torch.ones(2)
    actor = PopSpikingActor(3, -high, high, tiny_td3().actor.cfg)
    agent = TD3(actor, QuadraticCritic(0.3), TD3Config(actor_lr=1e-2), torch.Generator())
    batch = _batch(n=16)
    with torch.no_grad():
        before = actor(batch.obs)
    agent.actor_update(batch)
    want = ((before - 0.3).square().sum(-1)).mean()  # -Q_1 with w_1 = 1
    assert agent.last_actor_loss.item() == pytest.approx(want.item(), rel=1e-5)
    for _ in range(30):
        agent.actor_update(batch)
    with torch.no_grad():
        after = actor(batch.obs)
    assert (after - 0.3).square().sum(-1).mean() < 0.5 * want


def test_the_critic_loss_is_the_sum_of_both_heads_mean_squared_td_errors() -> None:
    """``sum_i mean_b (Q_i(s, a) - y)^2`` with y from the target networks, and both heads
    trained."""
    agent = tiny_td3(td3=TD3Config(target_noise=0.0, gamma=0.9))
    batch = _batch()
    with torch.no_grad():
        y = agent.critic_target_value(batch)
        q = agent.critic(agent.actor.obs_normalizer(batch.obs), batch.action)
    check_twin_critic_step(agent, batch, y, q)
