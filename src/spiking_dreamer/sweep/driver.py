"""The sweep driver: the Ray-driven :class:`Sweep`, its lock on the experiment directory and
its ``manifest.json``; :func:`run_sweep` plans and runs a sweep in one call."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shlex
import socket
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

from spiking_dreamer.errors import import_extra
from spiking_dreamer.files import atomic_write_json, check_output_dir
from spiking_dreamer.provenance import git_commit, machine_info, versions
from spiking_dreamer.report.render import fmt_steps
from spiking_dreamer.sweep.plan import RunSpec, SweepError, plan_runs
from spiking_dreamer.sweep.runs import (
    _error_text,
    check_stored_config,
    latest_step,
    read_json,
    run_dir_state,
    run_one,
    stored_config_differences,
)

STATUSES = ("pending", "running", "done", "failed")


def import_ray() -> Any:
    """``ray``, or MissingExtraError naming the extra that installs it."""
    return import_extra("ray", "spiking-dreamer sweep", "sweep")


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity: a container's cpuset, ``taskset``), not
    every CPU of the host."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


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
        node_wait_s: float = 300.0,
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
        self.node_wait_s = node_wait_s
        self._unschedulable_since: float | None = None
        self.out = out or sys.stderr
        self.command = command or " ".join(shlex.quote(a) for a in sys.argv)
        self.runs = plan_runs(
            configs, seeds, arms, overrides, self.exp_dir, cpus_per_run, gpus_per_run
        )
        self.wandb = any(r.cfg["log"]["wandb"] for r in self.runs)
        self.session = uuid.uuid4().hex
        self.manifest_path = self.exp_dir / "manifest.json"
        self.manifest = self._initial_manifest()
        self._owns_ray = False

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
        atomic_write_json(self.manifest_path, self.manifest)

    def _print(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    # -- running

    def run(self) -> dict[str, Any]:
        """Run every unfinished run; returns the final manifest. KeyboardInterrupt asks the
        running runs to save their training state and stop (a second one stops at once).

        Before anything is created or changed (the experiment directory, its manifest, a Ray
        instance of its own), refuses (:class:`SweepError` and the like): an experiment
        directory that cannot be written, runs there made with other settings, an env or
        memory need the runs cannot meet, a missing Ray, and per-run resources no node of the
        cluster has."""
        check_output_dir(self.exp_dir, "--exp-dir")
        self.check_existing_runs()
        pending = [s for s in self.runs if run_dir_state(s.run_dir, s.total_steps) != "done"]
        if pending:
            self.check_runs_fit(pending)
            ray = import_ray()
            self.check_resources(ray)
        try:
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
        finally:
            if self._owns_ray:
                import_ray().shutdown()
                self._owns_ray = False
        return self.manifest

    # -- checks before anything is created

    def check_existing_runs(self) -> None:
        """Refuse (SweepError) when run directories already in the experiment were made with
        settings other than this command's, saying what differs; nothing is changed."""
        differing = []
        for spec in self.runs:
            if run_dir_state(spec.run_dir, spec.total_steps) in ("done", "resumable"):
                diff = stored_config_differences(spec.run_dir, spec.cfg)
                if diff:
                    more = f"; ... ({len(diff)} keys)" if len(diff) > 4 else ""
                    differing.append(f"{spec.name}: {'; '.join(diff[:4])}{more}")
        if differing:
            shown = differing[:4] + ([f"... ({len(differing)} runs)"] if len(differing) > 4 else [])
            raise SweepError(
                f"--exp-dir {self.exp_dir} holds runs made with other settings than this "
                f"command's (stored vs now): {' | '.join(shown)}. Nothing was changed; re-run "
                "the experiment's own command (see its manifest.json), or give another "
                "--exp-dir for the new settings"
            )

    def check_runs_fit(self, specs: Sequence[RunSpec]) -> None:
        """Refuse runs whose env cannot be made and stepped with its ``env.kwargs`` or whose
        buffers and batches cannot fit in memory (each distinct env checked once)."""
        from spiking_dreamer.config_loading import config_from_dict
        from spiking_dreamer.envs import check_env
        from spiking_dreamer.training.preflight import check_memory

        sizes: dict[str, tuple[int, int]] = {}
        for spec in specs:
            env = spec.cfg["env"]
            key = json.dumps(env, sort_keys=True)
            if key not in sizes:
                sizes[key] = check_env(env["id"], env["kwargs"])
            check_memory(config_from_dict(spec.cfg, f"sweep run {spec.name}"), *sizes[key])

    def _nodes(self, ray: Any) -> list[dict[str, float]]:
        """Each node's resources: the cluster's (joined now if --address is given or Ray is
        running), else what a local instance would offer."""
        if self.address or ray.is_initialized():
            self._init_ray()
            return [dict(n.get("Resources", {})) for n in ray.nodes() if n.get("Alive", True)]
        import torch

        cpus = self.num_cpus or usable_cpus()
        return [{"CPU": float(cpus), "GPU": float(torch.cuda.device_count())}]

    def check_resources(self, ray: Any) -> None:
        """Refuse --cpus-per-run / --gpus-per-run that no node of the cluster has: Ray would
        keep such tasks pending forever."""
        problem = unschedulable(self.cpus_per_run, self.gpus_per_run, self._nodes(ray))
        if problem is not None:
            if self._owns_ray:
                ray.shutdown()
                self._owns_ray = False
            where = f"the Ray cluster at {self.address}" if self.address else "this machine"
            raise SweepError(f"{problem} on {where}: the runs could never start")

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

    def _init_ray(self) -> Any:
        """Ray, joined or started (then owned by this sweep and shut down when it ends)."""
        ray = import_ray()
        if ray.is_initialized():
            return ray
        if self.address:
            check_reachable(self.address)
            try:
                ray.init(address=self.address, log_to_driver=False)
            except (ConnectionError, RuntimeError, ValueError) as e:
                raise SweepError(
                    f"--address {self.address}: cannot join the cluster: {e}"
                ) from None
        else:
            ray.init(
                num_cpus=self.num_cpus or usable_cpus(),
                include_dashboard=False,
                log_to_driver=False,
            )
        self._owns_ray = True
        return ray

    def _run_tasks(self, todo: list[RunSpec]) -> None:
        ray = self._init_ray()
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

    def _wait(self, ray: Any, refs: dict[Any, RunSpec]) -> None:
        last, cancelled = 0.0, False
        while refs:
            ready, _ = ray.wait(list(refs), num_returns=1, timeout=self.poll_s)
            if ready:
                rest = [r for r in refs if r not in ready]
                more, _ = ray.wait(rest, num_returns=len(rest), timeout=0) if rest else ([], [])
                for ref in [*ready, *more]:
                    self._record(refs.pop(ref), self._result(ray, ref))
            if time.monotonic() - last >= self.poll_s or not refs:
                if refs and not cancelled:
                    cancelled = self._cancel_if_no_node_fits(ray, refs)
                self._refresh(refs.values())
                self.save()
                self._print(self.status_line())
                last = time.monotonic()

    def _cancel_if_no_node_fits(self, ray: Any, refs: dict[Any, RunSpec]) -> bool:
        """Cancel every task once no alive node has had room for a run for ``node_wait_s``
        seconds (nodes left the cluster and none took their place: Ray would keep the tasks
        pending forever); a cancelled run continues from its last saved state when the sweep
        is rerun. Returns whether it cancelled."""
        try:
            nodes = self._nodes(ray)
        except Exception:  # the cluster's control service is not answering now: ask again later
            return False
        problem = unschedulable(self.cpus_per_run, self.gpus_per_run, nodes)
        now = time.monotonic()
        if problem is None:
            self._unschedulable_since = None
            return False
        if self._unschedulable_since is None:
            self._unschedulable_since = now
        if now - self._unschedulable_since < self.node_wait_s:
            return False
        self._print(
            f"no alive node of the Ray cluster has had room for a run for {self.node_wait_s:g} s "
            f"({problem}): the {len(refs)} unfinished runs are cancelled; rerun the same "
            "command once a node with room has joined"
        )
        for ref in refs:
            with contextlib.suppress(Exception):
                ray.cancel(ref, force=False)
        return True

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


def check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """Refuse (SweepError) a ``--address host:port`` (or ``ray://host:port``) that accepts no
    connection within ``timeout_s``: joining it would wait for a long time. ``auto`` and
    addresses without a port are left to Ray."""
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not port.isdigit() or not host:
        return
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as e:
        raise SweepError(
            f"--address {address}: no Ray cluster answers there ({e.strerror or e}); start one "
            "with 'ray start --head', or leave --address out to start a local instance"
        ) from None


def unschedulable(cpus: float, gpus: float, nodes: Sequence[dict[str, float]]) -> str | None:
    """Why a task asking for ``cpus`` CPUs and ``gpus`` GPUs fits on none of ``nodes`` (each a
    resource dict, ``{"CPU": 2.0, "GPU": 0.0, ...}``), or None when one has room."""
    if any(n.get("CPU", 0) >= cpus and n.get("GPU", 0) >= gpus for n in nodes):
        return None
    most_cpus = max((n.get("CPU", 0) for n in nodes), default=0)
    most_gpus = max((n.get("GPU", 0) for n in nodes), default=0)
    if most_gpus < gpus:
        have = "no GPU" if most_gpus == 0 else f"at most {most_gpus:g} GPUs per node"
        return f"--gpus-per-run {gpus:g} asks for more than there is: {have}"
    if most_cpus < cpus:
        return f"--cpus-per-run {cpus:g} asks for more than there is: at most {most_cpus:g} CPUs"
    return f"--cpus-per-run {cpus:g} with --gpus-per-run {gpus:g} fits on no single node"


def run_sweep(
    configs: Sequence[str],
    seeds: Sequence[int],
    arms: Sequence[str],
    **kwargs: Any,
) -> dict[str, Any]:
    """Plan and run a sweep (see :class:`Sweep` for the keyword arguments); returns the
    final manifest."""
    return Sweep(configs, seeds, arms, **kwargs).run()
