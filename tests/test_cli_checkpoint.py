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


# ----------------------------------------------------------------------------- eval in chunks


def test_evaluating_in_chunks_gives_the_unchunked_results(tmp_path: Path) -> None:
    from spiking_dreamer.envs import make_env
    from spiking_dreamer.training.checkpoint import load_actor
    from spiking_dreamer.training.evaluate import evaluate, evaluate_episodes

    actor, _ = load_actor(_run_dir(tmp_path) / "checkpoints" / "best.pt")
    kwargs = {"max_episode_steps": 30}
    make = lambda: make_env("Pendulum-v1", kwargs)  # noqa: E731
    whole = evaluate(actor, [make() for _ in range(5)], seed=7)
    assert evaluate_episodes(actor, make, 5, seed=7) == whole  # one chunk: the same call
    assert evaluate_episodes(actor, make, 5, seed=7, chunk=2) == whole


def test_eval_keeps_a_bounded_number_of_envs_whatever_the_episodes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``eval --episodes N`` made N envs at once (memory grew without bound); now at most a
    chunk's worth exist at any time."""
    import spiking_dreamer.envs as envs
    from spiking_dreamer.training.evaluate import EVAL_CHUNK

    live, most = set(), [0]
    make = envs.make_env

    def counting(env_id, kwargs=None):
        env = make(env_id, {**(kwargs or {}), "max_episode_steps": 5})
        live.add(id(env))
        most[0] = max(most[0], len(live))
        close = env.close
        env.close = lambda: (live.discard(id(env)), close())  # type: ignore[method-assign]
        return env

    monkeypatch.setattr(envs, "make_env", counting)
    run = _run_dir(tmp_path)
    episodes = 3 * EVAL_CHUNK + 1
    assert main(["eval", "--checkpoint", str(run), "--episodes", str(episodes)]) == 0
    assert f"over {episodes} episodes" in capsys.readouterr().out
    assert most[0] <= EVAL_CHUNK + 1  # a chunk, and the env the command checks sizes with
    assert not live  # every env closed
