"""One run of a sweep: run-directory states, the stored-config check and the run's task.

:func:`run_one` is what a sweep's Ray task executes: it skips a finished run, resumes one with a
training state, moves aside one that crashed before its first training-state checkpoint and
starts afresh, and refuses a run directory made with another config.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
import traceback
from pathlib import Path
from typing import Any

import yaml

from spiking_dreamer.config import KEY_RULES, RUN_SETTINGS, ConfigError
from spiking_dreamer.config_loading import config_from_dict, flatten_keys, load_yaml
from spiking_dreamer.files import atomic_write_json, trained_all_steps
from spiking_dreamer.sweep.plan import RunSpec, SweepError

# keys that may differ between a run directory's stored config and the sweep's without making
# the run a different experiment: the run settings a resume takes from the sweep, and the device
# (a resume keeps the stored one; loading refuses a state saved on another kind of device)
_IGNORED_KEYS = tuple(k for k, r in KEY_RULES.items() if not r.experiment)


# ----------------------------------------------------------------------------- run directories


def read_json(path: Path) -> Any:
    """Parsed JSON, or None when the file is missing or unreadable."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def latest_step(run_dir: Path) -> int | None:
    """The env step of the last complete record in ``metrics.jsonl`` (reads only its tail)."""
    path = run_dir / "metrics.jsonl"
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 8192))
            tail = f.read().decode("utf-8", errors="replace")
    except OSError:
        return None
    for line in reversed(tail.splitlines()):
        try:
            return int(json.loads(line)["step"])
        except (ValueError, KeyError, TypeError):
            continue
    return None


def run_dir_state(run_dir: Path, total_steps: int) -> str:
    """``new`` (missing or empty), ``done`` (summary.json with every step), ``resumable``
    (a training state to continue from) or ``crashed`` (files but no training state)."""
    if not run_dir.is_dir() or not any(run_dir.iterdir()):
        return "new"
    if trained_all_steps(run_dir, total_steps):
        return "done"
    from spiking_dreamer.training.checkpoint import has_training_state

    if has_training_state(run_dir):
        return "resumable"
    return "crashed"


def config_differences(stored: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    """Keys (``section.key: stored vs wanted``) whose values differ, ignoring ``log.*``,
    ``train.threads``, ``train.compile`` and ``train.device``."""
    out = []
    for section in sorted(set(stored) | set(wanted)):
        a, b = stored.get(section, {}), wanted.get(section, {})
        for key in sorted(set(a) | set(b)):
            full = f"{section}.{key}"
            if full in _IGNORED_KEYS:
                continue
            if a.get(key) != b.get(key):
                out.append(f"{full}: {a.get(key)!r} vs {b.get(key)!r}")
    return out


def stored_config_differences(run_dir: Path, cfg: dict[str, Any]) -> list[str]:
    """How ``run_dir/config.yaml`` differs from the sweep's config ``cfg`` for this run
    (:func:`config_differences`); a SweepError when it cannot be read."""
    try:
        stored = config_from_dict(load_yaml((run_dir / "config.yaml").read_text()))
    except (OSError, ValueError, yaml.YAMLError, ConfigError) as e:
        raise SweepError(f"{run_dir}: cannot read its config.yaml ({e})") from None
    return config_differences(stored.to_dict(), cfg)


def check_stored_config(run_dir: Path, cfg: dict[str, Any]) -> None:
    """Raise SweepError when ``run_dir/config.yaml`` is not the sweep's config for this run."""
    diff = stored_config_differences(run_dir, cfg)
    if diff:
        raise SweepError(
            f"{run_dir} was made with another config ({'; '.join(diff[:5])}"
            f"{'; ...' if len(diff) > 5 else ''}); use another --exp-dir or move the run away"
        )


def move_aside(run_dir: Path) -> Path:
    """Rename ``run_dir`` to the first free ``<run_dir>.failed-<n>`` (n = 1, 2, ...)."""
    n = 1
    while (target := run_dir.with_name(f"{run_dir.name}.failed-{n}")).exists():
        n += 1
    run_dir.rename(target)
    return target


# ----------------------------------------------------------------------------- the task


def _error_text(exc: BaseException, limit: int = 2000) -> str:
    """``Type: message`` and the tail of the traceback, at most ``limit`` characters."""
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    head = f"{type(exc).__name__}: {exc}"
    tail = tb[-(limit - len(head) - 20) :] if len(tb) > limit - len(head) else tb
    return f"{head}\n--- traceback (tail) ---\n{tail}"[:limit]


def run_one(
    spec: RunSpec,
    threads: int,
    status_file: str | None = None,
    session: str = "",
    log_file: str | None = None,
    wandb_group: str | None = None,
) -> dict[str, Any]:
    """Train (or skip, or resume) one run; what a sweep's Ray task executes.

    Never raises for a failing run: returns ``{"status": "failed", "error": ...}`` instead.
    Status ``done`` means every step is trained; ``stopped`` that the run saved its training
    state early (SIGINT/SIGTERM) and can be resumed.
    """
    import torch

    from spiking_dreamer.training.preflight import check_wandb
    from spiking_dreamer.training.run_dir import lock_run_dir
    from spiking_dreamer.training.trainer import Trainer

    run_dir = spec.run_dir
    result: dict[str, Any] = {"name": spec.name, "status": "failed", "steps": None, "error": None}
    result.update(final_return=None, action=None, host=socket.gethostname())
    if status_file:
        info = {"session": session, "host": socket.gethostname(), "pid": os.getpid()}
        atomic_write_json(Path(status_file), {**info, "started": time.time()})
    for key, value in (("WANDB_RUN_GROUP", wandb_group), ("WANDB_JOB_TYPE", spec.arm)):
        if wandb_group:
            os.environ[key] = str(value)
        else:
            os.environ.pop(key, None)
    log = Path(log_file).open("a") if log_file else None  # noqa: SIM115 (closed below)
    trainer = None
    try:
        with contextlib.ExitStack() as stack:
            if log is not None:
                stack.enter_context(contextlib.redirect_stdout(log))
                stack.enter_context(contextlib.redirect_stderr(log))
            torch.set_num_threads(threads)
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
            state = run_dir_state(run_dir, spec.total_steps)
            print(f"=== {stamp} {spec.name} on {socket.gethostname()} pid {os.getpid()}: {state}")
            if state == "done":
                check_stored_config(run_dir, spec.cfg)
                summary = read_json(run_dir / "summary.json")
                result.update(status="done", action="skipped", steps=summary["steps"])
                result["final_return"] = summary.get("final_return")
                return result
            if state == "resumable":
                check_stored_config(run_dir, spec.cfg)
                settings = flatten_keys(spec.cfg)
                settings = {k: v for k, v in settings.items() if k in RUN_SETTINGS}
                trainer = Trainer.resume(run_dir, settings)  # this sweep's logging and threads
                result["action"] = f"resumed at step {trainer.step}"
            else:
                cfg = config_from_dict(spec.cfg, f"sweep run {spec.name}")
                check_wandb(cfg.log)  # this worker's W&B key, before the directory exists
                if state == "crashed":  # unless a trainer still holds it (RunDirError)
                    with contextlib.closing(lock_run_dir(run_dir)):
                        moved = move_aside(run_dir)
                    print(f"{run_dir} has no training state: moved to {moved}, starting afresh")
                    result["action"] = f"restarted (old directory moved to {moved.name})"
                else:
                    result["action"] = "started"
                trainer = Trainer(cfg, run_dir)
            print(result["action"])
            summary = trainer.run()
            trainer = None  # run() closed it
            result.update(steps=summary.steps, final_return=summary.final_return)
            result["status"] = "done" if summary.steps >= spec.total_steps else "stopped"
            print(f"{result['status']} at step {summary.steps}")
    except Exception as e:
        result["error"] = _error_text(e)
        result["steps"] = latest_step(run_dir)
        if trainer is not None:  # free its files and envs: the worker process is reused
            with contextlib.suppress(Exception):
                trainer.close()
        if log is not None:
            print(result["error"], file=log)
    finally:
        if log is not None:
            log.close()
        if status_file:
            with contextlib.suppress(OSError):
                Path(status_file).unlink()
    return result
