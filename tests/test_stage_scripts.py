"""The decisive benchmark's stage scripts: every call's arguments checked before any run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STAGE1 = ROOT / "benchmarks" / "stage1_locate_cause.sh"
STAGE2 = ROOT / "benchmarks" / "stage2_decide.sh"


def _run(script: Path, *args: str, run_root: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PY": sys.executable, "RUN_ROOT": str(run_root)}
    return subprocess.run(
        ["bash", str(script), *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )


@pytest.mark.parametrize(
    ("script", "args", "calls"),
    [(STAGE1, (), 5), (STAGE2, ("halfcheetah",), 3), (STAGE2, ("ant",), 3)],
)
def test_check_passes_every_call_and_runs_nothing(tmp_path, script, args, calls):
    proc = _run(script, *args, "--check", run_root=tmp_path / "runs")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("arguments checked") == calls
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    ("script", "args"),
    [(STAGE2, ()), (STAGE2, ("hopper",)), (STAGE2, ("ant", "--go")), (STAGE1, ("--go",))],
)
def test_bad_arguments_exit_2(tmp_path, script, args):
    proc = _run(script, *args, run_root=tmp_path / "runs")
    assert proc.returncode == 2
    assert script.name in proc.stderr
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    ("script", "args", "done", "config"),
    [
        (
            STAGE1,
            (),
            "halfcheetah_mbpo_sac_real_pilot_30k.json",
            "halfcheetah_mbpo_sac.yaml --arm baseline",
        ),
        (
            STAGE2,
            ("halfcheetah",),
            "halfcheetah_mbpo_sac_real_heldout_100k.json",
            "halfcheetah_mbpo_sac.yaml --arm baseline",
        ),
    ],
)
def test_an_arm_whose_result_exists_is_skipped(tmp_path, script, args, done, config):
    # PY=echo prints each call instead of running it; the cwd stands in for the repository root
    (tmp_path / "benchmarks" / "results").mkdir(parents=True)
    (tmp_path / "benchmarks" / "results" / done).write_text("{}")
    env = {**os.environ, "PY": "echo", "RUN_ROOT": str(tmp_path / "runs")}
    proc = subprocess.run(
        ["bash", str(script), *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert f"benchmarks/results/{done} exists: arm done, skipped" in proc.stdout
    calls = [line for line in proc.stdout.splitlines() if "learning_curve.py" in line]
    done_calls = [line for line in calls if config in line]
    assert len(done_calls) == 1  # checked, never run
    assert "--check" in done_calls[0]
    assert any(config not in line and "--check" not in line for line in calls)  # the others run


@pytest.mark.parametrize("bad", ["0", "two", "-1", "10", "007", "99999999999999999999"])
def test_bad_worker_count_exits_2_before_anything(tmp_path, bad):
    env = {**os.environ, "PY": sys.executable, "RUN_ROOT": str(tmp_path / "runs"), "WORKERS": bad}
    proc = subprocess.run(
        ["bash", str(STAGE2), "halfcheetah"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert f"WORKERS={bad}" in proc.stderr
    assert "1 to 9" in proc.stderr
    assert "arguments checked" not in proc.stdout
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    ("task", "runs", "workers"),
    [("halfcheetah", 9, None), ("ant", 8, None), ("ant", 8, "1"), ("halfcheetah", 9, "3")],
)
def test_workers_run_each_run_once_then_collect_each_arm(tmp_path, task, runs, workers):
    stale = tmp_path / "runs" / f"stage2_claims_{task}" / f"{task}_mbpo_sac_dreaming_s3"
    stale.mkdir(parents=True)  # a claim left by a stopped worker: free again on a rerun
    env = {**os.environ, "PY": "echo", "RUN_ROOT": str(tmp_path / "runs")}
    env.pop("WORKERS", None)
    if workers is not None:
        env["WORKERS"] = workers
    proc = subprocess.run(
        ["bash", str(STAGE2), task], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    calls = [line for line in proc.stdout.splitlines() if "learning_curve.py" in line]
    trained = [c for c in calls if "--jobs 1" in c]
    collected = [c for c in calls if c.endswith("--collect")]
    assert len(trained) == len(set(trained)) == runs
    assert any(f"{task}_mbpo_sac.yaml --arm dreaming" in c and "--seeds 3 " in c for c in trained)
    if workers == "1":  # one worker takes the runs strictly in the queue's order: seed by seed
        seeds = [c.split("--seeds ")[1].split()[0] for c in trained]
        assert seeds == sorted(seeds)
        assert (seeds[0], seeds[-1]) == ("3", "5")
    assert len(collected) == 3
    assert calls.index(collected[0]) > max(calls.index(c) for c in trained)
    # records of finished runs: laid out before any run, kept after each one
    lines = proc.stdout.splitlines()
    restores = [i for i, line in enumerate(lines) if "run_records.py restore" in line]
    keeps = [line for line in lines if "run_records.py keep" in line]
    assert len(restores) == 1
    assert restores[0] < lines.index(trained[0])
    assert len(keeps) == runs


REPORT = ROOT / "benchmarks" / "stage2_report.sh"


@pytest.mark.parametrize("args", [(), ("hopper",), ("ant", "--go")])
def test_report_bad_arguments_exit_2(tmp_path, args):
    env = {**os.environ, "PY": "echo", "EXP_ROOT": str(tmp_path / "exp")}
    env["RUN_ROOT"] = str(tmp_path)
    proc = subprocess.run(
        ["bash", str(REPORT), *args], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert REPORT.name in proc.stderr
    assert not (tmp_path / "exp").exists()


@pytest.mark.parametrize(
    ("task", "links"),
    [
        (
            "halfcheetah",
            {
                "halfcheetah_mbpo_sac__dreaming__s3": "halfcheetah_mbpo_sac_dreaming_100000_s3",
                "halfcheetah_mbpo_sac__baseline__s5": "halfcheetah_mbpo_sac_baseline_100000_s5",
                "halfcheetah_mbpo_sac_mlp__dreaming__s4": (
                    "halfcheetah_mbpo_sac_mlp_dreaming_100000_s4"
                ),
                "halfcheetah_mbpo_sac_mlp__baseline__s4": "halfcheetah_mbpo_sac_baseline_100000_s4",
            },
        ),
        (
            "ant",
            {
                "ant_mbpo_sac__dreaming__s4": "ant_mbpo_sac_dreaming_100000_s4",
                "ant_mbpo_sac__baseline__s5": "ant_mbpo_sac_baseline_100000_s5",
                "ant__baseline__s3": "ant_baseline_100000_s3",
            },
        ),
    ],
)
def test_report_links_each_arm_to_its_runs(tmp_path, task, links):
    runs, exp = tmp_path / "runs", tmp_path / "exp"
    runs.mkdir()
    env = {**os.environ, "PY": "echo", "RUN_ROOT": str(runs), "EXP_ROOT": str(exp)}
    proc = subprocess.run(
        ["bash", str(REPORT), task], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    made = {p.name: Path(os.readlink(p)) for p in (exp / f"{task}_stage2" / "runs").iterdir()}
    assert len(made) == (12 if task == "halfcheetah" else 8)
    for name, run in links.items():
        assert made[name] == runs / run
    assert not any("ant_mbpo_sac__dreaming__s5" in n for n in made)  # the plan's cut
    assert f"report {exp / f'{task}_stage2'} --out benchmarks/results/{task}_stage2_report" in (
        proc.stdout
    )
