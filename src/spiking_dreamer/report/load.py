"""Finding and reading the runs a report is made of.

A report reads one or more paths, each one of :data:`LAYOUTS`:

* a sweep experiment (``spiking-dreamer sweep``): ``manifest.json`` lists its runs, or, without
  a manifest, ``runs/<task>__<arm>__s<seed>/``; the task is the config's file stem;
* a ``spiking-dreamer train`` run directory (``config.yaml`` with ``eval.jsonl`` or
  ``checkpoints/``); its stored config gives the env id (the task), the seed and the arm
  (``world_model.use`` other than ``none``: ``dreaming``, else ``baseline``);
* a folder whose sub-directories are train run directories.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from spiking_dreamer.config_loading import load_yaml, upgrade_old_keys
from spiking_dreamer.errors import ConfigError
from spiking_dreamer.files import read_jsonl, trained_all_steps

_RUN_NAME = re.compile(r"^(?P<task>.+)__(?P<arm>dreaming|baseline)__s(?P<seed>\d+)$")
LAYOUTS = (
    "a sweep experiment (EXP_DIR/manifest.json or EXP_DIR/runs/<task>__<arm>__s<seed>/)",
    "a 'spiking-dreamer train' run directory (config.yaml with eval.jsonl or checkpoints/)",
    "a folder of train run directories",
)


class ReportError(ConfigError):
    """An experiment directory or report option that cannot be used (CLI exit code 2)."""


@dataclass(frozen=True)
class RunData:
    """One run's evaluations (``steps`` increasing, ``returns`` the eval mean returns)."""

    name: str
    task: str
    env_id: str
    arm: str
    seed: int
    run_dir: Path
    status: str
    """``done``, ``unfinished``, ``failed`` (per the manifest) or ``missing`` (no run dir)."""
    total_steps: int | None
    steps: list[int] = field(default_factory=list)
    returns: list[float] = field(default_factory=list)
    problems: tuple[str, ...] = ()
    """Warnings about its files (lines of ``eval.jsonl`` skipped)."""

    def at(self, step: int) -> float:
        """The mean eval return at ``step`` (which must be one of ``steps``)."""
        return self.returns[self.steps.index(step)]


@dataclass(frozen=True)
class Experiment:
    """What a report is made of: the runs of its inputs and where they came from."""

    runs: tuple[RunData, ...]
    manifest: dict[str, Any] | None
    """The sweep's ``manifest.json`` (one sweep experiment given), else None."""
    name: str
    """The input directory's name (or, for several inputs, their common parent's)."""
    path: Path
    """The resolved input directory (or the common parent of several)."""
    inputs: tuple[Path, ...]
    """The resolved input paths."""


def read_evals(path: Path, problems: list[str] | None = None) -> tuple[list[int], list[float]]:
    """Steps and mean returns of ``eval.jsonl`` (a missing file gives two empty lists).

    A torn last line (no newline yet: a live run is writing it) is skipped silently; any other
    line that is not an evaluation record (not UTF-8, not JSON, without ``step`` and
    ``return_mean``, or not after the line before) is skipped with a warning appended to
    ``problems``, naming the file and the lines.
    """
    steps: list[int] = []
    returns: list[float] = []
    try:
        found, skipped = read_jsonl(path)
    except OSError:
        return steps, returns
    for number, rec in found:
        try:
            step, ret = int(rec["step"]), float(rec["return_mean"])
            if steps and step <= steps[-1]:  # keep the log monotonic
                raise ValueError(f"step {step} does not follow step {steps[-1]}")
        except (ValueError, KeyError, TypeError) as e:
            skipped.append(f"line {number} ({type(e).__name__}: {str(e)[:60]})")
            continue
        steps.append(step)
        returns.append(ret)
    skipped.sort(key=lambda note: int(note.split()[1]))  # "line <n> (...)", in file order
    if skipped and problems is not None:
        more = f", ... ({len(skipped)} lines)" if len(skipped) > 3 else ""
        problems.append(
            f"{path}: skipped what is not an evaluation record: {', '.join(skipped[:3])}{more}"
        )
    return steps, returns


def _read_yaml(path: Path) -> dict[str, Any]:
    """A run's ``config.yaml`` as a mapping; a :class:`ReportError` naming the file when it
    cannot be read (not UTF-8, not YAML, not a mapping)."""
    try:
        data = load_yaml(path.read_text()) or {}
    except (OSError, ValueError, yaml.YAMLError) as e:
        raise ReportError(f"{path}: cannot read it: {type(e).__name__}: {e}") from None
    if not isinstance(data, dict):
        raise ReportError(f"{path}: not a config (a mapping), got {type(data).__name__}")
    return data


def _sweep_entries(exp_dir: Path) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """The manifest's run entries and the manifest, or entries parsed from the names of
    ``runs/<task>__<arm>__s<seed>/`` and None."""
    manifest_path = exp_dir / "manifest.json"
    if manifest_path.exists():
        try:
            manifest = json.loads(manifest_path.read_text())
        except (OSError, ValueError) as e:
            raise ReportError(f"{manifest_path}: not valid JSON ({e})") from None
        runs = manifest.get("runs", []) if isinstance(manifest, dict) else None
        keys = ("name", "config", "arm", "seed", "run_dir")
        if not isinstance(runs, list) or not all(
            isinstance(r, dict) and all(k in r for k in keys) for r in runs
        ):
            raise ReportError(
                f"{manifest_path}: not a sweep manifest (needs 'runs', each with {', '.join(keys)})"
            )
        return list(runs), manifest
    entries = []
    for d in sorted((exp_dir / "runs").glob("*")):
        m = _RUN_NAME.match(d.name)
        if m and (d.is_dir() or d.is_symlink()):  # a link to no run yet: a missing run
            entries.append(
                {
                    "name": d.name,
                    "config": m["task"],
                    "arm": m["arm"],
                    "seed": int(m["seed"]),
                    "run_dir": str(d.relative_to(exp_dir)),
                }
            )
    return entries, None


def _sweep_run(exp_dir: Path, e: dict[str, Any]) -> RunData:
    """The run of one manifest entry (its ``config.yaml`` overrides the entry's env id and
    total steps)."""
    run_dir = exp_dir / e["run_dir"]
    env_id, total = e.get("env_id"), e.get("total_steps")
    cfg_file = run_dir / "config.yaml"
    if cfg_file.is_file():
        cfg = _read_yaml(cfg_file)
        env, train = cfg.get("env"), cfg.get("train")
        env_id = env.get("id", env_id) if isinstance(env, dict) else env_id
        total = train.get("total_steps", total) if isinstance(train, dict) else total
    problems: list[str] = []
    steps, returns = read_evals(run_dir / "eval.jsonl", problems)
    if not run_dir.is_dir():
        status = "missing"
    elif trained_all_steps(run_dir, total):
        status = "done"
    elif e.get("status") == "failed":
        status = "failed"
    else:
        status = "unfinished"
    stem = Path(str(e["config"])).stem
    return RunData(
        name=e["name"],
        task=stem,
        env_id=str(env_id or stem),
        arm=e["arm"],
        seed=int(e["seed"]),
        run_dir=run_dir,
        status=status,
        total_steps=total,
        steps=steps,
        returns=returns,
        problems=tuple(problems),
    )


def load_experiment(exp_dir: str | Path) -> tuple[list[RunData], dict[str, Any] | None]:
    """Every run of a sweep experiment directory (from ``manifest.json``, or from the run
    directories' names ``<task>__<arm>__s<seed>`` when there is no manifest) and the manifest
    (None without one). Raises :class:`ReportError` when ``exp_dir`` holds no sweep runs."""
    exp_dir = Path(exp_dir)
    if not exp_dir.is_dir():
        raise ReportError(f"no experiment directory {exp_dir}")
    entries, manifest = _sweep_entries(exp_dir)
    if not entries:
        raise ReportError(f"{exp_dir}: no runs (neither manifest.json nor runs/<name>/)")
    return [_sweep_run(exp_dir, e) for e in entries], manifest


def is_train_run_dir(path: Path) -> bool:
    """Whether ``path`` looks like a ``spiking-dreamer train`` run directory."""
    return (path / "config.yaml").is_file() and (
        (path / "eval.jsonl").is_file() or (path / "checkpoints").is_dir()
    )


def read_train_run(run_dir: Path) -> RunData:
    """One train run directory as a run of the task named by its env id.

    Reads ``env.id``, ``train.seed``, ``train.total_steps`` and ``world_model.use`` from its
    ``config.yaml`` (arm ``dreaming`` when it uses a model, else ``baseline``; an older
    config's ``dreaming.enabled`` is read as its ``world_model.use``); ``done`` when
    ``summary.json`` says every step was trained, else ``unfinished``. Raises
    :class:`ReportError` for a config without those keys.
    """
    cfg_file = run_dir / "config.yaml"
    cfg = _read_yaml(cfg_file)
    try:
        cfg = upgrade_old_keys(cfg)[0]
        env_id = str(cfg["env"]["id"])
        seed = int(cfg["train"]["seed"])
        total = cfg["train"].get("total_steps")
        arm = "baseline" if cfg["world_model"]["use"] == "none" else "dreaming"
    except (KeyError, TypeError, ValueError, ConfigError) as e:
        raise ReportError(
            f"{cfg_file}: not a train run config (needs env.id, train.seed and "
            f"world_model.use): {type(e).__name__}: {e}"
        ) from None
    problems: list[str] = []
    steps, returns = read_evals(run_dir / "eval.jsonl", problems)
    return RunData(
        name=run_dir.name,
        task=env_id,
        env_id=env_id,
        arm=arm,
        seed=seed,
        run_dir=run_dir,
        status="done" if trained_all_steps(run_dir, total) else "unfinished",
        total_steps=total,
        steps=steps,
        returns=returns,
        problems=tuple(problems),
    )


def _is_sweep_dir(path: Path) -> bool:
    return (path / "manifest.json").exists() or any(
        d.is_dir() and _RUN_NAME.match(d.name) for d in (path / "runs").glob("*")
    )


def _no_runs(path: Path) -> ReportError:
    expected = "; ".join(LAYOUTS)
    return ReportError(f"{path}: no runs found; expected {expected}")


def _read_input(path: Path) -> tuple[list[RunData], dict[str, Any] | None]:
    """The runs of one input path (any of :data:`LAYOUTS`) and its manifest, if any."""
    if not path.is_dir():
        raise ReportError(f"no experiment directory {path}")
    if _is_sweep_dir(path):
        return load_experiment(path)
    if is_train_run_dir(path):
        return [read_train_run(path)], None
    runs = [read_train_run(d) for d in sorted(path.iterdir()) if is_train_run_dir(d)]
    if not runs:
        raise _no_runs(path)
    return runs, None


def _check_unique(runs: Sequence[RunData]) -> None:
    """Refuse two runs of the same task, arm and seed (they would count that seed twice)."""
    seen: dict[tuple[str, str, int], RunData] = {}
    for r in runs:
        key = (r.task, r.arm, r.seed)
        if key in seen:
            raise ReportError(
                f"two runs of {r.task} {r.arm} seed {r.seed}: {seen[key].run_dir} and "
                f"{r.run_dir}; give the run directories to report explicitly"
            )
        seen[key] = r


def load_inputs(paths: Sequence[str | Path]) -> Experiment:
    """The runs of every input path (each any of :data:`LAYOUTS`), in input order.

    One sweep experiment keeps its manifest (and behaves as :func:`load_experiment`); train
    runs, and the runs of several inputs together, must not repeat a (task, arm, seed).
    Raises :class:`ReportError` for a missing path or one that matches no layout.
    """
    if not paths:
        raise ReportError("no experiment directory given")
    inputs = [Path(p) for p in paths]
    runs: list[RunData] = []
    manifests = []
    for p in inputs:
        found, manifest = _read_input(p)
        runs += found
        manifests.append(manifest)
    resolved = tuple(p.resolve() for p in inputs)
    path = resolved[0] if len(inputs) == 1 else Path(os.path.commonpath(resolved))
    manifest = manifests[0] if len(inputs) == 1 else None
    if manifest is None:
        _check_unique(runs)
    return Experiment(tuple(runs), manifest, path.name, path, resolved)
