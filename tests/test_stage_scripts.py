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
    [(STAGE1, (), 5), (STAGE2, ("halfcheetah",), 5), (STAGE2, ("ant",), 3)],
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
