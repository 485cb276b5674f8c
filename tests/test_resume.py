"""Exact resume: a run killed at an arbitrary point and resumed equals an uninterrupted run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from spiking_dreamer.config import ConfigError
from spiking_dreamer.config_loading import load_config
from spiking_dreamer.errors import RunDirError
from spiking_dreamer.training.checkpoint import CheckpointError, load_state_file, read_state
from spiking_dreamer.training.trainer import Trainer

from .helpers import RESUME_ARGS, RESUME_STEPS, ROOT, TINY, assert_same, final_state, records

pytestmark = pytest.mark.mujoco


def _cli(run: Path, *extra: str) -> list[str]:
    cmd = [sys.executable, "-m", "spiking_dreamer.cli", "train"]
    cmd += ["--config", str(ROOT / "configs/halfcheetah.yaml"), "--run-dir", str(run)]
    for o in RESUME_ARGS:
        cmd += ["--set", o]
    return [*cmd, "--no-progress", *extra]


def test_sigkill_and_resume_equals_an_uninterrupted_run(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    straight = tmp_path / "straight"
    subprocess.run(_cli(straight), check=True, env=env, capture_output=True)

    killed = tmp_path / "killed"
    proc = subprocess.Popen(
        _cli(killed), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    metrics = killed / "metrics.jsonl"
    deadline = time.time() + 240
    while time.time() < deadline:  # kill somewhere between the 2nd checkpoint and the end
        if metrics.exists() and any(r["step"] >= 330 for r in records(metrics)):
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert records(metrics)[-1]["step"] < RESUME_STEPS, "the run finished before it could be killed"
    assert (killed / "checkpoints" / "state.pt").exists()

    subprocess.run(
        [sys.executable, "-m", "spiking_dreamer.cli", "train", "--resume", str(killed)],
        check=True,
        env=env,
        capture_output=True,
    )
    a, b = final_state(straight), final_state(killed)
    assert a["counters"]["step"] == RESUME_STEPS
    for key in ("counters", "actor", "critic", "actor_target", "critic_target", "buffer"):
        assert_same(a[key], b[key], key)
    assert_same(a["actor_optimizer"]["state"], b["actor_optimizer"]["state"], "actor_optimizer")
    assert_same(a["dreaming"]["model"], b["dreaming"]["model"], "world model")
    assert_same(a["dreaming"]["buffer"], b["dreaming"]["buffer"], "dream buffer")
    assert a["dreaming"]["threshold"] == b["dreaming"]["threshold"]
    # logs: same evaluations, no duplicated or truncated lines
    ev_a, ev_b = records(straight / "eval.jsonl"), records(killed / "eval.jsonl")
    assert [e["step"] for e in ev_b] == [e["step"] for e in ev_a]
    assert [e["returns"] for e in ev_b] == [e["returns"] for e in ev_a]
    steps_a = [r["step"] for r in records(straight / "metrics.jsonl")]
    steps_b = [r["step"] for r in records(killed / "metrics.jsonl")]
    assert steps_a == steps_b


def test_sigterm_saves_at_the_episode_end_and_resumes(tmp_path: Path) -> None:
    run = tmp_path / "run"
    proc = subprocess.Popen(_cli(run), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    metrics = run / "metrics.jsonl"
    while not (metrics.exists() and any(r["step"] >= 60 for r in records(metrics))):
        time.sleep(0.05)
        assert proc.poll() is None
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 75  # stopped with its state saved (README, "Exit codes")
    assert "continue with --resume" in out
    state = final_state(run)
    assert state["counters"]["step"] % 50 == 0  # an episode boundary (50-step episodes)
    assert state["counters"]["step"] < RESUME_STEPS
    trainer = Trainer.resume(run)
    assert trainer.step == state["counters"]["step"]
    assert not trainer.cfg.log.progress  # stored by --no-progress
    trainer.close()
    trainer = Trainer.resume(run, {"log.progress": True, "train.threads": 2})  # run settings
    assert trainer.cfg.log.progress
    assert trainer.cfg.train.threads == 2
    assert trainer.cfg.td3 == load_config(ROOT / "configs/halfcheetah.yaml", RESUME_ARGS).td3
    trainer.close()
    for setting in ({"td3.batch_size": 8}, {"train.device": "cpu"}, {"log": {}}):
        with pytest.raises(ConfigError, match="cannot change when a run continues"):
            Trainer.resume(run, setting)
    state["rng"]["cuda"] = [torch.zeros(16, dtype=torch.uint8)]  # as if saved on a GPU
    with pytest.raises(CheckpointError, match="saved on cuda and this run is on cpu"):
        Trainer(trainer.cfg, run, resume=state)


def test_corrupt_newest_state_falls_back_to_the_previous(tmp_path: Path) -> None:
    cfg = load_config(ROOT / "configs/halfcheetah.yaml", [*RESUME_ARGS, "train.total_steps=250"])
    Trainer(cfg, tmp_path / "run").run()
    path = tmp_path / "run" / "checkpoints" / "state.pt"
    assert path.with_name("state.pt.prev").exists()
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF  # flip a byte inside the payload
    path.write_bytes(bytes(raw))
    state, used, problems = load_state_file(path)
    assert used.name == "state.pt.prev"
    assert problems
    step = state["counters"]["step"]
    assert step < 250
    # the resume sets the corrupt file aside, so its next save keeps the good one as .prev
    Trainer.resume(tmp_path / "run").run()
    assert path.with_name("state.pt.corrupt").read_bytes() == bytes(raw)
    assert read_state(path)["counters"]["step"] == 250
    assert read_state(path.with_name("state.pt.prev"))["counters"]["step"] == step
    path.with_name("state.pt.prev").write_bytes(b"truncated")
    path.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="no usable training state"):
        load_state_file(path)


def test_resume_refuses_other_flags_and_missing_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from spiking_dreamer.cli import main

    assert main(["train", "--resume", str(tmp_path / "nope")]) == 2
    assert "no run directory" in capsys.readouterr().err
    for flag in (
        ["--seed", "3"],
        ["--no-dreaming"],
        ["--set", "td3.batch_size=64"],
        ["--device", "cpu"],
    ):
        assert main(["train", "--resume", str(tmp_path), *flag]) == 2
        assert f"drop {flag[0]} (through make: make resume RUN=" in capsys.readouterr().err
    assert main(["train", "--run-dir", str(tmp_path / "x"), "--fork-step", "5"]) == 2
    assert "--fork-step needs --fork" in capsys.readouterr().err


def test_non_finite_td3_loss_stops_with_a_clear_message(tmp_path: Path) -> None:
    from spiking_dreamer.training.trainer import TrainingDivergedError

    # random actions throughout, so the NaN actor the NaN critic makes never acts
    overrides = [*RESUME_ARGS, "world_model.use=none", "train.start_steps=1000"]
    cfg = load_config(ROOT / "configs/halfcheetah.yaml", overrides)
    trainer = Trainer(cfg, tmp_path / "run")
    trainer.begin()
    while trainer.step < 160:
        trainer.advance()
    with torch.no_grad():
        next(trainer.critic.parameters()).fill_(float("nan"))

    def advance_to_next_log() -> None:
        for _ in range(cfg.log.log_every):
            trainer.advance()

    with pytest.raises(TrainingDivergedError, match="non-finite TD3 loss"):
        advance_to_next_log()
    state, _, _ = load_state_file(tmp_path / "run" / "checkpoints" / "state.pt")
    assert all(torch.isfinite(v).all() for v in state["critic"].values())
    trainer.close()


def test_a_non_finite_action_stops_the_run_before_the_env_steps(tmp_path: Path) -> None:
    from spiking_dreamer.training.trainer import TrainingDivergedError

    cfg = load_config(ROOT / "configs/halfcheetah.yaml", [*RESUME_ARGS, "world_model.use=none"])
    trainer = Trainer(cfg, tmp_path / "run")
    trainer.begin()
    while trainer.step < 160:
        trainer.advance()
    with torch.no_grad():  # the decoder (NaN inputs of a spiking layer just do not spike)
        list(trainer.actor.parameters())[-1].fill_(float("nan"))
    n = len(trainer.buffer)
    with pytest.raises(TrainingDivergedError, match="action is non-finite at env step 161"):
        trainer.advance()
    assert len(trainer.buffer) == n
    state, _, _ = load_state_file(tmp_path / "run" / "checkpoints" / "state.pt")
    assert all(torch.isfinite(v).all() for v in state["critic"].values())
    trainer.close()


def test_non_finite_parameters_are_never_saved_over_a_good_state(tmp_path: Path) -> None:
    from spiking_dreamer.training.trainer import TrainingDivergedError

    cfg = load_config(
        ROOT / "configs/halfcheetah.yaml", [*RESUME_ARGS, "dreaming.start_step=10000"]
    )
    trainer = Trainer(cfg, tmp_path / "run")
    trainer.begin()
    while trainer.step < 160:  # state saved at 100
        trainer.advance()
    assert trainer.dreaming is not None
    with torch.no_grad():  # a world model gone bad does not show in TD3's losses
        next(trainer.dreaming.model.parameters()).fill_(float("nan"))

    def advance_to_the_end() -> None:
        while trainer.step < RESUME_STEPS:
            trainer.advance()

    with pytest.raises(TrainingDivergedError, match=r"world model at step 2\d\d; not saved"):
        advance_to_the_end()
    state, used, _ = load_state_file(tmp_path / "run" / "checkpoints" / "state.pt")
    assert used.name == "state.pt"
    assert state["counters"]["step"] == 100
    assert all(torch.isfinite(v).all() for v in state["dreaming"]["model"].values())
    trainer.close()


def test_unwritable_run_dir_is_reported_before_training(tmp_path: Path) -> None:
    from spiking_dreamer.training.trainer import RunDirError

    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    cfg = load_config(ROOT / "configs/halfcheetah.yaml", [*RESUME_ARGS, "world_model.use=none"])
    with pytest.raises(RunDirError, match="cannot write to run directory"):
        Trainer(cfg, blocker / "run")


def test_too_little_disk_for_the_buffer_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil
    from collections import namedtuple

    from spiking_dreamer.training.trainer import RunDirError

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda _: usage(10**6, 10**6 - 1000, 1000))
    cfg = load_config(ROOT / "configs/halfcheetah.yaml", [*RESUME_ARGS, "world_model.use=none"])
    with pytest.raises(RunDirError, match="GiB free, but the replay buffer"):
        Trainer(cfg, tmp_path / "run")


def test_state_from_another_format_version_names_both_sides(tmp_path: Path) -> None:
    from spiking_dreamer.training.checkpoint import save_state_file

    path = tmp_path / "state.pt"
    save_state_file({"format_version": 99, "versions": {"spiking_dreamer": "9.9"}}, path)
    with pytest.raises(CheckpointError, match=r"format 99 \(spiking-dreamer 9\.9\).*format 1"):
        load_state_file(path)


def test_state_for_another_env_is_refused(tmp_path: Path) -> None:
    cfg = load_config(ROOT / "configs/halfcheetah.yaml", [*RESUME_ARGS, "train.total_steps=60"])
    Trainer(cfg, tmp_path / "run").run()
    state, _, _ = load_state_file(tmp_path / "run" / "checkpoints" / "state.pt")
    hopper = load_config(ROOT / "configs/hopper.yaml", [*RESUME_ARGS, "env.kwargs={}"])
    with pytest.raises(CheckpointError, match=r"HalfCheetah-v5 \(obs 17, act 6\).*Hopper-v5"):
        Trainer(hopper, tmp_path / "run", resume=state)


def _must_not_read(*args: object) -> None:
    raise AssertionError("the state was read before the run directory was locked")


def test_a_run_directory_is_trained_by_one_process_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second trainer of the same run directory (e.g. a run resumed twice) is refused while
    the first holds it, before it reads the state (which the first may be saving), and nothing
    is changed; once the first has closed, it may start."""
    cfg = load_config(ROOT / "configs/halfcheetah.yaml", [*TINY, "train.total_steps=50"])
    run = tmp_path / "run"
    Trainer(cfg, run).run()
    longer = {"train.total_steps": 100}
    first = Trainer.resume(run, longer)
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    with monkeypatch.context() as m:
        m.setattr("spiking_dreamer.training.run_dir.load_state_file", _must_not_read)
        with pytest.raises(RunDirError, match="another process is training in"):
            Trainer.resume(run, longer)
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before
    first.close()
    Trainer.resume(run, longer).close()
