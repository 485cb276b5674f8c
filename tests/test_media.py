"""``spiking-dreamer eval --video`` (a rendered episode) and ``--raster`` (spike raster)."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import spiking_dreamer
from spiking_dreamer import media
from spiking_dreamer.agent import MLPActor, PopSpikingActor
from spiking_dreamer.cli import main
from spiking_dreamer.config import ActorConfig, Config
from spiking_dreamer.envs import make_env
from spiking_dreamer.errors import UserError
from spiking_dreamer.training.checkpoint import actor_checkpoint, atomic_torch_save

from .helpers import TINY_ACTOR

ENV_ID = "HalfCheetah-v5"
OBS_DIM, ACT_DIM = 17, 6


def _actor(cfg: ActorConfig = TINY_ACTOR, seed: int = 0) -> PopSpikingActor | MLPActor:
    torch.manual_seed(seed)
    high = torch.ones(ACT_DIM)
    cls = MLPActor if cfg.kind == "mlp" else PopSpikingActor
    actor = cls(OBS_DIM, -high, high, cfg)
    if isinstance(actor, PopSpikingActor):
        with torch.no_grad():  # a random init that spikes everywhere and moves the legs
            for layer in actor.layers:
                layer.weight.mul_(3.0)
    return actor.eval()


def _checkpoint(path: Path, cfg: ActorConfig = TINY_ACTOR) -> Path:
    actor = _actor(cfg)
    data = json.loads(json.dumps(dataclasses.asdict(cfg)))
    config = Config().replace(actor=data, env={"id": ENV_ID})
    atomic_torch_save(actor_checkpoint(actor, config, ENV_ID, 3, 0.0), path)
    return path


# --------------------------------------------------------------------------- offscreen GL


def test_gl_backend_prefers_egl_and_sets_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(media, "_loadable", lambda libs: True)
    environ: dict[str, str] = {}
    assert media.select_gl_backend(environ, probe=lambda b, e: None) == "egl"
    assert environ == {"MUJOCO_GL": "egl", "PYOPENGL_PLATFORM": "egl"}


def test_gl_backend_falls_back_to_osmesa(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(media, "_loadable", lambda libs: True)
    environ: dict[str, str] = {"PYOPENGL_PLATFORM": "osmesa"}
    probe = lambda b, e: "no EGL device" if b == "egl" else None  # noqa: E731
    assert media.select_gl_backend(environ, probe=probe) == "osmesa"
    assert environ["MUJOCO_GL"] == "osmesa"


def test_gl_backend_keeps_the_users_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    def probe(b: str, e: object) -> str | None:
        raise AssertionError("a user's glfw is not probed")

    environ = {"MUJOCO_GL": "glfw"}
    assert media.select_gl_backend(environ, probe=probe) == "glfw"
    assert environ == {"MUJOCO_GL": "glfw"}
    monkeypatch.setattr(media, "_loadable", lambda libs: "EGL" in libs[0])
    with pytest.raises(UserError, match=r"MUJOCO_GL=osmesa .*libOSMesa.*libosmesa6"):
        media.select_gl_backend({"MUJOCO_GL": "osmesa"}, probe=lambda b, e: None)


def test_missing_gl_libraries_are_named_with_their_packages(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(media, "_loadable", lambda libs: False)
    environ: dict[str, str] = {}
    with pytest.raises(UserError) as info:
        media.select_gl_backend(environ, probe=lambda b, e: None)
    for word in ("libEGL", "libOSMesa", "libegl1", "libegl-mesa0", "libosmesa6"):
        assert word in str(info.value)
    assert "MUJOCO_GL" not in environ


def _offscreen_gl() -> None:
    """Skip (saying why) where MuJoCo cannot render offscreen; probes a copy of the
    environment, so this process's MUJOCO_GL stays as it is."""
    try:
        media.select_gl_backend(dict(os.environ))
    except UserError as e:
        pytest.skip(f"no offscreen OpenGL: {e}")


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    """The CLI in a fresh process: MuJoCo picks its GL backend once per process, when it is
    first imported, and this one may have imported it already."""
    src = str(Path(spiking_dreamer.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "spiking_dreamer.cli", *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, check=False)


# --------------------------------------------------------------------------- video


@pytest.mark.mujoco
def test_video_gif_has_the_frames_of_an_episode(tmp_path: Path) -> None:
    _offscreen_gl()
    from PIL import Image

    ckpt = _checkpoint(tmp_path / "actor.pt")
    gif = tmp_path / "out" / "episode.gif"
    done = _cli(
        "eval", "--checkpoint", str(ckpt), "--episodes", "0", "--video", str(gif),
        "--video-steps", "10", "--video-size", "64x48", "--fps", "25",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"wrote {gif} (10 frames, 64x48, 25 fps" in done.stdout
    with Image.open(gif) as im:
        assert im.n_frames == 10
        assert im.size == (64, 48)
        frames = []
        for i in range(im.n_frames):
            im.seek(i)
            frames.append(np.asarray(im.convert("RGB"), dtype=np.int16))
            assert im.info["duration"] == 40
    assert all(f.shape == (48, 64, 3) for f in frames)
    assert frames[0].std() > 5  # a picture, not a blank frame
    assert any(np.abs(f - frames[0]).mean() > 0.5 for f in frames[1:])  # the body moves


@pytest.mark.mujoco
def test_video_mp4(tmp_path: Path) -> None:
    _offscreen_gl()
    pytest.importorskip("imageio_ffmpeg")
    import imageio.v3 as iio

    ckpt = _checkpoint(tmp_path / "actor.pt")
    mp4 = tmp_path / "episode.mp4"
    done = _cli(
        "eval", "--checkpoint", str(ckpt), "--episodes", "1", "--video", str(mp4),
        "--video-steps", "6", "--video-size", "96x64",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "HalfCheetah-v5: return" in done.stdout  # --episodes 1 still evaluates
    frames = iio.imread(mp4)
    assert frames.shape == (6, 64, 96, 3)
    assert frames.std() > 5


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--video", "x.avi"], ".gif or .mp4"),
        (["--video", "x.gif", "--video-size", "64"], "WIDTHxHEIGHT"),
        (["--episodes", "0"], "needs --video, --raster or --energy"),
        (["--raster", "x.jpg"], ".png, .svg or .pdf"),
    ],
)
def test_bad_media_arguments_fail_before_any_episode(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    ckpt = _checkpoint(tmp_path / "actor.pt")
    assert main(["eval", "--checkpoint", str(ckpt), *args]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x.gif").exists()


def test_a_missing_video_extra_names_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "imageio", None)  # import imageio -> ImportError
    ckpt = _checkpoint(tmp_path / "actor.pt")
    assert main(["eval", "--checkpoint", str(ckpt), "--video", str(tmp_path / "x.gif")]) == 2
    assert "spiking-dreamer[video]" in capsys.readouterr().err


# --------------------------------------------------------------------------- raster


@pytest.mark.mujoco
def test_spike_record_matches_the_policy() -> None:
    actor = _actor()
    env = make_env(ENV_ID)
    record = media.record_spikes(actor, env, seed=3, steps=12)
    env.close()
    t = TINY_ACTOR.spike_ts
    assert record.names == ["encoder", "hidden 1", "output (decoder)"]
    sizes = [OBS_DIM * TINY_ACTOR.encoder_pop_dim, 16, ACT_DIM * TINY_ACTOR.decoder_pop_dim]
    assert [s.shape for s in record.spikes] == [(12 * t, n) for n in sizes]
    assert record.actions.shape == (12, ACT_DIM)
    assert record.time_steps == t
    # the first action is what the actor does on the reset observation
    obs, _ = make_env(ENV_ID).reset(seed=3)
    expected = actor(torch.as_tensor(obs, dtype=torch.float32)[None])[0].detach().numpy()
    np.testing.assert_allclose(record.actions[0], expected, atol=1e-6)
    rates = record.firing_rates()
    assert all(0 < r < 1 for r in rates)
    assert rates[1] == pytest.approx(record.spikes[1].mean())


@pytest.mark.mujoco
def test_raster_png_has_a_panel_per_population(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from PIL import Image

    actor = _actor()
    env = make_env(ENV_ID)
    record = media.record_spikes(actor, env, seed=0, steps=15)
    env.close()
    info = media.plot_raster(record, tmp_path / "r.png", "title", max_neurons=30)
    with Image.open(tmp_path / "r.png") as im:
        assert im.format == "PNG"
        assert im.size == info["size"]
        pixels = np.asarray(im.convert("L"))
    assert info["size"][0] == 1200
    assert pixels.min() < 50  # dots
    assert pixels.max() > 200  # background
    encoder, hidden, output = info["titles"]
    assert encoder.startswith(f"encoder: {OBS_DIM * 4} neurons, 30 of them drawn")
    assert hidden.startswith("hidden 1: 16 neurons; firing rate ")  # small: all drawn
    assert output.startswith("output (decoder): 18 neurons; firing rate ")
    assert f"{record.firing_rates()[1]:.1%}" in hidden


@pytest.mark.mujoco
def test_eval_raster_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("matplotlib")
    from PIL import Image

    ckpt = _checkpoint(tmp_path / "actor.pt")
    png = tmp_path / "figs" / "raster.png"
    args = ["eval", "--checkpoint", str(ckpt), "--episodes", "0", "--raster", str(png)]
    assert main([*args, "--raster-steps", "20"]) == 0
    out = capsys.readouterr().out
    m = re.search(r"wrote .*raster\.png \((\d+)x(\d+); firing rates encoder", out)
    assert m, out
    with Image.open(png) as im:
        assert im.size == (int(m.group(1)), int(m.group(2)))


def test_raster_refuses_an_mlp_actor(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ckpt = _checkpoint(tmp_path / "mlp.pt", dataclasses.replace(TINY_ACTOR, kind="mlp"))
    png = tmp_path / "raster.png"
    assert main(["eval", "--checkpoint", str(ckpt), "--raster", str(png)]) == 2
    err = capsys.readouterr().err
    assert "spiking (PopSAN) actor" in err
    assert "MLPActor" in err
    assert not png.exists()
