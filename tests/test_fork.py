"""Forking a run: continue a saved training state with some settings changed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from spiking_dreamer.cli import main
from spiking_dreamer.config import ConfigError
from spiking_dreamer.config_loading import load_config
from spiking_dreamer.training.checkpoint import CheckpointError, read_state
from spiking_dreamer.training.trainer import Trainer

from .helpers import (
    RESUME_ARGS,
    RESUME_STEPS,
    ROOT,
    assert_same,
    final_state,
    records,
    without_best,
)

pytestmark = pytest.mark.mujoco


@pytest.fixture(scope="module")
def parent(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("fork") / "parent"
    Trainer(load_config(ROOT / "configs/halfcheetah.yaml", RESUME_ARGS), run).run()
    return run


def test_fork_without_changes_continues_exactly(parent: Path, tmp_path: Path) -> None:
    step = RESUME_STEPS - 100  # the parent's state.pt.prev
    child = Trainer.fork(parent, tmp_path / "child", [], step=step)
    assert child.step == step
    child.run()
    a, b = final_state(parent), final_state(tmp_path / "child")
    for key in ("counters", "actor", "critic", "actor_target", "critic_target", "buffer"):
        assert_same(without_best(a[key]), without_best(b[key]), key)
    assert_same(a["dreaming"]["model"], b["dreaming"]["model"], "world model")
    assert_same(a["dreaming"]["buffer"], b["dreaming"]["buffer"], "dream buffer")
    ev_a, ev_b = records(parent / "eval.jsonl"), records(tmp_path / "child" / "eval.jsonl")
    assert [(e["step"], e["returns"]) for e in ev_a] == [(e["step"], e["returns"]) for e in ev_b]
    assert json.loads((tmp_path / "child" / "fork.json").read_text())["step"] == step
    # best.pt and its return start afresh: the best of the fork's own evaluations
    own = [e["return_mean"] for e in ev_b if e["step"] > step]
    assert b["counters"]["best_return"] == max(own)
    assert (tmp_path / "child" / "checkpoints" / "best.pt").is_file()


def test_fork_changes_dreaming_settings_and_keeps_the_parent(parent: Path, tmp_path: Path) -> None:
    before = (parent / "eval.jsonl").read_text()
    overrides = ["dreaming.horizon=1", "dreaming.updates_per_step=2", "dreaming.threshold=0.3"]
    overrides.append("log.log_every=7")
    child = Trainer.fork(parent, tmp_path / "child", overrides, step=RESUME_STEPS - 100)
    assert child.cfg.dreaming.horizon == 1
    assert child.cfg.dreaming.updates_per_step == 2
    assert child.dreaming is not None
    assert child.dreaming.dreamer.threshold == 0.3
    saved = read_state(tmp_path / "child" / "checkpoints" / "state.pt")
    assert saved["config"]["dreaming"]["horizon"] == 1  # resumable before its first save
    fork = json.loads((tmp_path / "child" / "fork.json").read_text())
    changed = ["dreaming.horizon", "dreaming.threshold", "dreaming.updates_per_step"]
    changed.append("log.log_every")
    assert fork["changed"] == changed
    evals = records(tmp_path / "child" / "eval.jsonl")
    assert evals[-1]["step"] == RESUME_STEPS - 100  # parent's curve up to the fork step
    child.run()
    assert final_state(tmp_path / "child")["counters"]["step"] == RESUME_STEPS
    assert (parent / "eval.jsonl").read_text() == before


def test_fork_before_the_first_dream_phase_equals_a_run_with_those_settings(
    tmp_path: Path,
) -> None:
    """A fork taken strictly before the first dream phase is the same run as one started with
    the forked dreaming settings (a fork after it keeps the parent's dreams in its buffer)."""
    base = [*RESUME_ARGS, "dreaming.start_step=550"]  # first dream phase after the fork step
    changes = ["dreaming.horizon=1", "dreaming.updates_per_step=3", "dreaming.real_ratio=0.6667"]
    changes.append("dreaming.member=elite_mean")
    cfg = load_config(ROOT / "configs/halfcheetah.yaml", base)
    Trainer(cfg, tmp_path / "parent").run()
    Trainer.fork(tmp_path / "parent", tmp_path / "child", changes, step=RESUME_STEPS - 100).run()
    scratch = load_config(ROOT / "configs/halfcheetah.yaml", [*base, *changes])
    Trainer(scratch, tmp_path / "scratch").run()
    a, b = final_state(tmp_path / "scratch"), final_state(tmp_path / "child")
    assert b["dreaming"]["buffer"]["size"] > 0
    parent = final_state(tmp_path / "parent")  # its dream phase ran 1 update per step
    assert a["counters"]["num_updates"] > parent["counters"]["num_updates"]
    for key in ("counters", "actor", "critic", "actor_target", "critic_target", "buffer"):
        assert_same(without_best(a[key]), without_best(b[key]), key)
    assert_same(a["dreaming"]["model"], b["dreaming"]["model"], "world model")
    assert_same(a["dreaming"]["buffer"], b["dreaming"]["buffer"], "dream buffer")
    ev_a = records(tmp_path / "scratch" / "eval.jsonl")
    ev_b = records(tmp_path / "child" / "eval.jsonl")
    assert [(e["step"], e["returns"]) for e in ev_a] == [(e["step"], e["returns"]) for e in ev_b]


def test_fork_of_a_baseline_refuses_dreaming_settings(tmp_path: Path) -> None:
    args = [*RESUME_ARGS, "world_model.use=none", "train.total_steps=200"]
    Trainer(load_config(ROOT / "configs/halfcheetah.yaml", args), tmp_path / "parent").run()
    with pytest.raises(ConfigError, match=r"--no-dreaming run: dreaming\.horizon would change"):
        Trainer.fork(tmp_path / "parent", tmp_path / "child", ["dreaming.horizon=1"])
    assert not (tmp_path / "child").exists()
    child = Trainer.fork(tmp_path / "parent", tmp_path / "child", ["td3.batch_size=8"])
    assert child.cfg.td3.batch_size == 8
    child.close()


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("actor.hidden_sizes=[32]", "cannot change actor.hidden_sizes"),
        ("world_model.use=none", "cannot change world_model.use"),
        ("td3.actor_lr=0.01", "cannot change td3.actor_lr"),
        ("train.total_steps=300", "below the saved state's step"),
        ("train.device=cuda", "keeps its parent's train.device"),
    ],
)
def test_fork_refuses_changes_to_saved_structure(
    parent: Path, tmp_path: Path, override: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        Trainer.fork(parent, tmp_path / "child", [override])
    assert not (tmp_path / "child").exists()


def test_fork_at_a_step_without_a_state_names_what_exists(parent: Path, tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=f"step {RESUME_STEPS}"):
        Trainer.fork(parent, tmp_path / "child", [], step=123)


def test_cli_fork_flags(parent: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["train", "--fork", str(parent)]) == 2  # no --run-dir
    child = str(tmp_path / "c")
    assert main(["train", "--fork", str(parent), "--run-dir", child, "--seed", "1"]) == 2
    assert "keeps the parent's env, seed" in capsys.readouterr().err


@pytest.mark.parametrize("how", ["resume", "fork"])
def test_growing_a_run_equals_a_longer_run_from_the_start(
    parent: Path, tmp_path: Path, how: str
) -> None:
    """A run of 300 steps resumed (or forked) to 600 grows its replay buffer exactly: it ends
    like the 600-step run, whose buffer had the larger capacity from the start."""
    short = tmp_path / "short"
    cfg = load_config(ROOT / "configs/halfcheetah.yaml", [*RESUME_ARGS, "train.total_steps=300"])
    Trainer(cfg, short).run()
    if how == "resume":
        grown, run = Trainer.resume(short, {"train.total_steps": RESUME_STEPS}), short
    else:
        run = tmp_path / "child"
        grown = Trainer.fork(short, run, [f"train.total_steps={RESUME_STEPS}"])
    assert grown.buffer.capacity == RESUME_STEPS
    grown.run()
    a, b = final_state(parent), final_state(run)
    for key in ("counters", "actor", "critic", "actor_target", "critic_target", "buffer"):
        assert_same(without_best(a[key]), without_best(b[key]), key)
    if how == "resume":  # the same run: its best is the longer run's
        assert a["counters"]["best_return"] == b["counters"]["best_return"]
        stored = load_config(run / "config.yaml")  # rewritten with the longer total
        assert stored.train.total_steps == RESUME_STEPS
    assert_same(a["dreaming"]["model"], b["dreaming"]["model"], "world model")
    assert_same(a["dreaming"]["buffer"], b["dreaming"]["buffer"], "dream buffer")
    ev_a, ev_b = records(parent / "eval.jsonl"), records(run / "eval.jsonl")
    assert [(e["step"], e["returns"]) for e in ev_a] == [(e["step"], e["returns"]) for e in ev_b]


def test_cli_resume_takes_more_total_steps(tmp_path: Path) -> None:
    run = tmp_path / "run"
    args = [*RESUME_ARGS, "train.total_steps=100", "world_model.use=none"]
    Trainer(load_config(ROOT / "configs/halfcheetah.yaml", args), run).run()
    assert main(["train", "--resume", str(run), "--total-steps", "150"]) == 0
    assert final_state(run)["counters"]["step"] == 150
    assert main(["train", "--resume", str(run), "--total-steps", "50"]) == 2  # below its step


@pytest.mark.parametrize("exists", [False, True])
def test_a_fork_that_cannot_continue_leaves_nothing(
    parent: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, exists: bool
) -> None:
    """A refusal met while loading the state (e.g. a GPU state on a CPU) removes what the fork
    wrote; an empty --run-dir given stays, empty."""
    import spiking_dreamer.training.trainer as trainer_module
    from spiking_dreamer.errors import RunDirError

    def refuse(*args: object) -> None:
        raise RunDirError("cannot continue here")

    monkeypatch.setattr(trainer_module, "check_state_fits", refuse)
    child = tmp_path / "child"
    if exists:
        child.mkdir()
    with pytest.raises(RunDirError, match="cannot continue here"):
        Trainer.fork(parent, child, [])
    assert (list(child.iterdir()) == []) if exists else not child.exists()
