"""Every benchmark script refuses bad arguments before any work: exit 2, a message naming the
problem, nothing written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("script", "args", "message"),
    [
        ("action_latency", ["--rounds", "0"], "--rounds: must be >= 1, got 0"),
        ("behaviour_fingerprint", ["--compare", "{missing}"], "no such file"),
        ("dream_fidelity", ["--run", "{tmp}"], "no usable training state"),
        ("dream_phase_parts", ["--config", "configs/none.yaml"], "config file not found"),
        ("firing_rate_penalty", ["--runs", "{tmp}"], "no eval.jsonl"),
        ("model_jacobian", ["--out", "{tmp}"], "is a directory"),
        ("model_tails", ["--run", "{tmp}"], "needs state.pt and state.pt.prev"),
        ("sac_update", ["--calls", "ten"], "expected an integer, got 'ten'"),
        ("td3_schedule", ["--updates-per-step", "-1"], "must be >= 1, got -1"),
        ("td3_step", ["--out", "{tmp}"], "is a directory"),
        ("world_model", ["--episodes", "4", "--test-episodes", "2"], "nothing left to train on"),
        ("world_model", ["--seed", "-3"], "--seed: must lie in"),
        ("world_model", ["--set", "world_model.hidden_size=0"], "hidden_size: must be >= 1"),
        ("world_model", ["--set", "world_model.train_steps=5"], "set by the benchmark itself"),
        ("world_model", ["--set", "td3.gamma=0.5"], "only the spiking ensemble's"),
    ],
)
def test_bad_arguments_exit_2_and_write_nothing(tmp_path, script, args, message):
    out = tmp_path / "out" / "result.json"
    args = [a.format(tmp=tmp_path, missing=tmp_path / "missing.json") for a in args]
    if "--out" not in args:
        args += ["--out", str(out)]
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / f"{script}.py"), *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr
    assert not (tmp_path / "out").exists()
