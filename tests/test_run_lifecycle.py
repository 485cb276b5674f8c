"""What a user meets around a run: stopping through closed pipes, exit codes, the summary of a
resumed run, status lines without a progress bar, run-directory errors, ``best.pt``."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from spiking_dreamer.cli import EXIT_STOPPED, main
from spiking_dreamer.config_loading import load_config
from spiking_dreamer.provenance import git_commit
from spiking_dreamer.training.checkpoint import load_state_file
from spiking_dreamer.training.trainer import Trainer

from .helpers import TINY_ARGS, TINY_SETTINGS

pytestmark = pytest.mark.mujoco


def _train_cmd(run: Path, steps: int, *extra: str) -> list[str]:
    cmd = [sys.executable, "-m", "spiking_dreamer.cli", "train", "--run-dir", str(run)]
    return [*cmd, "--no-dreaming", "--total-steps", str(steps), *TINY_ARGS, *extra]


def _wait_for_step(run: Path, proc: subprocess.Popen, step: int) -> None:
    metrics, deadline = run / "metrics.jsonl", time.time() + 120
    while time.time() < deadline:
        if metrics.exists():
            rows = [json.loads(x) for x in metrics.read_text().splitlines() if x.endswith("}")]
            if any(r["step"] >= step for r in rows):
                return
        assert proc.poll() is None, "the run ended early"
        time.sleep(0.05)
    raise AssertionError("the run did not get there in time")


@pytest.mark.parametrize("closed", [("stdout", "stderr"), ("stdout",)])
def test_a_stop_signal_saves_the_state_even_when_the_output_pipes_are_gone(
    tmp_path: Path, closed: tuple[str, ...]
) -> None:
    """``train ... 2>&1 | tee log`` then Ctrl-C: tee dies too, every later write fails."""
    run = tmp_path / "run"
    settings = ["--set", "log.progress=true"]  # the bar writes to stderr as well
    proc = subprocess.Popen(
        _train_cmd(run, 100_000, *settings),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    _wait_for_step(run, proc, 60)
    for name in closed:
        getattr(proc, name).close()  # the reader is gone: writes now fail with EPIPE
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=120)
    for name in ("stdout", "stderr"):
        if name not in closed:
            getattr(proc, name).read()
    assert proc.returncode == EXIT_STOPPED
    state, _, problems = load_state_file(run / "checkpoints" / "state.pt")
    assert not problems
    assert 0 < state["counters"]["step"] < 100_000
    assert state["counters"]["step"] % 25 == 0  # at an episode end (25-step episodes)


def test_a_stopped_run_says_how_to_resume_and_exits_with_its_own_code(tmp_path: Path) -> None:
    run = tmp_path / "run"
    proc = subprocess.Popen(
        _train_cmd(run, 100_000), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    _wait_for_step(run, proc, 30)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == EXIT_STOPPED == 75
    assert f"continue with --resume {run}" in out
    assert "final eval return" not in out


def _cfg(*overrides: str):
    return load_config(None, [*TINY_SETTINGS, "world_model.use=none", *overrides])


def test_the_summary_of_a_resumed_run_covers_the_whole_run(tmp_path: Path) -> None:
    run = tmp_path / "run"
    first = Trainer(_cfg("train.total_steps=150"), run)
    first.begin()
    while first.step < 100:  # 25-step episodes: step 100 is an episode end
        first.advance()
    time.sleep(0.3)  # a first segment that takes measurably long
    first.save_state()
    first_wall = first.wall_time_s()
    first.close()
    summary = Trainer.resume(run).run()
    assert summary.steps == 150
    assert summary.wall_time_s >= first_wall >= 0.3
    assert summary.env_steps_per_s == pytest.approx(150 / summary.wall_time_s)
    # resuming the finished run again keeps the whole run's figures (not zero throughput)
    again = Trainer.resume(run).run()
    assert again.wall_time_s == pytest.approx(summary.wall_time_s, rel=0.2)
    assert again.env_steps_per_s == pytest.approx(summary.env_steps_per_s, rel=0.2)
    stored = json.loads((run / "summary.json").read_text())
    assert stored["wall_time_s"] == again.wall_time_s
    # every segment recorded the code it ran: the start and both resumes
    sessions = [json.loads(x) for x in (run / "sessions.jsonl").read_text().splitlines()]
    assert [s["from_step"] for s in sessions] == [0, 100, 150]
    assert {s["commit"] for s in sessions} == {git_commit()}
    assert sessions[0]["versions"]["torch"] == str(torch.__version__)


def test_without_a_progress_bar_each_log_interval_prints_a_status_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["train", "--run-dir", str(tmp_path / "run"), "--no-dreaming", *TINY_ARGS]
    assert main([*argv, "--total-steps", "100", "--no-progress"]) == 0
    lines = [x for x in capsys.readouterr().out.splitlines() if x.startswith("step ")]
    assert [x.split()[1] for x in lines] == ["25/100", "50/100", "75/100", "100/100"]
    assert all("env steps/s" in x for x in lines)


@pytest.mark.parametrize("target", ["file", "/dev/null"])
def test_a_run_dir_that_is_not_a_directory_is_a_clear_error(
    tmp_path: Path, target: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "a_file" if target == "file" else Path(target)
    if target == "file":
        path.write_text("keep me")
    argv = ["train", "--run-dir", str(path), "--no-dreaming", *TINY_ARGS]
    assert main([*argv, "--total-steps", "50"]) == 2
    assert "is not a directory" in capsys.readouterr().err
    if target == "file":
        assert path.read_text() == "keep me"


def test_best_counts_only_evaluations_after_the_random_warm_up(tmp_path: Path) -> None:
    run = tmp_path / "run"
    trainer = Trainer(_cfg("train.total_steps=100", "train.eval_every=25"), run)  # warm-up 50
    trainer.run()
    evals = [json.loads(x) for x in (run / "eval.jsonl").read_text().splitlines()]
    after = [e for e in evals if e["step"] >= 50]
    best = torch.load(run / "checkpoints" / "best.pt", weights_only=True)
    assert best["step"] >= 50
    assert best["eval_return"] == pytest.approx(max(e["return_mean"] for e in after))
