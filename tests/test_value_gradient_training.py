"""Learning through the dream inside a training run: the schedule (distribution rollouts into
the pool, value-gradient updates, no dream phases), the world model untouched by the actor's
loss, exact resume and fork, and refused settings."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from spiking_dreamer.config import ConfigError
from spiking_dreamer.config_loading import load_config
from spiking_dreamer.training.trainer import Trainer

from .helpers import (
    ROOT,
    TINY,
    assert_same,
    final_state,
    records,
    stopped_and_resumed,
    without_best,
)

VG = [
    *TINY,
    "world_model.use=value_gradient",
    "value_gradient.start_step=100",
    "td3.policy_delay=1",
    "value_gradient.horizon=2",
    "value_gradient.distribution_horizon=3",
    "value_gradient.distribution_every=10",
    "value_gradient.pool_rounds=3",
    "value_gradient.distribution_starts=16",
    "value_gradient.batch_size=8",
    "train.total_steps=300",
    "train.checkpoint_every=100",
]

pytestmark = pytest.mark.mujoco


def _cfg(*extra: str):
    return load_config(ROOT / "configs/halfcheetah.yaml", [*VG, *extra])


@pytest.mark.parametrize("critic_target", ["mve", "td3"])
def test_the_schedule_learns_through_the_model_and_dreams_nothing(
    tmp_path: Path, critic_target: str
) -> None:
    cfg = _cfg(f"value_gradient.critic_target={critic_target}")
    trainer = Trainer(cfg, tmp_path / "run")
    trainer.begin()
    while trainer.step < 200:
        trainer.advance()
    engine = trainer.dreaming
    assert engine is not None
    vg = engine.value_gradient
    assert vg is not None
    # a distribution rollout every 10 env steps from dreaming.start_step (100) on
    assert vg.round == len(range(100, 201, 10))
    assert 0 < len(vg.pool) <= 3 * 16 * 3  # at most pool_rounds rounds of starts x horizon
    assert len(engine.buffer) == 0  # no dream phase ran
    counts = trainer.agent.update_counts
    td3 = 100 - cfg.train.update_after  # TD3 updates until the pool has states (step 100)
    through_model = 200 - 100 + 1  # one value-gradient update per env step, each with a Polyak
    assert counts["target"] == td3 // cfg.td3.policy_delay + through_model
    assert counts["actor"] == td3 // cfg.td3.policy_delay + through_model - vg.skipped_updates
    trainer.close()
    rows = records(tmp_path / "run" / "metrics.jsonl")
    assert any("vg/pool_size" in r for r in rows)
    assert any("train/vg_objective" in r for r in rows)
    assert not any("dream/accepted" in r for r in rows)


def test_the_actor_loss_never_moves_the_world_model(tmp_path: Path) -> None:
    trainer = Trainer(_cfg(), tmp_path / "run")
    trainer.begin()
    while trainer.step < 151:  # past a model training phase (every 50) and the first rounds
        trainer.advance()
    model = {k: v.clone() for k, v in trainer.dreaming.model.state_dict().items()}
    actor = {k: v.clone() for k, v in trainer.actor.state_dict().items()}
    for p in trainer.dreaming.model.parameters():
        p.grad = None  # what the model's own training phase left
    while trainer.step < 199:  # value-gradient updates, no model training phase (at 200)
        trainer.advance()
    assert all(torch.equal(model[k], v) for k, v in trainer.dreaming.model.state_dict().items())
    assert not all(torch.equal(actor[k], v) for k, v in trainer.actor.state_dict().items())
    assert all(p.grad is None for p in trainer.dreaming.model.parameters())
    trainer.close()


def test_the_regime_resumes_and_forks_exactly(tmp_path: Path) -> None:
    cfg = _cfg()
    Trainer(cfg, tmp_path / "straight").run()
    stopped_and_resumed(cfg, tmp_path / "stopped", 150)  # 50-step episodes: an episode end
    Trainer.fork(tmp_path / "straight", tmp_path / "fork", [], step=200).run()  # its .prev
    a = final_state(tmp_path / "straight")
    for other in ("stopped", "fork"):
        b = final_state(tmp_path / other)
        same = without_best if other == "fork" else (lambda part: part)  # best: afresh
        for key in ("counters", "actor", "critic", "actor_target", "critic_target", "buffer"):
            assert_same(same(a[key]), same(b[key]), f"{other}: {key}")
        assert_same(a["dreaming"], b["dreaming"], f"{other}: dreaming")


def test_settings_that_cannot_apply_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"ignore td3\.schedule"):
        _cfg("td3.schedule=per_env_step", "td3.policy_delay=2")


@pytest.mark.parametrize("name", ["halfcheetah_value_gradient.yaml", "ant_value_gradient.yaml"])
def test_the_regime_configs_load(name: str) -> None:
    cfg = load_config(ROOT / "configs" / name)
    assert cfg.world_model.use == "value_gradient"
    assert cfg.updates_per_step(dreams_in_batch=False) == 1  # DHMBPO's low update ratio
    assert (cfg.value_gradient.horizon, cfg.value_gradient.distribution_horizon) == (5, 20)


def test_a_fork_of_a_run_without_value_gradients_refuses_their_settings(tmp_path: Path) -> None:
    cfg = load_config(ROOT / "configs/halfcheetah.yaml", [*TINY, "train.total_steps=100"])
    Trainer(cfg, tmp_path / "parent").run()
    with pytest.raises(ConfigError, match=r"value_gradient\.horizon would change nothing"):
        Trainer.fork(tmp_path / "parent", tmp_path / "child", ["value_gradient.horizon=3"])
    with pytest.raises(ConfigError, match=r"cannot change world_model\.use"):
        Trainer.fork(tmp_path / "parent", tmp_path / "child", ["world_model.use=value_gradient"])
