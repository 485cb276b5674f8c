"""Multi-seed sweeps: every (config, arm, seed) run of an experiment as a Ray task.

One experiment directory holds everything::

    <exp>/manifest.json            command, commit, date, machine, versions, and every run's status
    <exp>/runs/<stem>__<arm>__s<seed>/   an ordinary run directory (config.yaml, eval.jsonl, ...)
    <exp>/logs/<run>.log           what the run printed (appended on every attempt)
    <exp>/status/<run>.json        written by a task while it runs (host, pid, start time)

Re-running the same command on the same ``--exp-dir`` is safe and is how an interrupted sweep is
continued: a finished run (``summary.json`` with all its steps) is skipped without starting a
task, a run with a training state (``checkpoints/state.pt``) continues exactly with
``Trainer.resume``, a failed run is tried again, and a run directory that crashed before its first
training-state checkpoint is moved aside to ``<run>.failed-<n>`` and started afresh. A run
directory made with another config (other than ``log.*``, ``train.threads``, ``train.compile`` and
``train.device``) is reported as failed rather than mixed into the experiment.

Without ``--address`` a local Ray instance is started (all CPUs, no dashboard); with it the sweep
joins an existing cluster (``ray start --head`` on one machine, ``ray start --address=...`` on the
others). Every node needs this package installed, and the experiment directory must be on a file
system that every node sees at the same path (the tasks write the run directories and the driver
reads them for progress and skipping).

With ``log.wandb=true`` (``--wandb``) each task sets ``WANDB_RUN_GROUP`` to the experiment name
and ``WANDB_JOB_TYPE`` to the arm, so W&B groups a sweep's runs by experiment.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import shlex
import socket
import sys
import time
import traceback
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

import yaml

from spiking_dreamer.config import (
    KEY_RULES,
    RUN_SETTINGS,
    ConfigError,
    config_from_dict,
    flatten_keys,
    load_config,
)
from spiking_dreamer.errors import import_extra
from spiking_dreamer.files import atomic_write
from spiking_dreamer.provenance import git_commit, machine_info, versions
from spiking_dreamer.report.render import fmt_steps

ARMS = ("dreaming", "baseline")
STATUSES = ("pending", "running", "done", "failed")
# keys that may differ between a run directory's stored config and the sweep's without making
# the run a different experiment: the run settings a resume takes from the sweep, and the device
# (a resume keeps the stored one; loading refuses a state saved on another kind of device)
_IGNORED_KEYS = tuple(k for k, r in KEY_RULES.items() if not r.experiment)


class SweepError(ConfigError):
    """Sweep arguments or an experiment directory that cannot be used (CLI exit code 2)."""


# ----------------------------------------------------------------------------- arguments


def parse_seeds(spec: str) -> list[int]:
    """``"0-4"`` -> [0, 1, 2, 3, 4]; ``"0,1,2"``; ``"3"``; ``"0-2,7"``. Order kept, no repeats."""
    seeds: list[int] = []
    for part in spec.split(","):
        part = part.strip()
        lo_s, sep, hi_s = part.partition("-")
        try:
            lo = int(lo_s)
            hi = int(hi_s) if sep else lo
        except ValueError:
            raise SweepError(
                f"--seeds {spec!r}: expected e.g. 0-4, 0,1,2 or 3 (non-negative integers)"
            ) from None
        if lo > hi:
            raise SweepError(f"--seeds {spec!r}: range {part!r} runs backwards")
        seeds.extend(range(lo, hi + 1))
    if len(set(seeds)) != len(seeds):
        raise SweepError(f"--seeds {spec!r}: a seed appears twice")
    return seeds


def parse_arms(spec: str) -> list[str]:
    """``"dreaming,baseline"`` -> ["dreaming", "baseline"]."""
    arms = [a.strip() for a in spec.split(",") if a.strip()]
    bad = [a for a in arms if a not in ARMS]
    if bad or not arms:
        raise SweepError(f"--arms {spec!r}: each arm must be one of {', '.join(ARMS)}")
    if len(set(arms)) != len(arms):
        raise SweepError(f"--arms {spec!r}: an arm appears twice")
    return arms


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """One run of a sweep, with its fully resolved config (validated before anything starts)."""

    name: str
    config: str
    arm: str
    seed: int
    run_dir: Path
    cfg: dict[str, Any]

    @property
    def total_steps(self) -> int:
        return int(self.cfg["train"]["total_steps"])


def run_overrides(overrides: Sequence[str], arm: str, seed: int, threads: int) -> list[str]:
    """The overrides of one run: threads first (a user ``--set train.threads`` wins), then the
    user's, then the run's seed and arm (which always win)."""
    return [
        f"train.threads={threads}",
        *overrides,
        f"train.seed={seed}",
        f"dreaming.enabled={'true' if arm == 'dreaming' else 'false'}",
        "log.progress=false",
    ]


def plan_runs(
    configs: Sequence[str],
    seeds: Sequence[int],
    arms: Sequence[str],
    overrides: Sequence[str],
    exp_dir: Path,
    threads: int = 1,
) -> list[RunSpec]:
    """Every (config, arm, seed) run; loads and validates each config (raises ConfigError)."""
    stems = [Path(c).stem for c in configs]
    if len(set(stems)) != len(stems):
        raise SweepError(f"config file names must differ (run names use them): {list(configs)}")
    runs = []
    for config, stem in zip(configs, stems, strict=True):
        for arm in arms:
            for seed in seeds:
                cfg = load_config(config, run_overrides(overrides, arm, seed, threads))
                name = f"{stem}__{arm}__s{seed}"
                runs.append(
                    RunSpec(name, config, arm, seed, exp_dir / "runs" / name, cfg.to_dict())
                )
    return runs


# ----------------------------------------------------------------------------- run directories


def read_json(path: Path) -> Any:
    """Parsed JSON, or None when the file is missing or unreadable."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def atomic_write_json(data: Any, path: Path) -> None:
    """Write ``data`` as indented JSON to ``path`` atomically (:func:`atomic_write`)."""
    text = json.dumps(data, indent=1) + "\n"
    atomic_write(path, lambda tmp: tmp.write_text(text))


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
    summary = read_json(run_dir / "summary.json")
    if isinstance(summary, dict) and summary.get("steps", -1) >= total_steps:
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


def check_stored_config(run_dir: Path, cfg: dict[str, Any]) -> None:
    """Raise SweepError when ``run_dir/config.yaml`` is not the sweep's config for this run."""
    try:
        stored = config_from_dict(yaml.safe_load((run_dir / "config.yaml").read_text()))
    except (OSError, yaml.YAMLError, ConfigError) as e:
        raise SweepError(f"{run_dir}: cannot read its config.yaml ({e})") from None
    diff = config_differences(stored.to_dict(), cfg)
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

    from spiking_dreamer.training.trainer import Trainer

    run_dir = spec.run_dir
    result: dict[str, Any] = {"name": spec.name, "status": "failed", "steps": None, "error": None}
    result.update(final_return=None, action=None, host=socket.gethostname())
    if status_file:
        info = {"session": session, "host": socket.gethostname(), "pid": os.getpid()}
        atomic_write_json({**info, "started": time.time()}, Path(status_file))
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
                if state == "crashed":
                    moved = move_aside(run_dir)
                    print(f"{run_dir} has no training state: moved to {moved}, starting afresh")
                    result["action"] = f"restarted (old directory moved to {moved.name})"
                else:
                    result["action"] = "started"
                trainer = Trainer(config_from_dict(spec.cfg, f"sweep run {spec.name}"), run_dir)
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


# ----------------------------------------------------------------------------- the driver


def import_ray() -> Any:
    """``ray``, or MissingExtraError naming the extra that installs it."""
    return import_extra("ray", "spiking-dreamer sweep", "sweep")


@contextlib.contextmanager
def _exclusive(exp_dir: Path) -> Iterator[None]:
    """Hold ``<exp>/.sweep.lock`` so that two sweeps never drive one experiment at once."""
    exp_dir.mkdir(parents=True, exist_ok=True)
    with (exp_dir / ".sweep.lock").open("w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise SweepError(f"another sweep is running on {exp_dir}") from None
        yield


class Sweep:
    """The driver: plans runs, submits the unfinished ones as Ray tasks, records progress in
    ``manifest.json`` and prints a status line every ``poll_s`` seconds."""

    def __init__(
        self,
        configs: Sequence[str],
        seeds: Sequence[int],
        arms: Sequence[str],
        exp_dir: str | Path | None = None,
        overrides: Sequence[str] = (),
        cpus_per_run: int = 1,
        gpus_per_run: float = 0.0,
        address: str | None = None,
        num_cpus: int | None = None,
        poll_s: float = 5.0,
        out: TextIO | None = None,
        command: str | None = None,
    ) -> None:
        if not configs:
            raise SweepError("give at least one --config")
        if cpus_per_run < 1:
            raise SweepError("--cpus-per-run must be >= 1")
        if gpus_per_run < 0:
            raise SweepError("--gpus-per-run must be >= 0")
        stamp = time.strftime("%Y%m%d-%H%M%S")
        self.exp_dir = Path(exp_dir or Path("experiments") / stamp).resolve()
        self.name = self.exp_dir.name
        self.configs, self.seeds, self.arms = list(configs), list(seeds), list(arms)
        self.overrides = list(overrides)
        self.cpus_per_run, self.gpus_per_run = cpus_per_run, gpus_per_run
        self.address, self.num_cpus, self.poll_s = address, num_cpus, poll_s
        self.out = out or sys.stderr
        self.command = command or " ".join(shlex.quote(a) for a in sys.argv)
        self.runs = plan_runs(configs, seeds, arms, overrides, self.exp_dir, cpus_per_run)
        self.wandb = any(r.cfg["log"]["wandb"] for r in self.runs)
        self.session = uuid.uuid4().hex
        self.manifest_path = self.exp_dir / "manifest.json"
        self.manifest = self._initial_manifest()

    # -- manifest

    def _initial_manifest(self) -> dict[str, Any]:
        old = read_json(self.manifest_path)
        old = old if isinstance(old, dict) else {}
        date = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        commit = git_commit()
        invocations = [*old.get("invocations", []), {"command": self.command, "date": date}]
        invocations[-1]["commit"] = commit
        entries = {r["name"]: r for r in old.get("runs", []) if isinstance(r, dict)}
        for spec in self.runs:
            entry = entries.get(spec.name, {})
            entries[spec.name] = {
                "name": spec.name,
                "config": spec.config,
                "env_id": spec.cfg["env"]["id"],
                "arm": spec.arm,
                "seed": spec.seed,
                "status": entry.get("status", "pending"),
                "steps": entry.get("steps"),
                "total_steps": spec.total_steps,
                "final_return": entry.get("final_return"),
                "error": entry.get("error"),
                "action": entry.get("action"),
                "run_dir": str(spec.run_dir.relative_to(self.exp_dir)),
                "log": f"logs/{spec.name}.log",
            }
        return {
            "experiment": self.name,
            "command": self.command,
            "commit": commit,
            "date": date,
            "created": old.get("created", date),
            "configs": self.configs,
            "seeds": self.seeds,
            "arms": self.arms,
            "overrides": self.overrides,
            "cpus_per_run": self.cpus_per_run,
            "gpus_per_run": self.gpus_per_run,
            "address": self.address,
            "wandb_group": self.name if self.wandb else None,
            "machine": machine_info(),
            "versions": versions(),
            "ray": old.get("ray"),
            "invocations": invocations,
            "runs": list(entries.values()),
        }

    def entry(self, name: str) -> dict[str, Any]:
        return next(r for r in self.manifest["runs"] if r["name"] == name)

    def save(self) -> None:
        atomic_write_json(self.manifest, self.manifest_path)

    def _print(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    # -- running

    def run(self) -> dict[str, Any]:
        """Run every unfinished run; returns the final manifest. KeyboardInterrupt asks the
        running runs to save their training state and stop (a second one stops at once)."""
        with _exclusive(self.exp_dir):
            for sub in ("runs", "logs", "status"):
                (self.exp_dir / sub).mkdir(parents=True, exist_ok=True)
            todo = self._skip_finished()
            self.save()
            self._print(
                f"experiment {self.exp_dir}: {len(self.runs)} runs, "
                f"{len(self.runs) - len(todo)} already done, {len(todo)} to run"
            )
            if todo:
                self._run_tasks(todo)
            self.save()
        return self.manifest

    def _skip_finished(self) -> list[RunSpec]:
        """Mark runs whose directory holds every step as done, and runs whose directory holds
        another config as failed (no task for either); returns the runs to submit."""
        todo = []
        for spec in self.runs:
            entry = self.entry(spec.name)
            state = run_dir_state(spec.run_dir, spec.total_steps)
            if state in ("done", "resumable"):
                try:
                    check_stored_config(spec.run_dir, spec.cfg)
                except SweepError as e:
                    entry.update(status="failed", error=str(e), action="not run")
                    continue
            if state == "done":
                summary = read_json(spec.run_dir / "summary.json")
                entry.update(status="done", steps=summary["steps"], error=None, action="skipped")
                entry["final_return"] = summary.get("final_return")
            else:
                entry.update(status="pending", error=None)
                todo.append(spec)
        return todo

    def _init_ray(self) -> tuple[Any, bool]:
        ray = import_ray()
        if ray.is_initialized():
            return ray, False
        if self.address:
            ray.init(address=self.address, log_to_driver=False)
        else:
            ray.init(
                num_cpus=self.num_cpus or os.cpu_count(),
                include_dashboard=False,
                log_to_driver=False,
            )
        return ray, True

    def _run_tasks(self, todo: list[RunSpec]) -> None:
        ray, owned = self._init_ray()
        try:
            self.manifest["ray"] = {
                "version": ray.__version__,
                "address": self.address or "local",
                "cluster_resources": ray.cluster_resources(),
            }
            remote = ray.remote(run_one).options(
                num_cpus=self.cpus_per_run, num_gpus=self.gpus_per_run, max_retries=2
            )
            refs = {}
            for spec in todo:
                status = self.exp_dir / "status" / f"{spec.name}.json"
                with contextlib.suppress(OSError):
                    status.unlink()
                ref = remote.remote(
                    spec,
                    self.cpus_per_run,
                    str(status),
                    self.session,
                    str(self.exp_dir / "logs" / f"{spec.name}.log"),
                    self.name if self.wandb else None,
                )
                refs[ref] = spec
            try:
                self._wait(ray, refs)
            except KeyboardInterrupt:
                self._stop(ray, refs)
                raise
        finally:
            self.save()
            if owned:
                ray.shutdown()

    def _wait(self, ray: Any, refs: dict[Any, RunSpec]) -> None:
        last = 0.0
        while refs:
            ready, _ = ray.wait(list(refs), num_returns=1, timeout=self.poll_s)
            if ready:
                rest = [r for r in refs if r not in ready]
                more, _ = ray.wait(rest, num_returns=len(rest), timeout=0) if rest else ([], [])
                for ref in [*ready, *more]:
                    self._record(refs.pop(ref), self._result(ray, ref))
            if time.monotonic() - last >= self.poll_s or not refs:
                self._refresh(refs.values())
                self.save()
                self._print(self.status_line())
                last = time.monotonic()

    def _stop(self, ray: Any, refs: dict[Any, RunSpec]) -> None:
        """First Ctrl-C: cancel queued runs, ask running ones to save and stop."""
        self._print(
            "interrupted: running runs save their training state at the end of their episode "
            "(Ctrl-C again to stop at once; re-run the same command to continue)"
        )
        for ref in refs:
            with contextlib.suppress(Exception):
                ray.cancel(ref, force=False)
        with contextlib.suppress(KeyboardInterrupt):
            self._wait(ray, refs)
        for spec in refs.values():
            entry = self.entry(spec.name)
            if entry["status"] == "running":
                entry.update(status="pending", action="interrupted")

    @staticmethod
    def _result(ray: Any, ref: Any) -> dict[str, Any]:
        try:
            return ray.get(ref)
        except ray.exceptions.TaskCancelledError:
            return {"status": "stopped", "error": None, "action": "cancelled"}
        except Exception as e:  # the worker died (OOM, node lost, ...)
            return {"status": "failed", "error": _error_text(e), "action": "worker failed"}

    def _record(self, spec: RunSpec, result: dict[str, Any]) -> None:
        entry = self.entry(spec.name)
        status = result["status"]
        steps = result.get("steps")
        if steps is None:
            steps = latest_step(spec.run_dir)
        entry.update(steps=steps, error=result.get("error"), action=result.get("action"))
        if result.get("final_return") is not None:
            entry["final_return"] = result["final_return"]
        if status == "stopped":  # saved its state before the end, or never started
            entry["status"] = "pending"
            if result.get("action") == "cancelled":
                self._print(f"{spec.name}: cancelled")
            else:
                self._print(f"{spec.name}: stopped at step {fmt_steps(steps)} (resumable)")
            return
        entry["status"] = status
        if status == "failed":
            first = (result.get("error") or "").splitlines()[:1]
            self._print(f"{spec.name}: FAILED: {first[0] if first else '?'}")
        else:
            ret = entry.get("final_return")
            ret_s = f", final eval return {ret:.1f}" if isinstance(ret, float) else ""
            self._print(f"{spec.name}: done ({entry['action']}, {steps} steps{ret_s})")

    def _refresh(self, specs: Any) -> None:
        """Mark runs whose task has started as running and read their latest env step."""
        for spec in specs:
            entry = self.entry(spec.name)
            info = read_json(self.exp_dir / "status" / f"{spec.name}.json")
            if isinstance(info, dict) and info.get("session") == self.session:
                entry["status"] = "running"
                entry["steps"] = latest_step(spec.run_dir)
                entry["host"] = info.get("host")

    def counts(self) -> dict[str, int]:
        names = {s.name for s in self.runs}
        runs = [r for r in self.manifest["runs"] if r["name"] in names]
        return {s: sum(r["status"] == s for r in runs) for s in STATUSES}

    def status_line(self) -> str:
        """``[hh:mm:ss] done 2/8, running 2, pending 4, failed 0 | run 1.234K/100K ...``"""
        c = self.counts()
        head = (
            f"[{time.strftime('%H:%M:%S')}] done {c['done']}/{len(self.runs)}, "
            f"running {c['running']}, pending {c['pending']}, failed {c['failed']}"
        )
        short = lambda n: fmt_steps(n, exact=False)  # noqa: E731
        running = [
            f"{r['name']} {short(r['steps'])}/{short(r['total_steps'])}"
            for r in self.manifest["runs"]
            if r["status"] == "running"
        ]
        return head + (" | " + ", ".join(running) if running else "")


def run_sweep(
    configs: Sequence[str],
    seeds: Sequence[int],
    arms: Sequence[str],
    **kwargs: Any,
) -> dict[str, Any]:
    """Plan and run a sweep (see :class:`Sweep` for the keyword arguments); returns the
    final manifest."""
    return Sweep(configs, seeds, arms, **kwargs).run()
