"""``--checkpoint`` of eval and export: a checkpoint file or a run directory."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from spiking_dreamer.cli import main
from spiking_dreamer.config import Config
from spiking_dreamer.training.checkpoint import actor_checkpoint, atomic_torch_save

from .helpers import TINY_ACTOR, tiny_td3


def _run_dir(tmp_path: Path, names: tuple[str, ...] = ("best.pt", "last.pt")) -> Path:
    """A run directory whose checkpoints/ holds Pendulum-v1 actors ``names`` (the step tells
    them apart: best.pt 5, last.pt 9)."""
    agent = tiny_td3(obs_dim=3, act_dim=1, action_high=2.0)
    cfg = Config().replace(
        actor={
            "hidden_sizes": list(TINY_ACTOR.hidden_sizes),
            "spike_ts": TINY_ACTOR.spike_ts,
            "encoder_pop_dim": TINY_ACTOR.encoder_pop_dim,
            "decoder_pop_dim": TINY_ACTOR.decoder_pop_dim,
        },
        env={"id": "Pendulum-v1", "kwargs": {}},
    )
    run = tmp_path / "run"
    for name in names:
        step = {"best.pt": 5, "last.pt": 9}[name]
        ckpt = actor_checkpoint(agent.actor, cfg, "Pendulum-v1", step, 0.0)
        atomic_torch_save(ckpt, run / "checkpoints" / name)
    return run


def test_eval_accepts_a_run_directory_and_uses_best_pt(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = _run_dir(tmp_path)
    assert main(["eval", "--checkpoint", str(run), "--episodes", "1"]) == 0
    out, err = capsys.readouterr()
    assert "Pendulum-v1: return" in out
    assert "checkpoint step 5" in out
    assert f"note: {run} is a run directory" in err
    assert str(run / "checkpoints" / "best.pt") in err


def test_eval_falls_back_to_last_pt_with_a_note(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = _run_dir(tmp_path, ("last.pt",))
    assert main(["eval", "--checkpoint", str(run), "--episodes", "1"]) == 0
    out, err = capsys.readouterr()
    assert "checkpoint step 9" in out
    assert "without checkpoints/best.pt" in err
    assert str(run / "checkpoints" / "last.pt") in err


def test_a_directory_without_actor_checkpoints_lists_what_was_looked_for(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = _run_dir(tmp_path, ())
    run.mkdir(parents=True, exist_ok=True)
    assert main(["eval", "--checkpoint", str(run)]) == 2
    err = capsys.readouterr().err
    assert "holds no actor checkpoint" in err
    assert str(run / "checkpoints" / "best.pt") in err
    assert str(run / "checkpoints" / "last.pt") in err
    assert "Traceback" not in err
    out = tmp_path / "a.safetensors"
    export = ["export", "--checkpoint", str(run), "--format", "safetensors", "--out", str(out)]
    assert main(export) == 2
    assert "holds no actor checkpoint" in capsys.readouterr().err


def test_a_checkpoint_file_is_used_as_given(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = _run_dir(tmp_path)
    last = run / "checkpoints" / "last.pt"
    assert main(["eval", "--checkpoint", str(last), "--episodes", "1"]) == 0
    out, err = capsys.readouterr()
    assert "checkpoint step 9" in out
    assert "note:" not in err
    shutil.rmtree(run / "checkpoints")
    assert main(["eval", "--checkpoint", str(last)]) == 2
    assert "not found" in capsys.readouterr().err


def test_export_accepts_a_run_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("safetensors")
    run = _run_dir(tmp_path)
    out = tmp_path / "actor.safetensors"
    export = ["export", "--checkpoint", str(run), "--format", "safetensors", "--out", str(out)]
    assert main(export) == 0
    assert out.is_file()
    assert str(run / "checkpoints" / "best.pt") in capsys.readouterr().err
