"""``benchmarks/run_records.py``: finished runs' records kept in git and laid back out, so a
benchmark spanning machines neither loses nor retrains a finished run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from spiking_dreamer.files import trained_all_steps

from .helpers import pendulum_config

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "run_records.py"


def _run_dir(root: Path, name: str, steps: int, total: int = 100) -> Path:
    run = root / name
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "state.pt").write_bytes(b"big")
    (run / "tb").mkdir()
    (run / "config.yaml").write_text(f"train:\n  total_steps: {total}\n")
    (run / "eval.jsonl").write_text(json.dumps({"step": steps, "return_mean": 1.0}) + "\n")
    (run / "summary.json").write_text(json.dumps({"steps": steps}))
    (run / "sessions.jsonl").write_text('{"from_step": 0}\n')
    return run


def _records(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(SCRIPT), *args, "--records", str(tmp_path / "records")]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_keep_copies_only_finished_runs_and_no_checkpoints(tmp_path):
    runs = tmp_path / "runs"
    _run_dir(runs, "done_s3", steps=100)
    _run_dir(runs, "stopped_early_s4", steps=60)  # a summary, but short of total_steps
    (runs / "going_s5").mkdir()  # no summary yet
    proc = _records(tmp_path, "keep", "--run-root", str(runs))
    assert proc.returncode == 0, proc.stderr
    assert "kept 1 run records" in proc.stdout
    kept = tmp_path / "records" / "done_s3"
    assert sorted(p.name for p in (tmp_path / "records").iterdir()) == ["done_s3"]
    assert sorted(p.name for p in kept.iterdir()) == [
        "config.yaml",
        "eval.jsonl",
        "sessions.jsonl",
        "summary.json",
    ]
    again = _records(tmp_path, "keep", "--run-root", str(runs))
    assert "kept 0 run records" in again.stdout  # the same bytes: nothing to copy


def test_restore_lays_out_missing_runs_that_learning_curve_then_counts_as_finished(tmp_path):
    _run_dir(tmp_path / "old_machine", "done_s3", steps=100)
    _records(tmp_path, "keep", "--run-root", str(tmp_path / "old_machine"))
    runs = tmp_path / "runs"
    going = _run_dir(runs, "done_s4", steps=40)  # in flight here: left as it is
    (tmp_path / "records" / "done_s4").mkdir()
    (tmp_path / "records" / "done_s4" / "config.yaml").write_text("train: {total_steps: 100}\n")
    proc = _records(tmp_path, "restore", "--run-root", str(runs))
    assert proc.returncode == 0, proc.stderr
    assert "restored 1 run records" in proc.stdout
    assert trained_all_steps(runs / "done_s3", 100)
    assert not (runs / "done_s3" / "checkpoints").exists()
    assert (going / "checkpoints" / "state.pt").exists()
    assert json.loads((going / "summary.json").read_text())["steps"] == 40


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("keep", "--run-root", "no_such_dir"), "no such directory"),
        (("restore", "--run-root", "a_file/runs"), "is a file"),
        (("move", "--run-root", "x"), "invalid choice"),
    ],
)
def test_bad_arguments_exit_2_and_write_nothing(tmp_path, args, message):
    (tmp_path / "a_file").write_text("")
    args = tuple(str(tmp_path / a) if "/" in a or a == "no_such_dir" else a for a in args)
    proc = _records(tmp_path, *args)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert not (tmp_path / "records").exists()


def test_a_restored_run_is_collected_not_trained_again(tmp_path):
    config = pendulum_config(tmp_path)
    lc = [sys.executable, str(ROOT / "benchmarks" / "learning_curve.py"), "--config", config]
    lc += ["--arm", "baseline", "--seeds", "0", "--steps", "50", "--jobs", "1"]

    def curve(run_root: str, out: Path) -> dict:
        cmd = [*lc, "--run-root", str(tmp_path / run_root), "--out", str(out)]
        subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, timeout=300)
        return json.loads(out.read_text())["seeds"]["0"]

    first = curve("old", tmp_path / "first.json")
    assert _records(tmp_path, "keep", "--run-root", str(tmp_path / "old")).returncode == 0
    assert _records(tmp_path, "restore", "--run-root", str(tmp_path / "new")).returncode == 0
    again = curve("new", tmp_path / "again.json")
    (run,) = (tmp_path / "new").iterdir()
    assert not (run / "checkpoints").exists()  # nothing trained here
    for key in ("steps", "return_mean", "sessions", "wall_time_s", "last_model_metrics"):
        assert again[key] == first[key]
