"""``benchmarks/learning_curve.py``: its arguments checked before any run starts, and what a
seed's record keeps of its run directory."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from .helpers import load_benchmark

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "learning_curve.py"


def _load():
    return load_benchmark("learning_curve")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--set", "dreaming.no_such_key=1"], "no_such_key"),
        (["--set", "train.updates_per_step=-3"], "updates_per_step"),
        (["--config", "configs/no_such_config.yaml"], "no_such_config"),
        (["--seeds", "0", "0"], "--seeds"),
        (["--steps", "0"], "--steps"),
        (["--fork-from", "parent_runs"], "--fork-step"),
        (["--fork-from", "parent_runs", "--fork-step", "-5"], "--fork-step must be at least 1"),
        (["--fork-from", "parent_runs", "--fork-step", "5000"], "no parent run"),
    ],
)
def test_bad_arguments_exit_2_before_any_run(tmp_path, extra, message):
    out = tmp_path / "result.json"
    run_root = tmp_path / "runs"
    cmd = [sys.executable, str(SCRIPT), "--config", "configs/halfcheetah.yaml", "--seeds", "0"]
    cmd += ["--steps", "1000", "--run-root", str(run_root), "--out", str(out), *extra]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr
    assert not out.exists()
    assert not run_root.exists()


def test_an_output_path_that_is_a_directory_is_refused(tmp_path):
    cmd = [sys.executable, str(SCRIPT), "--seeds", "0", "--run-root", str(tmp_path / "runs")]
    proc = subprocess.run(
        [*cmd, "--out", str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2
    assert "is a directory" in proc.stderr
    assert not (tmp_path / "runs").exists()


def test_a_seed_record_keeps_the_last_model_metrics(tmp_path):
    lc = _load()
    evals = [{"step": 0, "return_mean": -1.0, "return_std": 0.5}]
    evals.append({"step": 5000, "return_mean": 7.0, "return_std": 0.25})
    (tmp_path / "eval.jsonl").write_text("".join(json.dumps(e) + "\n" for e in evals))
    records = [
        {"step": 2500, "model/holdout_mse": 0.5, "dream/acceptance": 1.0, "train/q_mean": 3.0},
        {"step": 5000, "model/holdout_mse": 0.25, "vg/objective": -2.0},
        {"step": 2500, "time/env_steps_per_s": 10.0},
        {"step": 5000, "time/env_steps_per_s": 12.0},  # the latest rate is the run's
    ]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    run = lc.read_run(tmp_path, 5000)
    assert run["steps"] == [0, 5000]
    assert run["return_mean"] == [-1.0, 7.0]
    assert run["env_steps_per_s"] == 12.0
    assert not run["finished"]
    # the last value of each model, dream and value-gradient metric; no other metric
    assert run["last_model_metrics"] == {
        "dream/acceptance": 1.0,
        "model/holdout_mse": 0.25,
        "vg/objective": -2.0,
    }
    assert run["sessions"] == []  # a run from before sessions.jsonl


def test_a_seed_record_lists_the_code_of_each_segment(tmp_path):
    lc = _load()
    (tmp_path / "eval.jsonl").write_text(
        json.dumps({"step": 0, "return_mean": 0.0, "return_std": 0.0}) + "\n"
    )
    segments = [
        {"from_step": 0, "commit": "abc", "date": "d0", "host": "h", "versions": {"torch": "x"}},
        {"from_step": 5000, "commit": "def-dirty", "date": "d1", "host": "h", "versions": {}},
    ]
    (tmp_path / "sessions.jsonl").write_text("".join(json.dumps(s) + "\n" for s in segments))
    run = lc.read_run(tmp_path, 10_000)
    assert [s["commit"] for s in run["sessions"]] == ["abc", "def-dirty"]
    assert [s["from_step"] for s in run["sessions"]] == [0, 5000]
    assert "versions" not in run["sessions"][0]


def test_collect_gathers_existing_runs_with_the_commits_they_ran(tmp_path):
    run_root, out = tmp_path / "runs", tmp_path / "result.json"
    for seed, commits in ((3, ["abc"]), (4, ["abc", "def"])):
        run = run_root / f"halfcheetah_baseline_10000_s{seed}"
        run.mkdir(parents=True)
        evals = [{"step": s, "return_mean": float(s + seed), "return_std": 0.0} for s in (0, 5000)]
        torn = '{"step": 10000, "return_m' if seed == 4 else ""  # a live run writing it
        (run / "eval.jsonl").write_text("".join(json.dumps(e) + "\n" for e in evals) + torn)
        lines = [
            {"from_step": 5000 * i, "commit": c, "date": "d", "host": "h", "versions": {}}
            for i, c in enumerate(commits)
        ]
        (run / "sessions.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    cmd = [sys.executable, str(SCRIPT), "--config", "configs/halfcheetah.yaml", "--seeds", "3"]
    cmd += ["4", "5", "--steps", "10000", "--run-root", str(run_root), "--out", str(out)]
    cmd.append("--collect")
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "seeds [5]: no evaluations yet" in proc.stderr  # seed 5 has not started
    data = json.loads(out.read_text())
    assert data["missing_seeds"] == ["5"]
    assert data["seeds"]["4"]["steps"] == [0, 5000]
    assert data["run_commits"] == ["abc", "def"]
    assert data["aggregate"]["final"]["step"] == 5000
    assert data["aggregate"]["final"]["per_seed"] == [5003.0, 5004.0]
    assert not data["seeds"]["3"]["finished"]


def test_a_run_that_ran_other_settings_is_refused_not_relabelled(tmp_path):
    from spiking_dreamer.config_loading import load_config, save_config

    run_root, out = tmp_path / "runs", tmp_path / "result.json"
    run = run_root / "halfcheetah_baseline_10000_s3"
    run.mkdir(parents=True)
    ran = ["train.checkpoint_every=5000", "train.seed=3", "world_model.use=none"]
    save_config(load_config(ROOT / "configs/halfcheetah.yaml", ran), run / "config.yaml")
    cmd = [sys.executable, str(SCRIPT), "--config", "configs/halfcheetah.yaml", "--seeds", "3"]
    cmd += ["--steps", "10000", "--run-root", str(run_root), "--out", str(out), "--check"]
    for every, code in ((5000, 0), (1000, 2)):
        proc = subprocess.run(
            [*cmd, "--set", f"train.checkpoint_every={every}"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == code, proc.stderr
    assert "ran with train.checkpoint_every=5000, not 1000" in proc.stderr
    assert not out.exists()


def test_a_fork_whose_parent_state_is_gone_is_refused_not_waited_for(tmp_path, monkeypatch):
    """The parent has saved both kept states past the fork step: the seed can never start."""
    import torch

    from spiking_dreamer.training import checkpoint

    monkeypatch.setattr(checkpoint, "read_state", lambda path: torch.load(path))
    lc = _load()
    parent = tmp_path / "runs" / "parent_s0"
    (parent / "checkpoints").mkdir(parents=True)
    (parent / "eval.jsonl").write_text('{"step": 5000, "return_mean": 1.0}\n')
    args = argparse.Namespace(fork_from="parent", fork_step=5000, run_root=tmp_path / "runs")
    assert not lc.parent_ready(args, 0)  # evaluated, its state not saved yet: wait
    for name, step in (("state.pt.prev", 5000), ("state.pt", 10000)):
        torch.save({"counters": {"step": step}}, parent / "checkpoints" / name)
    assert lc.parent_ready(args, 0)  # .prev holds the fork step
    torch.save({"counters": {"step": 8000}}, parent / "checkpoints" / "state.pt.prev")
    with pytest.raises(RuntimeError, match="the state to fork is gone"):
        lc.parent_ready(args, 0)


def test_aggregate_by_hand_over_the_steps_every_seed_has():
    """Seed 4 stopped at 5,000: the curve ends there, with both seeds. The mean of (0, 0, 3) is
    1 (not the median 0); the spread is the sample standard deviation (ddof 1)."""
    lc = _load()

    def run(steps, returns, sps):
        return {"steps": steps, "return_mean": returns, "env_steps_per_s": sps}

    runs = {
        3: run([0, 5000, 10000], [0.0, 5003.0, 9000.0], 10.0),
        4: run([0, 5000], [0.0, 5004.0], 12.0),
    }
    agg = lc.aggregate(runs)
    assert [p["step"] for p in agg["curve"]] == [0, 5000]
    final = agg["final"]
    assert final["per_seed"] == [5003.0, 5004.0]
    assert final["mean"] == pytest.approx(5003.5)
    assert final["std_across_seeds"] == pytest.approx(0.5**0.5)
    assert agg["env_steps_per_s_median"] == pytest.approx(11.0)
    three = {s: run([0], [v], None) for s, v in ((3, 0.0), (4, 0.0), (5, 3.0))}
    assert lc.aggregate(three)["final"]["mean"] == pytest.approx(1.0)
