"""Run directories: where a run lives, and how a stopped run is found again or forked.

A run directory holds ``config.yaml``, ``metrics.jsonl``, ``eval.jsonl``, ``tb/``,
``summary.json``, ``sessions.jsonl`` (the code each segment of the run ran: one line per start
or resume) and ``checkpoints/`` (``state.pt`` and ``state.pt.prev``: the two newest full
training states; ``best.pt`` and ``last.pt``: actor checkpoints). A fork also has ``fork.json``.
"""

from __future__ import annotations

import errno
import fcntl
import json
import math
import os
import shutil
import socket
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

import torch

from spiking_dreamer.config import FORK_KEYS, Config
from spiking_dreamer.config_loading import (
    apply_overrides,
    config_from_dict,
    flatten_keys,
    save_config,
    with_run_settings,
)
from spiking_dreamer.envs import check_env
from spiking_dreamer.errors import CheckpointError, ConfigError, OutputPathError, RunDirError
from spiking_dreamer.files import check_output_dir, nearest_existing
from spiking_dreamer.provenance import git_commit, versions
from spiking_dreamer.training.checkpoint import (
    has_training_state,
    load_state_file,
    read_state,
    save_state_file,
)
from spiking_dreamer.training.preflight import check_device, check_memory, check_wandb
from spiking_dreamer.training.seeding import saved_on


def default_run_dir(cfg: Config) -> Path:
    """``<log.run_root>/<env>__<arm>__s<seed>__<date-time>``."""
    arm = "dreaming" if cfg.uses_model else "baseline"
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path(cfg.log.run_root) / f"{cfg.env.id}__{arm}__s{cfg.train.seed}__{stamp}"


def state_path(run_dir: Path) -> Path:
    return run_dir / "checkpoints" / "state.pt"


def _check_new(run_dir: Path) -> None:
    if run_dir.exists() and not run_dir.is_dir():
        raise RunDirError(f"run directory {run_dir} exists and is not a directory")
    if run_dir.exists() and any(run_dir.iterdir()):
        if has_training_state(run_dir):
            raise RunDirError(
                f"run directory {run_dir} holds a run with a saved training state: continue "
                f"it with --resume {run_dir}, or choose another --run-dir"
            )
        if (run_dir / "config.yaml").is_file():
            raise RunDirError(
                f"run directory {run_dir} holds a run that stopped before its first "
                "training-state save, so it cannot be resumed; to start over, delete it "
                f"(rm -r {run_dir}) or choose another --run-dir"
            )
        raise RunDirError(f"run directory {run_dir} is not empty; choose another --run-dir")


def check_new_run_dir(run_dir: Path, need_bytes: int) -> None:
    """Refuse, creating nothing, a run directory that is not new (or empty), cannot be created
    or written, or whose disk has less than ``need_bytes`` free."""
    run_dir = Path(run_dir)
    _check_new(run_dir)
    try:
        check_output_dir(run_dir, f"cannot write to run directory {run_dir}")
    except OutputPathError as e:
        raise RunDirError(str(e)) from None
    free = shutil.disk_usage(nearest_existing(run_dir)).free
    if free < need_bytes:
        raise RunDirError(
            f"{run_dir}: {free / 2**30:.2f} GiB free, but the replay buffer and its checkpoints "
            f"need about {need_bytes / 2**30:.2f} GiB"
        )


def check_new_run(cfg: Config, run_dir: Path | None) -> tuple[int, int]:
    """Check a new run before anything is created: its device, its env with ``env.kwargs``
    (made, reset and stepped once), the memory it needs and, when given, its run directory
    (new, writable, with disk space for the buffers' checkpoints). Returns the observation and
    action sizes.

    Raises:
        UserError: the first problem found (:class:`ConfigError`, :class:`EnvError`,
            :class:`RunDirError`, ...), naming the key or path.
    """
    check_device(cfg.train.device)
    check_wandb(cfg.log)
    obs_dim, act_dim = check_env(cfg.env.id, cfg.env.kwargs)
    check_memory(cfg, obs_dim, act_dim)
    if run_dir is not None:
        capacity = min(cfg.train.replay_size, cfg.train.total_steps)
        dreams = cfg.dreaming.buffer_size if cfg.uses_model else 0
        check_new_run_dir(run_dir, storage_estimate(obs_dim, act_dim, capacity + dreams))
    return obs_dim, act_dim


def prepare_run_dir(run_dir: Path, cfg: Config, need_bytes: int) -> None:
    """Create a new (or empty) run directory with its resolved ``config.yaml``, after checking
    that it can be written and that ``need_bytes`` fit on its disk."""
    check_new_run_dir(run_dir, need_bytes)
    try:
        (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
        save_config(cfg, run_dir / "config.yaml")
    except OSError as e:
        raise RunDirError(f"cannot write to run directory {run_dir}: {e}") from None


def append_session(run_dir: Path, step: int) -> None:
    """Record in ``sessions.jsonl`` the code a segment of the run starts with at env step
    ``step`` (0 for a new run): commit (``-dirty`` with tracked changes), date, host, versions.
    A run resumed under other code lists every commit it ran."""
    record = {
        "from_step": step,
        "commit": git_commit(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "host": socket.gethostname(),
        "versions": versions(),
    }
    try:
        with (run_dir / "sessions.jsonl").open("a") as f:
            f.write(json.dumps(record) + "\n")
    except OSError as e:
        raise RunDirError(f"cannot write to run directory {run_dir}: {e}") from None


def lock_run_dir(run_dir: Path) -> IO[str]:
    """Hold ``run_dir/.lock`` until the returned file is closed or the process ends, so that
    two processes never train in one run directory at once (e.g. a run resumed twice).

    A file system without locks (some network mounts) gives a warning and no lock.

    Raises:
        RunDirError: another process holds it.
    """
    f = (run_dir / ".lock").open("w")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        if e.errno not in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES):
            print(f"warning: {run_dir} cannot be locked here ({e.strerror}); training unlocked")
            return f
        f.close()
        raise RunDirError(
            f"another process is training in {run_dir}: wait for it to end, or stop it first"
        ) from None
    return f


def storage_estimate(obs_dim: int, act_dim: int, transitions: int) -> int:
    """Bytes the training-state checkpoints take at most while one is saved (the new one
    written beside the current one and its previous copy), for buffers holding
    ``transitions`` in all (a dream transition's provenance, 20 bytes, included)."""
    per_transition = 4 * (2 * obs_dim + act_dim + 2) + 1 + 20
    return 3 * transitions * per_transition


def resume_state(
    run_dir: Path, settings: Mapping[str, Any] | None = None
) -> tuple[Config, dict[str, Any], Path]:
    """The stored config (with the dotted run ``settings`` applied), the newest verifiable
    training state of the run in ``run_dir`` and the file it came from."""
    if not run_dir.is_dir():
        raise RunDirError(f"no run directory {run_dir} to resume")
    if not has_training_state(run_dir):
        if (run_dir / "config.yaml").is_file():
            raise RunDirError(
                f"{run_dir} has no saved training state: the run stopped before its first one "
                "(a state is saved every train.checkpoint_every env steps and when Ctrl-C stops "
                "a run at the end of its episode; a second Ctrl-C stops without saving), so it "
                f"cannot be resumed; to start over, delete it (rm -r {run_dir}) and run the "
                "same train command again"
            )
        raise RunDirError(
            f"{run_dir} is not a run directory (no config.yaml, no checkpoints/state.pt)"
        )
    state, used, problems = load_state_file(state_path(run_dir))
    for problem in problems:
        print(f"warning: {problem}; using {used}")
    stored = with_run_settings(state["config"], settings or {})
    cfg = config_from_dict(stored, f"{used} (stored config)")
    check_total_steps(cfg, state)
    check_memory(cfg, state["env"]["obs_dim"], state["env"]["act_dim"])
    check_wandb(cfg.log)
    return cfg, state, used


def set_aside_unusable_state(run_dir: Path, used: Path) -> Path | None:
    """After a resume from ``state.pt.prev``, rename an unusable ``state.pt`` to
    ``state.pt.corrupt`` (kept for inspection): the next save would otherwise rotate it into
    ``.prev`` and drop the good state there. Returns the new path, or None if nothing moved.
    Call it only while holding the run's lock."""
    newest = state_path(run_dir)
    if used == newest or not newest.exists():
        return None
    aside = newest.with_name(newest.name + ".corrupt")
    os.replace(newest, aside)
    return aside


def check_state_fits(
    state: Mapping[str, Any], env: tuple[str, int, int], dreaming: bool, device: torch.device
) -> None:
    """Refuse a training state saved for another env ``(id, obs_dim, act_dim)``, another
    dreaming switch, or another kind of device than ``device``."""
    saved = state["env"]
    if (saved["id"], saved["obs_dim"], saved["act_dim"]) != env:
        raise CheckpointError(
            f"training state is for {saved['id']} (obs {saved['obs_dim']}, act "
            f"{saved['act_dim']}), this run is {env[0]} (obs {env[1]}, act {env[2]})"
        )
    if (state["dreaming"] is not None) != dreaming:
        raise CheckpointError("training state and config disagree on dreaming")
    if saved_on(state["rng"]) != device.type:
        raise CheckpointError(
            f"training state was saved on {saved_on(state['rng'])} and this run is on "
            f"{device}: its random generators cannot continue on another kind of device; "
            f"continue it on {saved_on(state['rng'])} (train.device)"
        )


def check_total_steps(cfg: Config, state: Mapping[str, Any]) -> None:
    """A resume or fork may grow a run (``train.total_steps`` up: the replay buffer grows with
    it, exactly; see :meth:`ReplayBuffer.load_state_dict`), not cut it below its step, nor
    shrink its buffer."""
    step, saved = state["counters"]["step"], state["buffer"]["capacity"]
    if cfg.train.total_steps < step:
        raise ConfigError(
            f"train.total_steps={cfg.train.total_steps} is below the saved state's step {step}"
        )
    cap = min(cfg.train.replay_size, cfg.train.total_steps)
    if cap < saved:
        raise ConfigError(
            f"train.total_steps={cfg.train.total_steps} gives a replay buffer of {cap}, but "
            f"the saved one holds {saved} (the capacity is "
            "min(train.replay_size, train.total_steps)): it would have to drop transitions"
        )


def state_at(path: Path, step: int | None) -> tuple[dict[str, Any], Path]:
    """The newest verifiable training state at ``path`` (or its ``.prev``), or the one saved at
    env step ``step``."""
    if step is None:
        state, used, _ = load_state_file(path)
        return state, used
    seen = []
    for candidate in (path, path.with_name(path.name + ".prev")):
        if candidate.exists():
            try:
                state = read_state(candidate)
            except CheckpointError as e:
                seen.append(str(e))
                continue
            if state["counters"]["step"] == step:
                return state, candidate
            seen.append(f"{candidate.name}: step {state['counters']['step']}")
    raise CheckpointError(f"no training state at step {step} in {path.parent} ({'; '.join(seen)})")


def fork_state(
    parent_dir: Path, run_dir: Path, overrides: list[str], step: int | None = None
) -> tuple[Config, dict[str, Any]]:
    """Set up ``run_dir`` as a fork of ``parent_dir``'s training state (the newest, or the one
    saved at env step ``step``) with the settings in ``overrides`` changed; returns the fork's
    config and the state it continues from.

    Only keys that shape no saved tensor may change (:data:`~spiking_dreamer.config.FORK_KEYS`).
    The parent's logs up to the fork step are copied, so the fork's curves start at step 0;
    the fork gets its own W&B run. Changing ``dreaming.threshold`` also resets the adaptive
    threshold to it.
    """
    if run_dir.resolve().is_relative_to(parent_dir.resolve()):
        raise RunDirError(f"--run-dir {run_dir} lies inside the parent run {parent_dir}")
    state, used = state_at(state_path(parent_dir), step)
    old = state["config"]
    new = config_from_dict(apply_overrides(old, overrides), "--set overrides of the fork")
    # the parent's config as it loads now: keys added since it was saved take their defaults
    before = flatten_keys(config_from_dict(old, f"{parent_dir} (stored config)").to_dict())
    changed = sorted(k for k, v in flatten_keys(new.to_dict()).items() if before.get(k) != v)
    if state["dreaming"] is None:
        idle = [k for k in changed if k.startswith(("dreaming.", "world_model."))]
        if idle:
            raise ConfigError(
                f"{parent_dir} is a --no-dreaming run: {', '.join(idle)} would change nothing"
            )
    if "train.device" in changed:
        raise ConfigError(
            "a fork keeps its parent's train.device: the random generators' states cannot "
            "move between a CPU and a GPU"
        )
    frozen = [k for k in changed if k not in FORK_KEYS]
    if frozen:
        raise ConfigError(
            f"a fork cannot change {', '.join(frozen)}: it shapes the saved networks, "
            f"buffers or optimisers; changeable: {', '.join(FORK_KEYS)}"
        )
    check_total_steps(new, state)
    check_memory(new, state["env"]["obs_dim"], state["env"]["act_dim"])
    check_wandb(new.log)
    capacity = min(new.train.replay_size, new.train.total_steps)
    dreams = new.dreaming.buffer_size if state["dreaming"] is not None else 0
    obs_dim, act_dim = state["env"]["obs_dim"], state["env"]["act_dim"]
    check_new_run_dir(run_dir, storage_estimate(obs_dim, act_dim, capacity + dreams))
    (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    for name in ("metrics.jsonl", "eval.jsonl"):
        if (parent_dir / name).exists():
            shutil.copy2(parent_dir / name, run_dir / name)
    if (parent_dir / "tb").is_dir():
        shutil.copytree(parent_dir / "tb", run_dir / "tb")
    state["config"] = new.to_dict()
    state["logger"]["wandb_id"] = None
    state["counters"]["best_return"] = -math.inf  # best.pt starts afresh, so does its return
    if "dreaming.threshold" in changed and state["dreaming"] is not None:
        state["dreaming"]["threshold"] = new.dreaming.threshold
    save_config(new, run_dir / "config.yaml")
    record = {"parent": str(parent_dir), "state": str(used), "step": state["counters"]["step"]}
    (run_dir / "fork.json").write_text(json.dumps({**record, "changed": changed}) + "\n")
    save_state_file(state, state_path(run_dir))
    return new, state
