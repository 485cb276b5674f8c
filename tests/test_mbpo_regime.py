"""MBPO's regime (many critic updates per env step on mostly imagined batches): its configs,
the real/dream share of batches, the dream buffer's ageing, the update schedule counted in a
running trainer, rollouts per env step, and exact resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from spiking_dreamer.agent import PopSpikingActor
from spiking_dreamer.buffers import Batch, ReplayBuffer
from spiking_dreamer.config import ConfigError
from spiking_dreamer.config_loading import load_config
from spiking_dreamer.dreaming import DreamBuffer, DreamEngine
from spiking_dreamer.training.trainer import Trainer

from .helpers import ROOT, TINY, TINY_ACTOR, assert_same, final_state, stopped_and_resumed

REGIMES = ["halfcheetah_mbpo.yaml", "ant_mbpo.yaml"]


@pytest.mark.parametrize("name", REGIMES)
def test_the_regime_configs_load_with_mbpo_settings(name: str) -> None:
    cfg = load_config(ROOT / "configs" / name)
    assert cfg.train.updates_per_step == 20
    assert cfg.updates_per_step(dreams_in_batch=True) == 20  # G holds once dreams exist
    assert cfg.td3.schedule == "per_env_step"
    assert cfg.td3.actor_updates_per_step == 1
    assert cfg.dreaming.real_ratio == 0.05
    assert cfg.dreaming.start_step == cfg.train.start_steps == 5000
    per_step = cfg.dreaming.rollout_batch / cfg.dreaming.every
    assert per_step == 400  # MBPO's rollouts per env step
    # the real-only control at the same G: the same file with --no-dreaming
    control = load_config(ROOT / "configs" / name, ["world_model.use=none"])
    assert control.td3 == cfg.td3
    assert control.updates_per_step(dreams_in_batch=False) == 20


def test_the_halfcheetah_dream_buffer_holds_one_retraining_period() -> None:
    cfg = load_config(ROOT / "configs/halfcheetah_mbpo.yaml")
    period = cfg.world_model.train_every // cfg.dreaming.every  # dream phases per retraining
    assert cfg.dreaming.buffer_size == period * cfg.dreaming.rollout_batch * cfg.dreaming.horizon


def test_dreams_age_out_after_one_buffer_of_newer_dreams() -> None:
    """FIFO: once a retraining period's worth of newer dreams has arrived, none is older."""
    every, per_phase, phases = 25, 40, 10  # a buffer of one period: 10 phases of 40
    buf = DreamBuffer(per_phase * phases, 2, 1)
    for step in range(every, every * 3 * phases + 1, every):
        n = per_phase
        batch = Batch(
            torch.zeros(n, 2), torch.zeros(n, 1), torch.ones(n), torch.zeros(n, 2), torch.zeros(n)
        )
        buf.add_dreams(batch, torch.zeros(n), env_step=step, model_version=step // 250)
        created = buf.created_step[: len(buf)]
        assert created.min() > step - every * phases  # nothing older than one period
        assert len(buf) == min(step // every * per_phase, per_phase * phases)


def _engine(real_ratio: float) -> tuple[DreamEngine, ReplayBuffer]:
    cfg = load_config(None, [*TINY, f"dreaming.real_ratio={real_ratio}", "td3.batch_size=100"])
    high = torch.ones(1)
    actor = PopSpikingActor(2, -high, high, TINY_ACTOR)
    engine = DreamEngine(
        cfg, "HalfCheetah-v5", 2, 1, actor, torch.device("cpu"), torch.Generator().manual_seed(0)
    )
    real = ReplayBuffer(500, 2, 1)
    n = 500
    real.add_batch(
        Batch(
            torch.zeros(n, 2), torch.zeros(n, 1), torch.ones(n), torch.zeros(n, 2), torch.zeros(n)
        )
    )
    return engine, real


@pytest.mark.parametrize(("real_ratio", "n_real"), [(0.05, 5), (0.5, 50), (0.6667, 67)])
def test_batches_hold_the_real_share_once_dreams_exist(real_ratio: float, n_real: int) -> None:
    engine, real = _engine(real_ratio)
    g = torch.Generator().manual_seed(1)
    assert not engine.active
    assert torch.equal(engine.sample(real, 100, g).reward, torch.ones(100))  # all real before
    n = 200
    dreams = Batch(
        torch.zeros(n, 2),
        torch.zeros(n, 1),
        torch.full((n,), 2.0),
        torch.zeros(n, 2),
        torch.zeros(n),
    )
    engine.buffer.add_dreams(dreams, torch.zeros(n), env_step=1, model_version=1)
    assert engine.active
    batch = engine.sample(real, 100, g)
    assert int((batch.reward == 1).sum()) == n_real
    assert int((batch.reward == 2).sum()) == 100 - n_real


REGIME = [
    *TINY,
    "train.updates_per_step=3",
    "td3.schedule=per_env_step",
    "td3.actor_updates_per_step=1",
    "td3.batched_targets=false",
    "dreaming.real_ratio=0.05",
    "dreaming.horizon=1",
    "dreaming.every=10",
    "dreaming.rollout_batch=40",
    "dreaming.buffer_size=200",
    "train.total_steps=300",
    "train.checkpoint_every=100",
]


@pytest.mark.mujoco
def test_the_schedule_counts_critic_actor_and_target_updates_per_env_step(tmp_path: Path) -> None:
    cfg = load_config(ROOT / "configs/halfcheetah.yaml", REGIME)
    trainer = Trainer(cfg, tmp_path / "run")
    trainer.begin()
    while trainer.step < 200:
        trainer.advance()
    updating = 200 - cfg.train.update_after + 1  # env steps from update_after on, inclusive
    assert trainer.agent.update_counts == {
        "critic": 3 * updating,
        "actor": updating,
        "target": updating,
        "env_steps": updating,
    }
    trainer.close()
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    phases = [r["step"] for r in rows if "dream/accepted" in r]
    # a dream phase every 10 env steps from dreaming.start_step (100) on: 40 starts each, i.e.
    # 4 rollouts per env step
    assert phases == list(range(100, 201, 10))


@pytest.mark.mujoco
def test_the_regime_resumes_exactly(tmp_path: Path) -> None:
    cfg = load_config(ROOT / "configs/halfcheetah.yaml", REGIME)
    straight = Trainer(cfg, tmp_path / "straight")
    straight.run()
    stopped_and_resumed(cfg, tmp_path / "stopped", 150)  # 50-step episodes: an episode end
    a, b = final_state(tmp_path / "straight"), final_state(tmp_path / "stopped")
    for key in ("counters", "actor", "critic", "actor_target", "critic_target", "buffer"):
        assert_same(a[key], b[key], key)
    assert_same(a["dreaming"]["model"], b["dreaming"]["model"], "world model")
    assert_same(a["dreaming"]["buffer"], b["dreaming"]["buffer"], "dream buffer")
    assert a["num_actor_updates"] == b["num_actor_updates"]


def test_a_dream_update_ratio_that_would_never_apply_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"dreaming\.updates_per_step: 3 would never apply"):
        load_config(None, ["dreaming.real_ratio=1.0", "dreaming.updates_per_step=3"])
    # 0 (inherit) or the same G is fine; with dreaming off nothing is checked
    load_config(None, ["dreaming.real_ratio=1.0", "train.updates_per_step=3"])
    load_config(
        None, ["dreaming.real_ratio=1.0", "world_model.use=none", "dreaming.updates_per_step=3"]
    )


@pytest.mark.parametrize(
    ("train_g", "dream_g", "before", "after"), [(1, 0, 1, 1), (20, 0, 20, 20), (1, 3, 1, 3)]
)
def test_one_rule_for_the_number_of_updates(
    train_g: int, dream_g: int, before: int, after: int
) -> None:
    cfg = load_config(
        None, [f"train.updates_per_step={train_g}", f"dreaming.updates_per_step={dream_g}"]
    )
    assert (cfg.updates_per_step(False), cfg.updates_per_step(True)) == (before, after)
    assert cfg.replace(world_model={"use": "none"}).dreaming.updates_per_step == dream_g
