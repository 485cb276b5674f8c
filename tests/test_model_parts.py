"""Swappable parts: the world-model kind, the agent's model-based actor objective, and one
switch for how the model is used (with the keys of older configs)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from torch import Tensor

from spiking_dreamer.agent.objective import ActorObjective
from spiking_dreamer.agent.regularization import firing_rate_penalty
from spiking_dreamer.buffers import Batch
from spiking_dreamer.config import ConfigError, TD3Config
from spiking_dreamer.config_loading import config_from_dict, load_config, upgrade_old_keys
from spiking_dreamer.report.load import read_train_run
from spiking_dreamer.training.trainer import Trainer
from spiking_dreamer.world_model import GaussianMLPEnsemble, SpikingEnsembleModel

from .helpers import (
    ROOT,
    TINY,
    assert_same,
    final_state,
    records,
    stopped_and_resumed,
    tiny_td3,
    without_best,
)

MLP = ["world_model.kind=mlp", "world_model.mlp_hidden_sizes=[16, 16]"]
MLP_TINY = [
    *(s for s in TINY if not s.startswith("world_model.") or "train" in s or "batch" in s),
    *MLP,
    "world_model.ensemble_size=3",
    "world_model.num_elites=2",
    "train.total_steps=300",
    "train.checkpoint_every=100",
]
VALUE_GRADIENT = [
    "world_model.use=value_gradient",
    "value_gradient.start_step=100",
    "value_gradient.horizon=2",
    "value_gradient.distribution_horizon=3",
    "value_gradient.distribution_every=10",
    "value_gradient.distribution_starts=16",
    "value_gradient.batch_size=8",
    "td3.policy_delay=1",
]


def _cfg(*extra: str):
    return load_config(ROOT / "configs/halfcheetah.yaml", [*MLP_TINY, *extra])


# --------------------------------------------------------------------------- world_model.kind


@pytest.mark.mujoco
def test_the_mlp_kind_trains_and_dreams(tmp_path: Path) -> None:
    trainer = Trainer(_cfg(), tmp_path / "run")
    trainer.run()
    engine = trainer.dreaming
    assert isinstance(engine.model, GaussianMLPEnsemble)
    assert engine.model.ensemble_size == 3
    assert engine.model.gaussian
    assert engine.model_trainer.version > 0
    assert len(engine.buffer) > 0
    rows = records(tmp_path / "run" / "metrics.jsonl")
    assert any("dream/accepted" in r for r in rows)
    assert any("model/holdout_mse" in r for r in rows)
    assert not any(k.startswith(("model/firing", "dream/firing")) for r in rows for k in r)


@pytest.mark.mujoco
def test_the_spiking_kind_reports_its_firing_rates(tmp_path: Path) -> None:
    cfg = load_config(ROOT / "configs/halfcheetah.yaml", [*TINY, "train.total_steps=200"])
    trainer = Trainer(cfg, tmp_path / "run")
    trainer.run()
    assert isinstance(trainer.dreaming.model, SpikingEnsembleModel)
    rows = records(tmp_path / "run" / "metrics.jsonl")
    assert any("model/firing_rate/block0" in r for r in rows)
    assert any("dream/firing_rate/block1" in r for r in rows)


@pytest.mark.mujoco
def test_the_mlp_kind_drives_value_gradients(tmp_path: Path) -> None:
    trainer = Trainer(_cfg(*VALUE_GRADIENT), tmp_path / "run")
    trainer.begin()
    while trainer.step < 200:
        trainer.advance()
    vg = trainer.dreaming.value_gradient
    assert isinstance(trainer.dreaming.model, GaussianMLPEnsemble)
    assert vg is not None
    assert len(vg.pool) > 0
    actor_steps = trainer.agent.num_actor_updates
    trainer.advance()
    assert trainer.agent.num_actor_updates == actor_steps + 1 - (vg.skipped_updates > 0)
    assert "vg_objective" in trainer._losses
    trainer.close()


@pytest.mark.mujoco
@pytest.mark.parametrize("use", ["dreams", "value_gradient"])
def test_the_mlp_kind_resumes_and_forks_exactly(tmp_path: Path, use: str) -> None:
    cfg = _cfg(*(VALUE_GRADIENT if use == "value_gradient" else []))
    Trainer(cfg, tmp_path / "straight").run()
    stopped_and_resumed(cfg, tmp_path / "stopped", 150)  # 50-step episodes: an episode end
    Trainer.fork(tmp_path / "straight", tmp_path / "fork", [], step=200).run()
    a = final_state(tmp_path / "straight")
    for other in ("stopped", "fork"):
        b = final_state(tmp_path / other)
        same = without_best if other == "fork" else (lambda part: part)  # best: afresh
        for key in ("counters", "actor", "critic", "actor_target", "critic_target", "buffer"):
            assert_same(same(a[key]), same(b[key]), f"{other}: {key}")
        assert_same(a["dreaming"], b["dreaming"], f"{other}: dreaming")


@pytest.mark.mujoco
def test_a_fork_cannot_change_the_kind(tmp_path: Path) -> None:
    cfg = load_config(ROOT / "configs/halfcheetah.yaml", [*TINY, "train.total_steps=100"])
    Trainer(cfg, tmp_path / "parent").run()
    with pytest.raises(ConfigError, match=r"world_model\.(kind|hidden_size)"):
        Trainer.fork(tmp_path / "parent", tmp_path / "child", ["world_model.kind=mlp"])


# --------------------------------------------------------------------------- the agent seam


class _Objective:
    """A model objective with a known loss: ``mean(pi(s)^2)`` on fixed start states."""

    def __init__(self, obs: Tensor, critic_on_real_batches: bool) -> None:
        self.obs, self.critic_on_real_batches = obs, critic_on_real_batches
        self.actor_calls = self.critic_calls = 0
        self.actor_steps: list[bool] = []  # whether each rollout gets an actor step
        self.losses: list[Tensor] = []

    def actor_objective(
        self, actor, critic, obs_normalizer, gamma, actor_step=True
    ) -> ActorObjective:
        self.actor_calls += 1
        self.actor_steps.append(actor_step)
        loss = actor(self.obs).square().mean()
        self.losses.append(loss.detach())
        return ActorObjective(loss, self.obs, True, {"probe": loss.detach()}, None)

    def critic_loss(self, objective, critic, *targets: Any) -> tuple[Tensor, Tensor]:
        self.critic_calls += 1
        q = critic(torch.zeros(4, 3), torch.zeros(4, 2))
        return q.square().mean(), q


def _batch(seed: int) -> Batch:
    g = torch.Generator().manual_seed(seed)
    return Batch(
        torch.randn(8, 3, generator=g),
        torch.rand(8, 2, generator=g) * 2 - 1,
        torch.randn(8, generator=g),
        torch.randn(8, 3, generator=g),
        torch.zeros(8),
    )


@pytest.mark.parametrize("real", [True, False])
@pytest.mark.parametrize("delay", [1, 2, 3])
def test_the_policy_delay_applies_to_a_model_objective(real: bool, delay: int) -> None:
    agent = tiny_td3(td3=TD3Config(policy_delay=delay))
    objective = _Objective(torch.randn(5, 3), critic_on_real_batches=real)
    sampled: list[int] = []

    def sample() -> Batch:
        sampled.append(len(sampled))
        return _batch(len(sampled))

    n = 7
    losses = agent.train(n, sample, objective)
    counts = agent.update_counts
    assert counts["critic"] == n
    assert counts["actor"] == counts["target"] == n // delay
    assert len(sampled) == (n if real else 0)  # no batch that nobody reads
    assert objective.critic_calls == (0 if real else n)
    # a rollout is built for each actor step, and for each critic step that reads it
    assert objective.actor_calls == (n // delay if real else n)
    assert sum(objective.actor_steps) == n // delay  # the others are the critic's only
    assert set(losses) >= {"critic_loss", "actor_loss", "q_mean"}


def test_the_firing_rate_penalty_applies_to_a_model_objective() -> None:
    coef = 0.7
    agent = tiny_td3(td3=TD3Config(policy_delay=1, firing_rate_penalty=coef))
    obs = torch.randn(5, 3)
    objective = _Objective(obs, critic_on_real_batches=True)
    with torch.no_grad():
        rate = firing_rate_penalty(agent.actor.spike_trains(obs))
    agent.train(1, lambda: _batch(0), objective)
    assert agent.last_actor_loss.item() == pytest.approx(
        objective.losses[0].item() + coef * rate.item(), rel=1e-6
    )
    plain = tiny_td3(td3=TD3Config(policy_delay=1))
    objective = _Objective(obs, critic_on_real_batches=True)
    plain.train(1, lambda: _batch(0), objective)
    assert plain.last_actor_loss.item() == pytest.approx(objective.losses[0].item(), rel=1e-6)


def test_an_unusable_objective_takes_no_actor_step_but_moves_the_targets() -> None:
    agent = tiny_td3(td3=TD3Config(policy_delay=1))
    objective = _Objective(torch.randn(5, 3), critic_on_real_batches=True)
    real = objective.actor_objective
    objective.actor_objective = lambda *a, **kw: real(*a, **kw)._replace(usable=False)  # type: ignore
    before = {k: v.clone() for k, v in agent.actor.state_dict().items()}
    agent.train(2, lambda: _batch(0), objective)
    assert agent.update_counts["actor"] == 0
    assert agent.update_counts["target"] == 2
    assert all(torch.equal(before[k], v) for k, v in agent.actor.state_dict().items())


# --------------------------------------------------------------------------- one switch


@pytest.mark.parametrize(
    ("old", "use"),
    [
        ({"dreaming": {"enabled": False}}, "none"),
        ({"dreaming": {"enabled": True}}, "dreams"),
        ({"value_gradient": {"enabled": False}}, "dreams"),
        ({"dreaming": {"enabled": True}, "value_gradient": {"enabled": True}}, "value_gradient"),
        ({"value_gradient": {"enabled": True}}, "value_gradient"),
    ],
)
def test_old_switches_load_as_world_model_use(old: dict, use: str) -> None:
    assert config_from_dict(old).world_model.use == use


def test_an_old_value_gradient_config_moves_its_start_step() -> None:
    old = {"dreaming": {"enabled": True, "start_step": 5000}, "value_gradient": {"enabled": True}}
    new, notes = upgrade_old_keys(old)
    assert new["world_model"] == {"use": "value_gradient"}
    assert new["value_gradient"] == {"start_step": 5000}
    assert "start_step" not in new["dreaming"]
    assert any("world_model.use: value_gradient" in n for n in notes)
    cfg = config_from_dict(old)
    assert cfg.value_gradient.start_step == 5000
    assert cfg.to_dict()["world_model"]["use"] == "value_gradient"  # stored in the new form
    assert "enabled" not in cfg.to_dict()["dreaming"]


@pytest.mark.parametrize(("old", "new"), [("sample", "random_elite"), ("elite_mean", "elite_mean")])
def test_the_old_transition_key_is_the_member_choice(old: str, new: str) -> None:
    assert config_from_dict({"dreaming": {"transition": old}}).dreaming.member == new


def test_contradicting_old_switches_are_refused() -> None:
    bad = {"dreaming": {"enabled": False}, "value_gradient": {"enabled": True}}
    with pytest.raises(ConfigError, match="needs the world model"):
        config_from_dict(bad)


def test_an_old_config_file_loads_with_a_note_naming_the_new_form(tmp_path: Path) -> None:
    path = tmp_path / "old.yaml"
    path.write_text(
        yaml.safe_dump(
            {"base": str(ROOT / "configs/halfcheetah.yaml"), "dreaming": {"enabled": False}}
        )
    )
    with pytest.warns(FutureWarning, match=r"old\.yaml: dreaming\.enabled: false is now "):
        cfg = load_config(path)
    assert cfg.world_model.use == "none"
    with pytest.warns(FutureWarning, match=r"--set .*dreaming.member: random_elite"):
        cfg = load_config(None, ["dreaming.transition=sample"])
    assert cfg.dreaming.member == "random_elite"


def test_value_gradient_keys_under_dreams_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"value_gradient\.horizon would change nothing"):
        load_config(None, ["value_gradient.horizon=3"])
    cfg = load_config(None, ["world_model.use=value_gradient", "value_gradient.horizon=3"])
    assert cfg.value_gradient.horizon == 3
    cfg = load_config(None, ["world_model.use=none", "value_gradient.horizon=3"])
    assert not cfg.uses_model


def test_the_report_reads_the_arm_of_an_old_run_config(tmp_path: Path) -> None:
    for name, enabled, arm in (("old_dream", True, "dreaming"), ("old_base", False, "baseline")):
        run = tmp_path / name
        run.mkdir()
        cfg = {"env": {"id": "HalfCheetah-v5"}, "train": {"seed": 0, "total_steps": 10}}
        (run / "config.yaml").write_text(yaml.safe_dump({**cfg, "dreaming": {"enabled": enabled}}))
        (run / "eval.jsonl").write_text('{"step": 0, "eval/return_mean": 1.0}\n')
        assert read_train_run(run).arm == arm


@pytest.mark.mujoco
def test_bench_times_the_mlp_kind_in_both_uses() -> None:
    from spiking_dreamer.bench import run_bench

    tiny = [*MLP_TINY, "world_model.train_every=20", "dreaming.every=20", "train.eval_episodes=1"]
    dreams = load_config(ROOT / "configs/halfcheetah.yaml", tiny)
    through = load_config(ROOT / "configs/halfcheetah.yaml", [*tiny, *VALUE_GRADIENT])
    result = run_bench(dreams, warmup=120, steps=30, repeats=3, also={"vg": through})
    parts = result["parts_ms"]
    assert {"model_train_step_ms", "dream_phase_ms"} <= set(parts["dreaming"])
    assert {"vg_update_ms", "distribution_phase_ms"} <= set(parts["vg"])
    assert all(v > 0 for v in result["env_steps_per_s"].values())
