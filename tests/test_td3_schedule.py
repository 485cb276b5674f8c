"""Per-env-step TD3 updates: the ``td3`` schedule is a loop of ``update``; ``per_env_step``
(REDQ) holds the actor and targets fixed over the G critic steps, batches the G TD targets,
then K actor steps and one Polyak update."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import pytest
import torch

from spiking_dreamer.agent import TD3, MLPActor, PopSpikingActor, TwinQCritic
from spiking_dreamer.agent.schedule import compounded_tau
from spiking_dreamer.agent.td3 import polyak_update
from spiking_dreamer.buffers import Batch
from spiking_dreamer.config import Config, ConfigError, TD3Config
from spiking_dreamer.config_loading import load_config

from .helpers import TINY_ACTOR, tiny_td3

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
PER_ENV_STEP = TD3Config(schedule="per_env_step")
NETS = ("actor", "critic", "actor_target", "critic_target")


def _batch(n: int = 8, obs_dim: int = 3, act_dim: int = 2, seed: int = 0) -> Batch:
    g = torch.Generator().manual_seed(seed)
    return Batch(
        torch.randn(n, obs_dim, generator=g) * 2,
        torch.rand(n, act_dim, generator=g) * 2 - 1,
        torch.randn(n, generator=g),
        torch.randn(n, obs_dim, generator=g) * 2,
        (torch.rand(n, generator=g) < 0.3).float(),
    )


def _env_steps(num: int, g: int, n: int = 8, start: int = 0) -> list[list[Batch]]:
    return [[_batch(n, seed=1000 * (start + e) + i) for i in range(g)] for e in range(num)]


def _agent(cfg: TD3Config, seed: int = 0, kind: str = "popsan", **actor: object) -> TD3:
    agent = tiny_td3(seed=seed, td3=cfg)
    if kind != "popsan" or actor:
        torch.manual_seed(seed)
        high = torch.ones(2)
        acfg = dataclasses.replace(TINY_ACTOR, **actor)
        cls = PopSpikingActor if kind == "popsan" else MLPActor
        agent = TD3(
            cls(3, -high, high, acfg),
            TwinQCritic(3, 2, (16, 16)),
            cfg,
            torch.Generator().manual_seed(seed),
        )
    agent.actor.obs_normalizer.update(torch.randn(64, 3) * 2 + 1)
    return agent


def _assert_same_state(a: TD3, b: TD3, exact: bool = True, counts: bool = True) -> None:
    for name in NETS:
        sa, sb = getattr(a, name).state_dict(), getattr(b, name).state_dict()
        for key, value in sa.items():
            if exact:
                assert torch.equal(value, sb[key]), f"{name}.{key}"
            else:
                torch.testing.assert_close(value, sb[key], rtol=1e-5, atol=1e-6, msg=key)
    for opt in ("actor_optimizer", "critic_optimizer"):
        sa, sb = getattr(a, opt).state_dict()["state"], getattr(b, opt).state_dict()["state"]
        for i, s in sa.items():
            for key, value in s.items():
                if exact:
                    assert torch.equal(value, sb[i][key]), f"{opt}[{i}].{key}"
                else:
                    torch.testing.assert_close(value, sb[i][key], rtol=1e-5, atol=1e-6)
    assert torch.equal(a.generator.get_state(), b.generator.get_state())
    if counts:
        assert a.update_counts == b.update_counts


@pytest.mark.parametrize("g", [1, 3, 20])
def test_td3_schedule_is_a_loop_of_update_bitwise(g: int) -> None:
    """``update_env_step`` under ``td3`` = ``update(b)`` for each batch: same parameters,
    optimiser states, generator draws and losses, bitwise."""
    loop, per_step = _agent(TD3Config()), _agent(TD3Config())
    for batches in _env_steps(3, g):
        for b in batches:
            want = loop.update(b)
        got = per_step.update_env_step(batches)
        for key in want:
            assert torch.equal(want[key], got[key]), key
    _assert_same_state(loop, per_step, counts=False)
    assert per_step.num_env_steps == 3
    assert loop.num_env_steps == 0  # update() is not an env step
    assert per_step.update_counts == {**loop.update_counts, "env_steps": 3}


@pytest.mark.parametrize("g", [1, 3, 20])
@pytest.mark.parametrize(("schedule", "k"), [("td3", 1), ("per_env_step", 1), ("per_env_step", 2)])
def test_update_counts_per_env_step(schedule: str, g: int, k: int) -> None:
    cfg = TD3Config(schedule=schedule, actor_updates_per_step=k)  # type: ignore[arg-type]
    agent = _agent(cfg)
    steps = 4
    for e, batches in enumerate(_env_steps(steps, g)):
        before = agent.update_counts
        agent.update_env_step(batches)
        after = agent.update_counts
        diff = {key: after[key] - before[key] for key in after}
        if schedule == "per_env_step":
            assert diff == {"critic": g, "actor": k, "target": 1, "env_steps": 1}
        else:  # an actor step and a target update with every policy_delay-th critic step
            delayed = (e + 1) * g // 2 - e * g // 2
            assert diff == {"critic": g, "actor": delayed, "target": delayed, "env_steps": 1}
    assert agent.num_updates == steps * g


def test_no_batches_is_no_update() -> None:
    for cfg in (TD3Config(), PER_ENV_STEP):
        agent = _agent(cfg)
        before = copy.deepcopy(agent.critic.state_dict())
        assert agent.update_env_step([]) == {}
        assert agent.update_counts == {"critic": 0, "actor": 0, "target": 0, "env_steps": 0}
        assert all(torch.equal(v, agent.critic.state_dict()[k]) for k, v in before.items())


@pytest.mark.parametrize(
    ("kind", "actor", "n", "g"),
    [
        ("popsan", {}, 8, 3),
        ("popsan", {}, 100, 20),
        ("popsan", {"encoding": "bernoulli"}, 8, 3),
        ("mlp", {}, 8, 5),
    ],
)
def test_batched_targets_equal_sequential_targets(
    kind: str, actor: dict[str, object], n: int, g: int
) -> None:
    """One ``[G * B]`` forward = G ``[B]`` forwards under fixed targets; the smoothing noise
    (and a Bernoulli encoder's spikes) drawn batch by batch, in order: the generators end in
    the same state. Bitwise where the BLAS treats rows alike (PopSAN's B = 100 here), else
    within float rounding."""
    agent = _agent(TD3Config(target_noise=0.3), kind=kind, **actor)
    batches = [_batch(n, seed=s) for s in range(g)]
    agent.generator.manual_seed(7)
    torch.manual_seed(11)  # a Bernoulli encoder draws from the global generator
    seq = torch.stack([agent.critic_target_value(b) for b in batches])
    seq_states = agent.generator.get_state(), torch.get_rng_state()
    agent.generator.manual_seed(7)
    torch.manual_seed(11)
    bat = agent.critic_target_values(batches)
    assert bat.shape == (g, n)
    assert torch.equal(agent.generator.get_state(), seq_states[0])
    assert torch.equal(torch.get_rng_state(), seq_states[1])
    torch.testing.assert_close(bat, seq, rtol=1e-6, atol=1e-6)
    if n == 100:
        assert torch.equal(bat, seq)


def test_batched_targets_need_one_batch_size() -> None:
    agent = _agent(PER_ENV_STEP)
    with pytest.raises(ValueError, match="one size"):
        agent.critic_target_values([_batch(8), _batch(9)])


@pytest.mark.parametrize("n", [8, 100])
@pytest.mark.parametrize("encoding", ["deterministic", "bernoulli"])
def test_per_env_step_batched_equals_unbatched(encoding: str, n: int) -> None:
    """``batched_targets`` changes how the G targets are computed, not the update: bitwise at
    B = 100 here, within float rounding at B = 8 (the BLAS's small-matrix kernels)."""
    batched = _agent(PER_ENV_STEP, encoding=encoding)
    plain = _agent(dataclasses.replace(PER_ENV_STEP, batched_targets=False), encoding=encoding)
    for batches in _env_steps(3, 4, n=n):
        torch.manual_seed(5)
        a = batched.update_env_step(batches)
        torch.manual_seed(5)
        b = plain.update_env_step(batches)
        for key in a:
            torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6)
    _assert_same_state(batched, plain, exact=False)
    if n == 100:
        _assert_same_state(batched, plain)


def test_per_env_step_holds_targets_and_actor_fixed_then_one_polyak_step() -> None:
    """During the critic steps neither the actor nor the targets move (every critic step sees
    the same targets as a fresh copy of the agent would); afterwards the targets are one
    Polyak step of rate 1 - (1 - tau)^G from where they were towards the updated networks."""
    g, cfg = 5, dataclasses.replace(PER_ENV_STEP, tau=0.01)
    agent = _agent(cfg)
    frozen = copy.deepcopy(agent)  # targets and generator as they were
    batches = [_batch(seed=s) for s in range(g)]
    seen: list[torch.Tensor] = []
    critic_step = agent._critic_step

    def spy(obs_n: torch.Tensor, action: torch.Tensor, target: torch.Tensor):  # type: ignore[no-untyped-def]
        assert agent.num_actor_updates == 0
        seen.append(target.clone())
        return critic_step(obs_n, action, target)

    agent._critic_step = spy  # type: ignore[method-assign]
    agent.update_env_step(batches)
    assert torch.equal(torch.stack(seen), frozen.critic_target_values(batches))
    tau = 1 - (1 - 0.01) ** g
    for online, target, before in (
        (agent.actor, agent.actor_target, frozen.actor_target),
        (agent.critic, agent.critic_target, frozen.critic_target),
    ):
        polyak_update(online, before, tau)
        for p, q in zip(target.parameters(), before.parameters(), strict=True):
            torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize(("g", "k"), [(5, 1), (5, 2), (2, 3)])
def test_actor_steps_use_the_last_batches_in_order(g: int, k: int) -> None:
    cfg = dataclasses.replace(PER_ENV_STEP, actor_updates_per_step=k)
    agent = _agent(cfg)
    batches = [_batch(seed=s) for s in range(g)]
    seen: list[int] = []
    act = agent._actions_and_penalty

    def spy(obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        seen.append(next(i for i, b in enumerate(batches) if b.obs is obs))
        return act(obs)

    agent._actions_and_penalty = spy  # type: ignore[method-assign]
    agent.update_env_step(batches)
    assert seen == [(g - k + j) % g for j in range(k)]


def test_compounded_tau() -> None:
    assert compounded_tau(0.005, 1) == 0.005
    assert compounded_tau(1.0, 20) == 1.0
    assert compounded_tau(0.005, 20) == pytest.approx(1 - 0.995**20, rel=1e-12)
    with pytest.raises(ValueError, match="steps"):
        compounded_tau(0.005, 0)
    # n Polyak steps towards a fixed source = one step of the compounded rate
    src, a = torch.nn.Linear(4, 3), torch.nn.Linear(4, 3)
    b = copy.deepcopy(a)
    for _ in range(20):
        polyak_update(src, a, 0.005)
    polyak_update(src, b, compounded_tau(0.005, 20))
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-7)


def test_env_step_tau_follows_target_tau_per() -> None:
    per_critic = _agent(dataclasses.replace(PER_ENV_STEP, actor_updates_per_step=2))
    assert per_critic.env_step_tau(20) == compounded_tau(0.005, 20)
    per_actor = _agent(
        dataclasses.replace(PER_ENV_STEP, actor_updates_per_step=2, target_tau_per="actor_update")
    )
    assert per_actor.env_step_tau(20) == compounded_tau(0.005, 2)
    assert _agent(dataclasses.replace(PER_ENV_STEP, target_tau_per="actor_update")).env_step_tau(
        20
    ) == pytest.approx(0.005, abs=0)


def test_update_is_refused_under_per_env_step() -> None:
    agent = _agent(PER_ENV_STEP)
    with pytest.raises(RuntimeError, match="update_env_step"):
        agent.update(_batch())


@pytest.mark.parametrize("schedule", ["td3", "per_env_step"])
def test_state_dict_resume_is_exact(schedule: str) -> None:
    cfg = TD3Config(schedule=schedule)  # type: ignore[arg-type]
    straight = _agent(cfg)
    steps = _env_steps(4, 3)
    for batches in steps[:2]:
        straight.update_env_step(batches)
    state = copy.deepcopy(straight.state_dict())
    generator_state = straight.generator.get_state()
    resumed = _agent(cfg, seed=1)
    resumed.load_state_dict(state)
    resumed.generator.set_state(generator_state)
    assert resumed.update_counts == straight.update_counts
    for batches in steps[2:]:
        straight.update_env_step(batches)
        resumed.update_env_step(batches)
    _assert_same_state(straight, resumed)


def test_state_without_new_counters_loads() -> None:
    agent = _agent(TD3Config())
    for batches in _env_steps(1, 5):
        agent.update_env_step(batches)
    state = agent.state_dict()
    for key in ("num_actor_updates", "num_target_updates", "num_env_steps"):
        del state[key]
    fresh = _agent(TD3Config())
    fresh.load_state_dict(state)
    assert fresh.update_counts == {"critic": 5, "actor": 2, "target": 2, "env_steps": 0}


def test_config_keys_and_validation() -> None:
    assert Config().td3.schedule == "td3"
    assert Config().td3.batched_targets
    settings = ["td3.schedule=per_env_step", "td3.actor_updates_per_step=2"]
    cfg = load_config(CONFIGS / "halfcheetah.yaml", settings)
    assert cfg.td3.schedule == "per_env_step"
    assert cfg.td3.actor_updates_per_step == 2
    with pytest.raises(ConfigError, match=r"td3\.schedule: must be one of"):
        load_config(CONFIGS / "halfcheetah.yaml", ["td3.schedule=redq"])
    with pytest.raises(ConfigError, match=r"td3\.actor_updates_per_step: must be >= 1"):
        TD3Config(schedule="per_env_step", actor_updates_per_step=0)
    for key, value in (
        ("actor_updates_per_step", 2),
        ("batched_targets", False),
        ("target_tau_per", "actor_update"),
    ):
        with pytest.raises(ConfigError, match=rf"td3\.{key}: .* only with td3\.schedule"):
            TD3Config(**{key: value})
    with pytest.raises(ConfigError, match=r"td3\.policy_delay: 3 would never apply"):
        TD3Config(schedule="per_env_step", policy_delay=3)
