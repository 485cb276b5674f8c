"""``benchmarks/model_tails.py``: a run's model, one checkpoint back, scored on the real
transitions the run collected after it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from spiking_dreamer.config_loading import load_config
from spiking_dreamer.training.trainer import Trainer

from .helpers import TINY

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.mujoco


def test_the_model_before_is_scored_on_the_steps_after(tmp_path: Path) -> None:
    steps = ["train.total_steps=300", "train.checkpoint_every=100"]
    cfg = load_config(ROOT / "configs" / "halfcheetah.yaml", [*TINY, *steps])
    Trainer(cfg, tmp_path / "run").run()  # states at 200 (state.pt.prev) and 300
    out = tmp_path / "tails.json"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "model_tails.py"), "--run"]
    cmd += [str(tmp_path / "run"), "--rows", "40", "--out", str(out)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(out.read_text())
    assert data["model_step"] == 200
    assert data["next"]["steps"] == [200, 300]
    for part, rows in (("trained_on", 40), ("next", 100)):
        assert data[part]["all"]["rows"] == rows
        bins = data[part]["by_max_abs_z"].values()
        assert sum(b["rows"] for b in bins) == rows  # every row in exactly one bin
        assert data[part]["all"]["reward_mae"] >= abs(data[part]["all"]["reward_bias"])
