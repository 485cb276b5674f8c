"""Actor checkpoints: plain tensors and values only, loadable with ``weights_only=True``.

An actor checkpoint holds everything evaluation needs: the actor's weights with its observation
normaliser statistics, the fully resolved config, the environment's id, sizes and action bounds,
the training step and the evaluation return, and the library versions that wrote it.
"""

from __future__ import annotations

import hashlib
import io
import pickle
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch.torch_version import TorchVersion

from spiking_dreamer import __version__
from spiking_dreamer.agent import Actor, build_policy
from spiking_dreamer.config import Config, ConfigError
from spiking_dreamer.config_loading import config_from_dict
from spiking_dreamer.errors import CheckpointError
from spiking_dreamer.files import atomic_write
from spiking_dreamer.provenance import versions

ACTOR_FORMAT = "spiking-dreamer/actor"
STATE_FORMAT = "spiking-dreamer/training-state"
FORMAT_VERSION = 1


def atomic_torch_save(obj: Any, path: Path, keep_previous: bool = False) -> None:
    """``torch.save(obj)`` to ``path`` atomically (:func:`~spiking_dreamer.files.atomic_write`):
    readers see either the old file or the complete new one. With ``keep_previous`` the old
    file is first renamed to ``<name>.prev``."""
    atomic_write(path, lambda tmp: torch.save(obj, tmp), keep_previous=keep_previous)


def actor_checkpoint(
    actor: Actor, cfg: Config, env_id: str, step: int, eval_return: float
) -> dict[str, Any]:
    """The checkpoint dict of ``actor`` (tensors moved to the CPU)."""
    low = actor.action_bias - actor.action_scale
    high = actor.action_bias + actor.action_scale
    return {
        "format": ACTOR_FORMAT,
        "format_version": FORMAT_VERSION,
        "versions": versions(),
        "config": cfg.to_dict(),
        "env": {
            "id": env_id,
            "obs_dim": actor.obs_dim,
            "act_dim": actor.act_dim,
            "action_low": low.cpu().tolist(),
            "action_high": high.cpu().tolist(),
        },
        "step": step,
        "eval_return": eval_return,
        "actor": {k: v.detach().cpu() for k, v in actor.state_dict().items()},
    }


def _refused(path: Path, e: pickle.UnpicklingError) -> CheckpointError:
    """Why a pickle was refused, without torch's advice to retry with ``weights_only=False``
    (for an untrusted file, that retry is the attack)."""
    wanted = re.search(r"GLOBAL ([\w.]+)", str(e))
    what = f" (it asks for {wanted.group(1)})" if wanted else ""
    return CheckpointError(
        f"{path}: refused: the file holds pickled Python objects beyond tensors and plain "
        f"values{what}, and unpickling such objects can run arbitrary code. spiking-dreamer "
        "never writes such files; nothing in this one was loaded or run"
    )


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint dict safely (``weights_only=True``: no arbitrary objects are built)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        # TorchVersion is a str subclass; checkpoints of 0.1.0 pre-releases stored one
        with torch.serialization.safe_globals([TorchVersion]):
            data = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise _refused(path, e) from None
    except Exception as e:  # a corrupt file can fail anywhere inside the unpickler
        raise CheckpointError(f"{path}: unreadable or truncated checkpoint ({e})") from None
    if not isinstance(data, dict) or "format" not in data:
        raise CheckpointError(f"{path}: not a spiking-dreamer checkpoint")
    return data


def load_actor(
    path: str | Path, device: torch.device | str = "cpu"
) -> tuple[Actor, dict[str, Any]]:
    """Rebuild the actor stored in an actor checkpoint; returns it (in eval mode) and the dict."""
    data = read_checkpoint(path)
    if data["format"] != ACTOR_FORMAT:
        raise CheckpointError(
            f"{path}: is a {data['format']!r} checkpoint, not an actor checkpoint"
        )
    if data.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: actor checkpoint format {data.get('format_version')} is not supported by "
            f"spiking-dreamer {__version__} (format {FORMAT_VERSION})"
        )
    try:
        cfg = config_from_dict(data["config"], f"{path} (stored config)")
    except ConfigError as e:
        raise CheckpointError(str(e)) from None
    env = data["env"]
    low = torch.tensor(env["action_low"], dtype=torch.float32)
    high = torch.tensor(env["action_high"], dtype=torch.float32)
    actor = build_policy(env["obs_dim"], low, high, cfg)  # a SAC run's: stochastic
    try:
        actor.load_state_dict(data["actor"])
    except RuntimeError as e:
        raise CheckpointError(f"{path}: actor weights do not match its config: {e}") from None
    return actor.to(device).eval(), data


def save_state_file(state: dict[str, Any], path: Path) -> None:
    """Write a training-state checkpoint with an embedded SHA-256 of its payload.

    The new file is written next to ``path`` and fsynced, the current ``path`` becomes
    ``<name>.prev`` and the new file takes its place (both renames are atomic), so a crash at
    any point leaves at least one complete, verifiable checkpoint.
    """
    buf = io.BytesIO()
    torch.save(state, buf)
    payload = buf.getvalue()
    wrapped = {
        "format": STATE_FORMAT,
        "sha256": hashlib.sha256(payload).hexdigest(),
        "payload": payload,
    }
    atomic_torch_save(wrapped, path, keep_previous=True)


def read_state(path: Path) -> dict[str, Any]:
    """One training-state file, verified (format, checksum, plain tensors only)."""
    data = read_checkpoint(path)
    if data.get("format") != STATE_FORMAT:
        raise CheckpointError(
            f"{path}: is a {data.get('format')!r} checkpoint, not a training state"
        )
    payload = data.get("payload")
    if not isinstance(payload, bytes) or hashlib.sha256(payload).hexdigest() != data.get("sha256"):
        raise CheckpointError(f"{path}: checksum mismatch: the checkpoint is corrupt")
    try:
        state = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise _refused(path, e) from None
    if state.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: training-state format {state.get('format_version')} (spiking-dreamer "
            f"{state.get('versions', {}).get('spiking_dreamer')}) cannot be resumed by "
            f"spiking-dreamer {__version__} (format {FORMAT_VERSION})"
        )
    return state


def has_training_state(run_dir: Path) -> bool:
    """Whether ``run_dir`` holds a training state to resume (``state.pt`` or, after a crash
    between the two renames of a save, only ``state.pt.prev``)."""
    ckpt = Path(run_dir) / "checkpoints"
    return (ckpt / "state.pt").exists() or (ckpt / "state.pt.prev").exists()


def load_state_file(path: Path) -> tuple[dict[str, Any], Path, list[str]]:
    """Load the newest verifiable training state: ``path``, else ``<name>.prev``.

    Returns the state, the file it came from and the problems met on the way (a corrupt or
    missing newest file is reported, not fatal, while the previous one is good).
    """
    problems = []
    for candidate in (path, path.with_name(path.name + ".prev")):
        try:
            return read_state(candidate), candidate, problems
        except CheckpointError as e:
            problems.append(str(e))
    raise CheckpointError("no usable training state: " + "; ".join(problems))


def non_finite_modules(modules: Mapping[str, torch.nn.Module]) -> list[str]:
    """Names of the ``modules`` with a NaN or infinite parameter (one device sync): a state
    holding them is never saved."""
    finite = torch.stack(
        [torch.stack([p.isfinite().all() for p in m.parameters()]).all() for m in modules.values()]
    ).tolist()
    return [name for name, ok in zip(modules, finite, strict=True) if not ok]
