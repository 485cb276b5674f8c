"""Pictures of a trained actor: a rendered evaluation episode (GIF / MP4) and a spike raster.

- :func:`record_video` renders one deterministic episode offscreen (gymnasium
  ``render_mode="rgb_array"``) and writes it with imageio: GIF through Pillow, MP4 through
  imageio-ffmpeg (the ``video`` extra). MuJoCo renders without a display through EGL, or
  OSMesa where EGL is missing; :func:`select_gl_backend` picks one before MuJoCo creates a
  GL context.
- :func:`record_spikes` runs the PopSAN actor on an episode and keeps every population's spike
  trains and the actions; :func:`plot_raster` draws them (matplotlib, the ``report`` extra).

A tool module: it uses the agent and the env construction, nothing of training or dreaming.
"""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from spiking_dreamer.agent import Actor, PopSpikingActor
from spiking_dreamer.envs import make_env
from spiking_dreamer.errors import CheckpointError, EnvError, UserError, import_extra

VIDEO_FORMATS = (".gif", ".mp4")
DEFAULT_VIDEO_SIZE = {".gif": (320, 240), ".mp4": (640, 480)}
"""Frame size (width, height) when ``--video-size`` is not given: small GIFs, sharper MP4s."""
RASTER_FORMATS = (".png", ".svg", ".pdf")
DEFAULT_MAX_NEURONS = 256
"""A population with more neurons is drawn as this many evenly spaced ones."""

# (MUJOCO_GL value, shared libraries to look for, Debian/Ubuntu packages that provide them)
_GL_BACKENDS = (
    ("egl", ("libEGL.so.1", "libEGL.so"), "libegl1 libegl-mesa0 libgl1-mesa-dri"),
    ("osmesa", ("libOSMesa.so.8", "libOSMesa.so.6", "libOSMesa.so"), "libosmesa6"),
)
_PROBE = (
    "from mujoco.{backend} import GLContext\n"
    "ctx = GLContext(16, 16)\n"
    "ctx.make_current()\n"
    "ctx.free()\n"
)


# --------------------------------------------------------------------------- offscreen GL


def _loadable(names: tuple[str, ...]) -> bool:
    for name in names:
        try:
            ctypes.CDLL(name)
        except OSError:
            continue
        return True
    return False


def _probe_backend(backend: str, environ: MutableMapping[str, str]) -> str | None:
    """``None`` if MuJoCo can create a ``backend`` GL context, else why not. Runs in a child
    process: a failed attempt would leave PyOpenGL bound to that platform in this one."""
    env = {**environ, "MUJOCO_GL": backend}
    try:
        done = subprocess.run(
            [sys.executable, "-c", _PROBE.format(backend=backend)],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        return str(e)
    if done.returncode == 0:
        return None
    lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
    return lines[-1] if lines else f"exit code {done.returncode}"


def _backend_problem(
    backend: str,
    libs: tuple[str, ...],
    environ: MutableMapping[str, str],
    probe: Callable[[str, MutableMapping[str, str]], str | None],
) -> str | None:
    if not _loadable(libs):
        return f"{libs[0]} not found"
    return probe(backend, environ)


def select_gl_backend(
    environ: MutableMapping[str, str] | None = None,
    probe: Callable[[str, MutableMapping[str, str]], str | None] = _probe_backend,
) -> str:
    """Make MuJoCo render offscreen: keep the user's ``MUJOCO_GL`` if set (checking that an
    ``egl`` or ``osmesa`` choice works), else set it to ``egl`` or, failing that, ``osmesa``
    (and ``PYOPENGL_PLATFORM`` to match, unless set).

    Call it before MuJoCo is imported: MuJoCo's module reads ``MUJOCO_GL`` then (and gymnasium
    again when it creates the GL context).

    Raises:
        UserError: no backend works; the message names the libraries and their packages.
    """
    environ = os.environ if environ is None else environ
    packages = {
        b: f"{libs[0].split('.')[0]} (Debian/Ubuntu: apt-get install {pkgs})"
        for b, libs, pkgs in _GL_BACKENDS
    }
    chosen = environ.get("MUJOCO_GL", "").strip()
    if chosen:
        for backend, libs, _ in _GL_BACKENDS:
            if chosen.lower() == backend:
                why = _backend_problem(backend, libs, environ, probe)
                if why is not None:
                    raise UserError(
                        f"--video: MUJOCO_GL={chosen} (set in the environment) cannot render: "
                        f"{why}; it needs {packages[backend]}. Unset MUJOCO_GL to let --video "
                        "pick egl or osmesa"
                    )
        return chosen
    tried = []
    for backend, libs, _ in _GL_BACKENDS:
        why = _backend_problem(backend, libs, environ, probe)
        if why is None:
            environ["MUJOCO_GL"] = backend
            environ.setdefault("PYOPENGL_PLATFORM", backend)
            return backend
        tried.append(f"{backend}: {why}")
    raise UserError(
        f"--video renders offscreen and needs {packages['egl']} or {packages['osmesa']}; "
        f"tried {'; '.join(tried)}. With a display, MUJOCO_GL=glfw also works"
    )


# --------------------------------------------------------------------------- video


def parse_size(text: str) -> tuple[int, int]:
    """``"320x240"`` -> ``(320, 240)``."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise UserError(f"--video-size {text!r}: expected WIDTHxHEIGHT, e.g. 320x240") from None
    if not (16 <= w <= 4096 and 16 <= h <= 4096):
        raise UserError(f"--video-size {text!r}: width and height must lie in [16, 4096]")
    return w, h


def video_format(path: str | Path) -> str:
    """The suffix of a video path (``.gif`` or ``.mp4``), else a :class:`UserError`."""
    suffix = Path(path).suffix.lower()
    if suffix not in VIDEO_FORMATS:
        raise UserError(f"--video {path}: the file must end in .gif or .mp4")
    return suffix


def check_video_writer(path: str | Path) -> None:
    """Fail early (:class:`MissingExtraError`) if what writes ``path`` is not installed."""
    import_extra("imageio", "--video", "video")
    if video_format(path) == ".gif":
        import_extra("PIL", "--video FILE.gif", "video")
    else:
        import_extra("imageio_ffmpeg", "--video FILE.mp4", "video")


class _VideoWriter:
    """Frames in, one GIF (Pillow) or MP4 (H.264 via imageio-ffmpeg) out."""

    def __init__(self, path: Path, fps: float) -> None:
        imageio = import_extra("imageio", "--video", "video")
        path.parent.mkdir(parents=True, exist_ok=True)
        self.gif = video_format(path) == ".gif"
        if self.gif:
            import imageio.v3 as iio

            self._file = iio.imopen(path, "w", plugin="pillow", extension=".gif")
            self._duration = max(10, round(1000 / fps / 10) * 10)  # GIF delays are in 1/100 s
        else:
            import_extra("imageio_ffmpeg", "--video FILE.mp4", "video")
            self._file = imageio.v2.get_writer(
                path,
                format="FFMPEG",
                mode="I",
                fps=fps,
                codec="libx264",
                pixelformat="yuv420p",
                macro_block_size=2,
                ffmpeg_log_level="error",
            )

    def append(self, frame: np.ndarray) -> None:
        if self.gif:
            self._file.write(frame, is_batch=False, duration=self._duration, loop=0)
        else:
            self._file.append_data(frame)

    def close(self) -> None:
        self._file.close()


def make_render_env(env_id: str, kwargs: dict[str, Any], size: tuple[int, int]) -> Any:
    """The env of ``make_env(env_id, kwargs)`` rendering ``size`` RGB frames offscreen.

    MuJoCo envs render through their model's ``track`` camera (it follows the body; the
    locomotion tasks all have one) unless ``kwargs`` names a camera; other envs render at their
    own size and the frames are resized."""
    w, h = size
    extra: dict[str, Any] = {"render_mode": "rgb_array", "width": w, "height": h}
    if "camera_id" not in kwargs and "camera_name" not in kwargs:
        extra["camera_name"] = "track"  # a MuJoCo model without it renders the free camera
    try:
        return make_env(env_id, {**kwargs, **extra})
    except EnvError:  # not a MuJoCo env: no width, height or camera arguments
        return make_env(env_id, {**kwargs, "render_mode": "rgb_array"})


def _frame(env: Any, size: tuple[int, int]) -> np.ndarray:
    try:
        frame = env.render()
    except Exception as e:
        backend = os.environ.get("MUJOCO_GL", "unset")
        raise UserError(
            f"cannot render {env.spec.id if env.spec else env} offscreen "
            f"(MUJOCO_GL={backend}): {type(e).__name__}: {e}"
        ) from None
    if frame is None:
        raise UserError(f"{env.spec.id if env.spec else env} returned no rgb_array frame")
    frame = np.ascontiguousarray(frame[..., :3], dtype=np.uint8)
    if (frame.shape[1], frame.shape[0]) != size:
        from PIL import Image

        frame = np.asarray(Image.fromarray(frame).resize(size, Image.Resampling.BILINEAR))
    return frame


@torch.no_grad()
def record_video(
    actor: Actor,
    env: Any,
    path: str | Path,
    seed: int,
    max_frames: int = 1000,
    fps: float | None = None,
    size: tuple[int, int] | None = None,
) -> dict[str, Any]:
    """Render one deterministic episode of ``env`` (reset with ``seed``; an ``rgb_array`` env)
    into ``path``: the frame after the reset and one per step, at most ``max_frames``.

    Returns:
        ``path``, ``frames``, ``size`` (width, height), ``fps``, ``steps``, ``return`` and
        ``cut`` (whether ``max_frames`` ended the recording before the episode ended).
    """
    path = Path(path)
    size = size or DEFAULT_VIDEO_SIZE[video_format(path)]
    fps = float(fps or env.metadata.get("render_fps") or 30)
    device = actor.action_scale.device
    generator = torch.Generator(device).manual_seed(seed)
    obs, _ = env.reset(seed=seed)
    first = _frame(env, size)  # a rendering failure surfaces before the file is created
    writer = _VideoWriter(path, fps)
    frames, steps, ret, done = 1, 0, 0.0, False
    try:
        writer.append(first)
        while frames < max_frames:
            x = torch.as_tensor(np.asarray(obs, dtype=np.float32), device=device).unsqueeze(0)
            obs, r, terminated, truncated, _ = env.step(actor(x, generator)[0].cpu().numpy())
            steps, ret = steps + 1, ret + float(r)
            writer.append(_frame(env, size))
            frames += 1
            if terminated or truncated:
                done = True
                break
    finally:
        writer.close()
    return {
        "path": str(path),
        "frames": frames,
        "size": size,
        "fps": fps,
        "steps": steps,
        "return": ret,
        "cut": not done,
    }


# --------------------------------------------------------------------------- spike raster


@dataclass
class SpikeRecord:
    """What :func:`record_spikes` saw: per population ``[steps * T, N]`` spikes (bool)."""

    names: list[str]
    spikes: list[np.ndarray]
    actions: np.ndarray
    """``[steps, A]``."""
    time_steps: int
    """``T``, spiking time steps per env step."""
    episode_return: float
    terminated: bool

    @property
    def steps(self) -> int:
        return int(self.actions.shape[0])

    def firing_rates(self) -> list[float]:
        """Mean spikes per neuron and time step, per population."""
        return [float(s.mean()) if s.size else 0.0 for s in self.spikes]


def spiking_actor(actor: Actor, what: str) -> PopSpikingActor:
    """``actor`` if it is a PopSAN actor, else a :class:`CheckpointError` saying ``what``
    needs one."""
    if not isinstance(actor, PopSpikingActor):
        raise CheckpointError(
            f"{what} needs a spiking (PopSAN) actor; this checkpoint holds an "
            f"{type(actor).__name__} (actor.kind: mlp), which has no spikes"
        )
    return actor


def population_names(actor: PopSpikingActor) -> list[str]:
    n_hidden = len(actor.cfg.hidden_sizes)
    return ["encoder", *(f"hidden {i + 1}" for i in range(n_hidden)), "output (decoder)"]


@torch.no_grad()
def record_spikes(actor: Actor, env: Any, seed: int, steps: int = 300) -> SpikeRecord:
    """Run the deterministic policy on one episode of ``env`` (reset with ``seed``) for at
    most ``steps`` env steps, keeping every population's spikes and the actions taken (the
    actions are decoded from the very spikes recorded)."""
    actor = spiking_actor(actor, "a spike raster")
    device = actor.action_scale.device
    generator = torch.Generator(device).manual_seed(seed)
    obs, _ = env.reset(seed=seed)
    trains: list[list[np.ndarray]] = []
    actions, ret, terminated = [], 0.0, False
    for _ in range(steps):
        x = torch.as_tensor(np.asarray(obs, dtype=np.float32), device=device).unsqueeze(0)
        spikes = actor.spike_trains(x, generator)  # each [T, 1, N]
        action = actor.decode(spikes[-1])[0].cpu().numpy()
        trains.append([s[:, 0].cpu().numpy() > 0.5 for s in spikes])
        actions.append(action)
        obs, r, term, trunc, _ = env.step(action)
        ret += float(r)
        if term or trunc:
            terminated = bool(term)
            break
    return SpikeRecord(
        names=population_names(actor),
        spikes=[np.concatenate(p, axis=0) for p in zip(*trains, strict=True)],
        actions=np.stack(actions),
        time_steps=actor.cfg.spike_ts,
        episode_return=ret,
        terminated=terminated,
    )


def _shown(n: int, max_neurons: int) -> np.ndarray:
    """Indices of the neurons drawn: all, or ``max_neurons`` evenly spaced ones."""
    if n <= max_neurons:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, max_neurons).round().astype(int))


def raster_layout(record: SpikeRecord, max_neurons: int = DEFAULT_MAX_NEURONS) -> list[float]:
    """Panel heights in inches: one per population (by neurons drawn), then the actions."""
    heights = [0.45 + 2.6 * min(s.shape[1], max_neurons) / 256 for s in record.spikes]
    return [*heights, 1.7]


def plot_raster(
    record: SpikeRecord,
    path: str | Path,
    title: str = "",
    max_neurons: int = DEFAULT_MAX_NEURONS,
    width: float = 12.0,
    dpi: int = 100,
) -> dict[str, Any]:
    """Draw ``record``: a panel per population (neurons x time, each spike a dot, titled with
    the population's firing rate), the action trace beneath, env steps on the x axis.

    Returns:
        ``path``, ``size`` (pixels, width x height), ``titles`` (the panels').
    """
    import_extra("matplotlib", "--raster", "report")
    from matplotlib.figure import Figure

    path = Path(path)
    if path.suffix.lower() not in RASTER_FORMATS:
        raise UserError(f"--raster {path}: the file must end in .png, .svg or .pdf")
    heights = raster_layout(record, max_neurons)
    top, bottom = 0.75, 0.55  # inches for the figure title and the x label
    fig_h = sum(heights) + 0.45 * (len(heights) - 1) + top + bottom
    size = (round(width * dpi), round(fig_h * dpi))
    width, fig_h = size[0] / dpi, size[1] / dpi  # whole pixels: the file has exactly `size`
    fig = Figure(figsize=(width, fig_h), dpi=dpi)
    grid = fig.add_gridspec(
        len(heights),
        1,
        height_ratios=heights,
        left=0.07,
        right=0.93,
        top=1 - top / fig_h,
        bottom=bottom / fig_h,
        hspace=0.45 * len(heights) / sum(heights),
    )
    t_steps, steps = record.time_steps, record.steps
    titles = []
    axes = []
    for i, (name, spikes, rate) in enumerate(
        zip(record.names, record.spikes, record.firing_rates(), strict=True)
    ):
        ax = fig.add_subplot(grid[i], sharex=axes[0] if axes else None)
        axes.append(ax)
        n = spikes.shape[1]
        idx = _shown(n, max_neurons)
        t, j = np.nonzero(spikes[:, idx])
        # a square dot per spike, as large as a time bin and a neuron row allow (1-4 px)
        px = min(0.86 * width * dpi / max(steps * t_steps, 1), heights[i] * dpi / len(idx))
        side = float(np.clip(0.8 * px, 1.0, 4.0)) * 72 / dpi  # in points
        ax.scatter((t + 0.5) / t_steps, j, s=side**2, marker="s", c="black", linewidths=0)
        ax.set_ylim(len(idx) - 0.5, -0.5)
        ax.set_ylabel("neuron")
        shown = f", {len(idx)} of them drawn (evenly spaced)" if len(idx) < n else ""
        titles.append(f"{name}: {n} neurons{shown}; firing rate {rate:.1%}")
        ax.set_title(titles[-1], fontsize=10, loc="left")
        ax.tick_params(labelbottom=False)
    ax = fig.add_subplot(grid[-1], sharex=axes[0])
    x = np.arange(steps + 1)
    for a in range(record.actions.shape[1]):
        ax.stairs(record.actions[:, a], x, label=f"a{a}", linewidth=1.0)
    ax.set_xlim(0, steps)
    if steps * t_steps <= 600:  # few enough to mark every spiking time step
        from matplotlib.ticker import MultipleLocator

        ax.xaxis.set_minor_locator(MultipleLocator(1 / t_steps))
    ax.set_ylabel("action")
    ax.set_xlabel(f"env step ({t_steps} spiking time steps each)")
    if record.actions.shape[1] <= 12:
        ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8, frameon=False)
    ax.set_title("actions (decoded from the output population)", fontsize=10, loc="left")
    if title:
        fig.suptitle(title, x=0.07, y=1 - 0.25 / fig_h, ha="left", fontsize=12)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    return {
        "path": str(path),
        "size": size,
        "titles": titles,
    }
