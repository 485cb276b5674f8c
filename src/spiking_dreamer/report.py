"""Reports of a sweep: learning curves, the results table and rliable-style aggregates.

``spiking-dreamer report EXP_DIR`` reads every run's ``eval.jsonl`` in an experiment directory
(finished or not; unfinished and failed runs are listed in the notes) and writes to
``EXP_DIR/report/`` (or ``--out``):

* ``curves_<task>.png`` / ``.svg``: mean eval return across seeds per arm with a 95% bootstrap
  confidence band (thin lines: single seeds);
* ``report.md``: per task (config) a Markdown table ready for the README (steps to return
  thresholds, return at step budgets, cross-seed variance at the final common step), the variance
  ratio baseline/dreaming, IQM and probability of improvement, and the figure;
* ``report.json`` (everything), ``results.csv`` (one row per number), ``curves.csv`` and
  ``runs.csv``.

Conventions (``shared/reference/protocol.md``): the return at step N is the mean return of that
run's evaluation at step N (an exact eval step, never interpolated); "steps to X" is the first
eval step whose mean return is >= X, "not reached" otherwise (never extrapolated). For an arm the
table shows the first step at which the mean across its seeds reaches X, with how many single
seeds reached it. Curves use the eval steps common to all seeds of an arm; final figures use the
last eval step common to every run of the task (both arms), so an unfinished run truncates them.
Confidence intervals are 95% percentile bootstrap intervals over seeds; IQM and probability of
improvement follow rliable (Agarwal et al., 2021) with stratified bootstrap (seeds resampled
within each task), implemented here without depending on the ``rliable`` package.
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import yaml

from spiking_dreamer.config import ConfigError
from spiking_dreamer.errors import MissingExtraError

REPORT_INSTALL_HINT = "pip install 'spiking-dreamer[report]'"
ARM_ORDER = ("dreaming", "baseline")
ARM_LABEL = {"dreaming": "Dreaming", "baseline": "Baseline"}
ARM_COLOR = {"dreaming": "#1f77b4", "baseline": "#ff7f0e"}
DEFAULT_THRESHOLDS: dict[str, tuple[float, ...]] = {
    "halfcheetah": (8000.0, 10000.0),
    "ant": (3000.0, 5000.0),
    "hopper": (2000.0, 3000.0),
    "walker2d": (2000.0, 3000.0),
}
"""Return thresholds per env family (env id without version, lower case); others have none."""
DEFAULT_BUDGETS = (100_000, 300_000, 1_000_000)
"""Step budgets reported by default when every run of the task has an evaluation there."""
MIN_SEEDS_FOR_VARIANCE = 5
NOT_MEANINGFUL = "fewer than 5 seeds: not meaningful"
_RUN_NAME = re.compile(r"^(?P<task>.+)__(?P<arm>dreaming|baseline)__s(?P<seed>\d+)$")


class ReportError(ConfigError):
    """An experiment directory or report option that cannot be used (CLI exit code 2)."""


# ----------------------------------------------------------------------------- statistics


def iqm(values: npt.ArrayLike, axis: int = -1) -> np.ndarray | float:
    """Interquartile mean: the mean of the middle 50% of ``values`` along ``axis``.

    Cuts ``floor(n / 4)`` values from each end of the sorted values and averages the rest, like
    ``scipy.stats.trim_mean(values, 0.25)`` (what rliable's ``aggregate_iqm`` uses). Examples:
    ``iqm([1, ..., 8]) == 4.5`` (mean of 3, 4, 5, 6); ``iqm([1, 2, 3, 4, 100]) == 3``.
    """
    x = np.sort(np.asarray(values, dtype=float), axis=axis)
    n = x.shape[axis]
    if n == 0:
        raise ValueError("iqm of no values")
    cut = int(0.25 * n)
    kept = np.take(x, np.arange(cut, n - cut), axis=axis)
    out = kept.mean(axis=axis)
    return float(out) if np.ndim(out) == 0 else out


def mean(values: npt.ArrayLike, axis: int = -1) -> np.ndarray | float:
    """Arithmetic mean along ``axis`` (a statistic for the bootstrap functions)."""
    out = np.asarray(values, dtype=float).mean(axis=axis)
    return float(out) if np.ndim(out) == 0 else out


def probability_of_improvement(x: npt.ArrayLike, y: npt.ArrayLike) -> np.ndarray:
    """P(X > Y) estimated from samples: the fraction of pairs ``(x_i, y_j)`` with
    ``x_i > y_j``, ties counting 1/2 (the Mann-Whitney U statistic divided by ``m * n``).

    Works on the last axis, so ``x`` of shape ``[..., m]`` and ``y`` of shape ``[..., n]`` give
    shape ``[...]``. Example: ``x = [1, 3]``, ``y = [2, 2]``: pairs (1,2) 0, (1,2) 0, (3,2) 1,
    (3,2) 1 -> 0.5.
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.shape[-1] == 0 or y.shape[-1] == 0:
        raise ValueError("probability of improvement needs samples on both sides")
    gt = (x[..., :, None] > y[..., None, :]).mean(axis=(-2, -1))
    eq = (x[..., :, None] == y[..., None, :]).mean(axis=(-2, -1))
    return gt + 0.5 * eq


def _percentile_interval(samples: np.ndarray, level: float) -> tuple[float, float]:
    lo, hi = np.percentile(samples, [50 * (1 - level), 50 * (1 + level)], axis=0)
    return float(lo), float(hi)


def bootstrap_ci(
    values: npt.ArrayLike,
    statistic: Callable[..., Any] = mean,
    reps: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``statistic`` (applied along the last axis) over
    ``values``: ``reps`` resamples with replacement, deterministic for a given ``seed``.

    One value gives the degenerate interval ``(v, v)``.
    """
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        raise ValueError("bootstrap of no values")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, x.size, size=(reps, x.size))
    return _percentile_interval(np.asarray(statistic(x[idx], axis=-1)), level)


def stratified_bootstrap_ci(
    groups: Sequence[npt.ArrayLike],
    statistic: Callable[..., Any] = iqm,
    reps: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float]:
    """Stratified percentile bootstrap of ``statistic`` over the values of all ``groups``
    together: each resample draws, within every group (task), as many values as the group has,
    with replacement, then applies ``statistic`` to the concatenation (rliable's
    ``StratifiedBootstrap``)."""
    arrays = [np.asarray(g, dtype=float) for g in groups]
    if not arrays or any(a.size == 0 for a in arrays):
        raise ValueError("stratified bootstrap needs values in every group")
    rng = np.random.default_rng(seed)
    parts = [a[rng.integers(0, a.size, size=(reps, a.size))] for a in arrays]
    return _percentile_interval(np.asarray(statistic(np.concatenate(parts, axis=1))), level)


def probability_of_improvement_ci(
    xs: Sequence[npt.ArrayLike],
    ys: Sequence[npt.ArrayLike],
    reps: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, tuple[float, float]]:
    """Average over tasks of P(X_t > Y_t), with a stratified percentile bootstrap interval
    (within each task both samples are resampled with replacement, independently).

    Returns ``(estimate, (low, high))``.
    """
    if len(xs) != len(ys) or not xs:
        raise ValueError("one pair of samples per task")
    xs = [np.asarray(x, dtype=float) for x in xs]
    ys = [np.asarray(y, dtype=float) for y in ys]
    point = float(np.mean([probability_of_improvement(x, y) for x, y in zip(xs, ys, strict=True)]))
    rng = np.random.default_rng(seed)
    per_task = []
    for x, y in zip(xs, ys, strict=True):
        bx = x[rng.integers(0, x.size, size=(reps, x.size))]
        by = y[rng.integers(0, y.size, size=(reps, y.size))]
        per_task.append(probability_of_improvement(bx, by))
    return point, _percentile_interval(np.mean(per_task, axis=0), level)


def steps_to_threshold(
    steps: Sequence[int], returns: Sequence[float], threshold: float
) -> int | None:
    """The first eval step whose mean return is >= ``threshold``; None if none is ("not
    reached": never extrapolated). ``steps`` must be increasing."""
    for step, ret in zip(steps, returns, strict=True):
        if ret >= threshold:
            return int(step)
    return None


def sample_variance(values: npt.ArrayLike) -> float | None:
    """Unbiased variance across seeds (ddof 1); None for fewer than two values."""
    x = np.asarray(values, dtype=float)
    return float(x.var(ddof=1)) if x.size >= 2 else None


# ----------------------------------------------------------------------------- loading


@dataclass
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

    def at(self, step: int) -> float:
        return self.returns[self.steps.index(step)]


def read_evals(path: Path) -> tuple[list[int], list[float]]:
    """Steps and mean returns of ``eval.jsonl`` (a torn last line of a live run is skipped)."""
    steps, returns = [], []
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return steps, returns
    for line in lines:
        try:
            rec = json.loads(line)
            step, ret = int(rec["step"]), float(rec["return_mean"])
        except (ValueError, KeyError, TypeError):
            continue
        if steps and step <= steps[-1]:  # keep the log monotonic
            continue
        steps.append(step)
        returns.append(ret)
    return steps, returns


def _run_entries(exp_dir: Path) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    manifest_path = exp_dir / "manifest.json"
    if manifest_path.exists():
        try:
            manifest = json.loads(manifest_path.read_text())
        except ValueError as e:
            raise ReportError(f"{manifest_path}: not valid JSON ({e})") from None
        return list(manifest.get("runs", [])), manifest
    entries = []
    for d in sorted((exp_dir / "runs").glob("*")):
        m = _RUN_NAME.match(d.name)
        if d.is_dir() and m:
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


def load_experiment(exp_dir: str | Path) -> tuple[list[RunData], dict[str, Any] | None]:
    """Every run of an experiment directory (from ``manifest.json``, or from the run
    directories' names ``<task>__<arm>__s<seed>`` when there is no manifest)."""
    exp_dir = Path(exp_dir)
    if not exp_dir.is_dir():
        raise ReportError(f"no experiment directory {exp_dir}")
    entries, manifest = _run_entries(exp_dir)
    if not entries:
        raise ReportError(f"{exp_dir}: no runs (neither manifest.json nor runs/<name>/)")
    runs = []
    for e in entries:
        run_dir = exp_dir / e["run_dir"]
        env_id, total = e.get("env_id"), e.get("total_steps")
        cfg_file = run_dir / "config.yaml"
        if cfg_file.exists():
            cfg = yaml.safe_load(cfg_file.read_text()) or {}
            env_id = cfg.get("env", {}).get("id", env_id)
            total = cfg.get("train", {}).get("total_steps", total)
        steps, returns = read_evals(run_dir / "eval.jsonl")
        summary_file = run_dir / "summary.json"
        finished = False
        if summary_file.exists():
            try:
                summary = json.loads(summary_file.read_text())
                finished = total is None or summary.get("steps", -1) >= total
            except ValueError:
                pass
        if not run_dir.is_dir():
            status = "missing"
        elif finished:
            status = "done"
        elif e.get("status") == "failed":
            status = "failed"
        else:
            status = "unfinished"
        runs.append(
            RunData(
                name=e["name"],
                task=Path(str(e["config"])).stem,
                env_id=str(env_id or Path(str(e["config"])).stem),
                arm=e["arm"],
                seed=int(e["seed"]),
                run_dir=run_dir,
                status=status,
                total_steps=total,
                steps=steps,
                returns=returns,
            )
        )
    return runs, manifest


# ----------------------------------------------------------------------------- analysis


def env_family(name: str) -> str:
    """``HalfCheetah-v5`` -> ``halfcheetah`` (lower case, version suffix dropped)."""
    return re.sub(r"-v\d+$", "", name.strip()).lower()


def parse_thresholds(specs: Sequence[str]) -> dict[str, tuple[float, ...]]:
    """``["ant=3000,5000", "hopper=2500"]`` -> ``{"ant": (3000.0, 5000.0), ...}``; the key is
    an env id or family (``Ant-v5`` or ``ant``) or a task (config stem); an empty list
    (``ant=``) means no thresholds."""
    out = {}
    for spec in specs:
        if "=" not in spec:
            raise ReportError(f"--thresholds {spec!r}: expected ENV=X,Y")
        key, raw = spec.split("=", 1)
        try:
            out[env_family(key)] = tuple(float(v) for v in raw.split(",") if v.strip())
        except ValueError:
            raise ReportError(f"--thresholds {spec!r}: thresholds must be numbers") from None
    return out


def parse_budgets(spec: str | None) -> list[int] | None:
    """``"100000,300000"`` (``100k``, ``1M`` also accepted) -> [100000, 300000]."""
    if spec is None:
        return None
    out = []
    for part in spec.split(","):
        part = part.strip().lower()
        if not part:
            continue
        mult = {"k": 1_000, "m": 1_000_000}.get(part[-1], 1)
        try:
            out.append(int(float(part[:-1] if mult > 1 else part) * mult))
        except ValueError:
            raise ReportError(f"--budgets {spec!r}: expected steps like 100000,300k,1M") from None
    return out


def _common_steps(runs: Sequence[RunData]) -> list[int]:
    if not runs:
        return []
    return sorted(set.intersection(*(set(r.steps) for r in runs)))


def _summary(values: np.ndarray, reps: int, seed: int) -> dict[str, Any]:
    return {
        "mean": float(values.mean()),
        "ci95": list(bootstrap_ci(values, mean, reps, seed)),
        "n_seeds": int(values.size),
        "per_seed": [float(v) for v in values],
    }


def analyse_arm(
    runs: Sequence[RunData],
    thresholds: Sequence[float],
    budgets: Sequence[int],
    final_step: int | None,
    reps: int,
    seed: int,
) -> dict[str, Any]:
    """Curve, steps to thresholds, returns at budgets and final figures of one arm of a task."""
    runs = sorted(runs, key=lambda r: r.seed)
    steps = _common_steps(runs)
    mat = np.array([[r.at(s) for s in steps] for r in runs]) if steps else np.zeros((0, 0))
    curve = []
    if steps:
        rng = np.random.default_rng(seed)
        idx = rng.integers(0, len(runs), size=(reps, len(runs)))
        boot = mat[idx].mean(axis=1)  # [reps, steps]
        lo, hi = np.percentile(boot, [2.5, 97.5], axis=0)
        for j, s in enumerate(steps):
            curve.append(
                {
                    "step": s,
                    "mean": float(mat[:, j].mean()),
                    "ci95": [float(lo[j]), float(hi[j])],
                    "n_seeds": len(runs),
                }
            )
    mean_curve = [c["mean"] for c in curve]
    to_threshold = []
    for x in thresholds:
        per_seed = [steps_to_threshold(r.steps, r.returns, x) for r in runs]
        to_threshold.append(
            {
                "threshold": x,
                "step": steps_to_threshold(steps, mean_curve, x) if steps else None,
                "searched_to": steps[-1] if steps else None,
                "per_seed": per_seed,
                "seeds_reached": sum(p is not None for p in per_seed),
                "n_seeds": len(runs),
            }
        )
    at_budget = []
    for b in budgets:
        have = [r for r in runs if b in r.steps]
        item: dict[str, Any] = {"step": b, "reached_by": len(have), "n_seeds": len(runs)}
        if runs and len(have) == len(runs):
            item.update(_summary(np.array([r.at(b) for r in runs]), reps, seed))
        at_budget.append(item)
    final = None
    if final_step is not None and runs:
        values = np.array([r.at(final_step) for r in runs])
        final = _summary(values, reps, seed)
        final["step"] = final_step
        final["variance"] = sample_variance(values)
        final["iqm"] = iqm(values)
        final["iqm_ci95"] = list(stratified_bootstrap_ci([values], iqm, reps, seed))
    return {
        "seeds": [r.seed for r in runs],
        "runs": [r.name for r in runs],
        "curve": curve,
        "steps_to_threshold": to_threshold,
        "return_at": at_budget,
        "final": final,
    }


def analyse_task(
    task: str,
    runs: Sequence[RunData],
    thresholds: Mapping[str, Sequence[float]],
    budgets: Sequence[int] | None,
    reps: int,
    seed: int,
) -> dict[str, Any]:
    """Every figure of one task (config): per arm, plus variance ratio and P(improvement)."""
    runs = [r for r in runs if r.steps]
    env_ids = sorted({r.env_id for r in runs})
    env_id = env_ids[0] if env_ids else task
    fam = env_family(env_id)
    th = thresholds.get(task.lower(), thresholds.get(fam, DEFAULT_THRESHOLDS.get(fam, ())))
    common = _common_steps(runs)
    final_step = common[-1] if common else None
    if budgets is None:
        budgets = [b for b in DEFAULT_BUDGETS if b in common]
    if final_step is not None:
        budgets = [*budgets, final_step]
    budgets = sorted(set(budgets))
    arms = [a for a in ARM_ORDER if any(r.arm == a for r in runs)]
    per_arm = {
        a: analyse_arm([r for r in runs if r.arm == a], th, budgets, final_step, reps, seed)
        for a in arms
    }
    out: dict[str, Any] = {
        "task": task,
        "env_id": env_id,
        "env_ids": env_ids,
        "thresholds": list(th),
        "budgets": list(budgets),
        "final_step": final_step,
        "arms": per_arm,
        "variance_ratio": None,
        "probability_of_improvement": None,
    }
    if {"dreaming", "baseline"} <= set(arms) and final_step is not None:
        d, b = per_arm["dreaming"]["final"], per_arm["baseline"]["final"]
        n = min(d["n_seeds"], b["n_seeds"])
        ratio = None
        if d["variance"] is not None and b["variance"] is not None and d["variance"] > 0:
            ratio = b["variance"] / d["variance"]
        out["variance_ratio"] = {
            "step": final_step,
            "baseline_over_dreaming": ratio,
            "n_seeds": {"dreaming": d["n_seeds"], "baseline": b["n_seeds"]},
            "meaningful": n >= MIN_SEEDS_FOR_VARIANCE,
            "note": None if n >= MIN_SEEDS_FOR_VARIANCE else NOT_MEANINGFUL,
        }
        p, ci = probability_of_improvement_ci([d["per_seed"]], [b["per_seed"]], reps, seed)
        out["probability_of_improvement"] = {"step": final_step, "p": p, "ci95": list(ci)}
    return out


# TD3-normalised scores, (score - random) / (TD3@1M - random); v4 constants (benchmarks.md §5.2)
NORMALIZATION = {"halfcheetah": (-289.4, 10574.0), "ant": (-70.3, 3942.0)}


def aggregate(tasks: Sequence[dict[str, Any]], reps: int, seed: int) -> dict[str, Any] | None:
    """Across tasks (more than one): IQM of TD3-normalised final returns per arm (when every
    task has normalisation constants) and the mean P(dreaming > baseline), both with stratified
    bootstrap intervals."""
    tasks = [t for t in tasks if t["final_step"] is not None]
    if len(tasks) < 2:
        return None
    out: dict[str, Any] = {"tasks": [t["task"] for t in tasks], "iqm": None, "note": None}
    fams = [env_family(t["env_id"]) for t in tasks]
    if all(f in NORMALIZATION for f in fams):
        out["iqm"] = {}
        for arm in ARM_ORDER:
            groups = []
            for t, f in zip(tasks, fams, strict=True):
                if arm in t["arms"]:
                    lo, hi = NORMALIZATION[f]
                    groups.append((np.array(t["arms"][arm]["final"]["per_seed"]) - lo) / (hi - lo))
            if len(groups) == len(tasks):
                out["iqm"][arm] = {
                    "iqm": iqm(np.concatenate(groups)),
                    "ci95": list(stratified_bootstrap_ci(groups, iqm, reps, seed)),
                    "score": "TD3-normalised (v4 constants)",
                }
    else:
        out["note"] = "no cross-task IQM: returns of different tasks need normalisation constants"
    pairs = [t for t in tasks if {"dreaming", "baseline"} <= set(t["arms"])]
    if len(pairs) == len(tasks):
        xs = [t["arms"]["dreaming"]["final"]["per_seed"] for t in pairs]
        ys = [t["arms"]["baseline"]["final"]["per_seed"] for t in pairs]
        p, ci = probability_of_improvement_ci(xs, ys, reps, seed)
        out["probability_of_improvement"] = {"p": p, "ci95": list(ci)}
    return out


# ----------------------------------------------------------------------------- output


def fmt_steps(step: int | None) -> str:
    """450000 -> ``450K``, 1000000 -> ``1M``, 250 -> ``250``."""
    if step is None:
        return "-"
    if step >= 1_000_000 and step % 100_000 == 0:
        return f"{step / 1_000_000:g}M"
    if step >= 1000 and step % 100 == 0:
        return f"{step / 1000:g}K"
    return str(step)


def fmt_threshold(x: float) -> str:
    """8000 -> ``8K``, 2500 -> ``2.5K``, 300 -> ``300``, -1.5 -> ``-1.50``."""
    if abs(x) >= 1000 and x % 100 == 0:
        return f"{x / 1000:g}K"
    return f"{x:g}" if float(x).is_integer() else fmt_return(x)


def fmt_return(x: float | None) -> str:
    if x is None or not math.isfinite(x):
        return "-"
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.2f}"


def _fmt_mean_ci(item: Mapping[str, Any] | None) -> str:
    if not item or "mean" not in item:
        return "-"
    lo, hi = item["ci95"]
    return f"{fmt_return(item['mean'])} [{fmt_return(lo)}, {fmt_return(hi)}]"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)


def _axis_steps(v: float) -> str:
    if abs(v) >= 1_000_000:
        return f"{v / 1_000_000:g}M"
    return f"{v / 1000:g}K" if abs(v) >= 1000 else f"{v:g}"


def plot_task(task: Mapping[str, Any], runs: Sequence[RunData], out_dir: Path) -> list[Path]:
    """Learning curves of one task as PNG and SVG; returns the two paths."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.ticker import FuncFormatter
    except ImportError as e:
        raise MissingExtraError(
            f"report figures need matplotlib ({e}): {REPORT_INSTALL_HINT}"
        ) from None
    fig = Figure(figsize=(6.4, 4.0), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for arm, data in task["arms"].items():
        color = ARM_COLOR.get(arm)
        for r in runs:
            if r.arm == arm and r.steps:
                ax.plot(r.steps, r.returns, color=color, alpha=0.2, linewidth=0.7)
        if data["curve"]:
            x = [c["step"] for c in data["curve"]]
            ax.plot(
                x,
                [c["mean"] for c in data["curve"]],
                color=color,
                linewidth=1.8,
                label=f"{ARM_LABEL.get(arm, arm)} (n={len(data['seeds'])})",
            )
            ax.fill_between(
                x,
                [c["ci95"][0] for c in data["curve"]],
                [c["ci95"][1] for c in data["curve"]],
                color=color,
                alpha=0.25,
                linewidth=0,
            )
    for x in task["thresholds"]:
        ax.axhline(x, color="grey", linestyle=":", linewidth=0.8)
    ax.set_title(f"{task['env_id']} ({task['task']}): mean eval return, 95% bootstrap CI")
    ax.set_xlabel("env steps")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: _axis_steps(v)))
    ax.set_ylabel("eval return")
    ax.grid(alpha=0.3)
    if task["arms"]:
        ax.legend(loc="best")
    base = out_dir / f"curves_{_slug(task['task'])}"
    paths = [base.with_suffix(".png"), base.with_suffix(".svg")]
    fig.savefig(paths[0], dpi=150, metadata={"Software": None})
    fig.savefig(paths[1], metadata={"Date": None})
    return paths


def results_rows(tasks: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per reported number (tidy form of the tables)."""
    rows: list[dict[str, Any]] = []

    def row(t, arm, metric, param, value, ci=None, n=None, note=None):
        rows.append(
            {
                "task": t["task"],
                "env_id": t["env_id"],
                "arm": arm,
                "metric": metric,
                "param": param,
                "value": value,
                "ci95_low": ci[0] if ci else None,
                "ci95_high": ci[1] if ci else None,
                "n_seeds": n,
                "note": note,
            }
        )

    for t in tasks:
        for arm, a in t["arms"].items():
            for s in a["steps_to_threshold"]:
                note = f"{s['seeds_reached']}/{s['n_seeds']} seeds reached it"
                if s["step"] is None:
                    note = f"not reached by step {s['searched_to']}; {note}"
                row(
                    t,
                    arm,
                    "steps_to_threshold",
                    s["threshold"],
                    s["step"],
                    None,
                    s["n_seeds"],
                    note,
                )
            for b in a["return_at"]:
                if "mean" in b:
                    row(t, arm, "return_at", b["step"], b["mean"], b["ci95"], b["n_seeds"])
                else:
                    note = f"not reached ({b['reached_by']}/{b['n_seeds']} seeds have this eval)"
                    row(t, arm, "return_at", b["step"], None, None, b["n_seeds"], note)
            f = a["final"]
            if f:
                row(t, arm, "final_return", f["step"], f["mean"], f["ci95"], f["n_seeds"])
                row(t, arm, "variance_final", f["step"], f["variance"], None, f["n_seeds"])
                row(t, arm, "iqm_final", f["step"], f["iqm"], f["iqm_ci95"], f["n_seeds"])
        v = t["variance_ratio"]
        if v:
            n = min(v["n_seeds"].values())
            row(t, "-", "variance_ratio_baseline_over_dreaming", v["step"],
                v["baseline_over_dreaming"], None, n, v["note"])  # fmt: skip
        p = t["probability_of_improvement"]
        if p:
            row(t, "-", "p_dreaming_gt_baseline", p["step"], p["p"], p["ci95"])
    return rows


def _write_csv(path: Path, rows: Sequence[Mapping[str, Any]], fields: Sequence[str]) -> None:
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(fields))
        w.writeheader()
        for r in rows:
            w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in fields})


def markdown(report: Mapping[str, Any]) -> str:
    """The README-ready Markdown report."""
    lines = [f"# Experiment {report['experiment']}", ""]
    prov = report.get("provenance") or {}
    if prov:
        lines += [
            f"Command: `{prov.get('command')}`; commit `{prov.get('commit')}`; "
            f"{prov.get('date')}; {prov.get('machine', {}).get('cpu')} "
            f"({prov.get('machine', {}).get('cores')} cores).",
            "",
        ]
    lines += [
        "Return at N = mean return of the evaluation at env step N; steps to X = first eval step "
        'whose return is ≥ X ("not reached" otherwise, never extrapolated), for the mean curve '
        "across seeds (with how many single seeds reached X). Brackets: 95% bootstrap CI over "
        "seeds. Variance: across seeds (ddof 1) at the last eval step common to all runs.",
        "",
    ]
    for t in report["tasks"]:
        lines += _task_markdown(t)
    agg = report.get("aggregate")
    if agg:
        lines += _aggregate_markdown(agg)
    if report["notes"]:
        lines += ["## Notes", ""] + [f"- {n}" for n in report["notes"]] + [""]
    return "\n".join(lines)


def _task_markdown(t: Mapping[str, Any]) -> list[str]:
    """One task's section: heading, figure, table, variance ratio, IQM, P(improvement)."""
    lines = [f"## {t['env_id']} (`{t['task']}`)", ""]
    if t.get("figure"):
        lines += [f"![{t['env_id']} learning curves]({t['figure']})", ""]
    final = t["final_step"]
    budgets = t["budgets"]
    head = ["Method", "Seeds"]
    head += [f"Steps to {fmt_threshold(x)}" for x in t["thresholds"]]
    head += [f"Return @ {fmt_steps(b)}" + (" (final)" if b == final else "") for b in budgets]
    head += [f"Cross-seed variance @ {fmt_steps(final)}"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for arm, a in t["arms"].items():
        cells = [ARM_LABEL.get(arm, arm), str(len(a["seeds"]))]
        for s in a["steps_to_threshold"]:
            seeds = f"{s['seeds_reached']}/{s['n_seeds']} seeds"
            if s["step"] is None:
                cells.append(f"not reached ({seeds})")
            else:
                cells.append(f"{fmt_steps(s['step'])} ({seeds})")
        for b in a["return_at"]:
            cells.append(
                _fmt_mean_ci(b)
                if "mean" in b
                else f"not reached ({b['reached_by']}/{b['n_seeds']} seeds)"
            )
        var = a["final"]["variance"] if a["final"] else None
        cells.append("-" if var is None else f"{var:,.0f}" if var >= 1000 else f"{var:.3g}")
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    v = t["variance_ratio"]
    if v:
        r = v["baseline_over_dreaming"]
        n = v["n_seeds"]
        text = "-" if r is None else f"{r:.3g}"
        extra = f"; {v['note']}" if v["note"] else ""
        lines.append(
            f"Variance ratio baseline/dreaming at step {fmt_steps(v['step'])}: {text} "
            f"({n['baseline']} vs {n['dreaming']} seeds{extra})."
        )
    iqms = [
        f"{ARM_LABEL.get(arm, arm)} {fmt_return(a['final']['iqm'])} "
        f"[{fmt_return(a['final']['iqm_ci95'][0])}, {fmt_return(a['final']['iqm_ci95'][1])}]"
        for arm, a in t["arms"].items()
        if a["final"]
    ]
    if iqms:
        lines.append(f"IQM of returns at step {fmt_steps(final)}: " + "; ".join(iqms) + ".")
    p = t["probability_of_improvement"]
    if p:
        lines.append(
            f"P(dreaming > baseline) at step {fmt_steps(p['step'])}: {p['p']:.2f} "
            f"[{p['ci95'][0]:.2f}, {p['ci95'][1]:.2f}]."
        )
    lines.append("")
    return lines


def _aggregate_markdown(agg: Mapping[str, Any]) -> list[str]:
    lines = ["## All tasks", ""]
    if agg.get("iqm"):
        for arm, v in agg["iqm"].items():
            lines.append(
                f"- IQM of {v['score']} final returns, {ARM_LABEL.get(arm, arm)}: "
                f"{v['iqm']:.3f} [{v['ci95'][0]:.3f}, {v['ci95'][1]:.3f}]"
            )
    if agg.get("note"):
        lines.append(f"- {agg['note']}")
    p = agg.get("probability_of_improvement")
    if p:
        lines.append(
            f"- P(dreaming > baseline), mean over tasks: {p['p']:.2f} "
            f"[{p['ci95'][0]:.2f}, {p['ci95'][1]:.2f}]"
        )
    lines.append("")
    return lines


def _notes(runs: Sequence[RunData]) -> list[str]:
    notes = []
    for r in runs:
        last = fmt_steps(r.steps[-1]) if r.steps else "none"
        total = fmt_steps(r.total_steps) if r.total_steps else "?"
        if not r.steps:
            notes.append(f"{r.name}: {r.status}, no evaluations (left out)")
        elif r.status != "done":
            notes.append(f"{r.name}: {r.status}, last evaluation at step {last} of {total}")
    return notes


def write_report(
    exp_dir: str | Path,
    out_dir: str | Path | None = None,
    thresholds: Mapping[str, Sequence[float]] | None = None,
    budgets: Sequence[int] | None = None,
    reps: int = 2000,
    seed: int = 0,
    figures: bool = True,
) -> dict[str, Any]:
    """Analyse an experiment directory and write the report files; returns ``report.json``'s
    content (with ``files``: the paths written)."""
    if reps < 1:
        raise ReportError(f"--reps must be >= 1, got {reps}")
    exp_dir = Path(exp_dir)
    runs, manifest = load_experiment(exp_dir)
    out = Path(out_dir) if out_dir is not None else exp_dir / "report"
    out.mkdir(parents=True, exist_ok=True)
    thresholds = {env_family(k): tuple(v) for k, v in (thresholds or {}).items()}
    task_names = list(dict.fromkeys(r.task for r in runs))
    tasks = []
    for name in task_names:
        task_runs = [r for r in runs if r.task == name]
        t = analyse_task(name, task_runs, thresholds, budgets, reps, seed)
        if len(t["env_ids"]) > 1:
            t["note"] = f"runs of several env ids: {', '.join(t['env_ids'])}"
        t["figure"] = None
        if figures and any(a["curve"] for a in t["arms"].values()):
            png, _svg = plot_task(t, [r for r in task_runs if r.steps], out)
            t["figure"] = png.name
        tasks.append(t)
    prov = None
    if manifest:
        keys = ("command", "commit", "date", "machine", "versions", "overrides", "seeds", "arms")
        prov = {k: manifest.get(k) for k in keys}
    report: dict[str, Any] = {
        "experiment": exp_dir.resolve().name,
        "exp_dir": str(exp_dir.resolve()),
        "provenance": prov,
        "bootstrap": {"reps": reps, "seed": seed, "level": 0.95, "method": "percentile"},
        "runs": [
            {
                "name": r.name,
                "task": r.task,
                "env_id": r.env_id,
                "arm": r.arm,
                "seed": r.seed,
                "status": r.status,
                "last_step": r.steps[-1] if r.steps else None,
                "total_steps": r.total_steps,
                "last_return": r.returns[-1] if r.returns else None,
            }
            for r in runs
        ],
        "tasks": tasks,
        "aggregate": aggregate(tasks, reps, seed),
        "notes": _notes(runs) + [f"{t['task']}: {t['note']}" for t in tasks if t.get("note")],
    }
    files = {
        "json": out / "report.json",
        "markdown": out / "report.md",
        "results_csv": out / "results.csv",
        "curves_csv": out / "curves.csv",
        "runs_csv": out / "runs.csv",
    }
    results = results_rows(tasks)
    fields = ["task", "env_id", "arm", "metric", "param", "value", "ci95_low", "ci95_high"]
    _write_csv(files["results_csv"], results, [*fields, "n_seeds", "note"])
    curve_rows = [
        {
            "task": t["task"],
            "env_id": t["env_id"],
            "arm": arm,
            "step": c["step"],
            "mean": c["mean"],
            "ci95_low": c["ci95"][0],
            "ci95_high": c["ci95"][1],
            "n_seeds": c["n_seeds"],
        }
        for t in tasks
        for arm, a in t["arms"].items()
        for c in a["curve"]
    ]
    _write_csv(files["curves_csv"], curve_rows, list(curve_rows[0]) if curve_rows else ["task"])
    _write_csv(files["runs_csv"], report["runs"], list(report["runs"][0]))
    report["files"] = {k: str(v) for k, v in files.items()}
    report["files"]["figures"] = [str(out / t["figure"]) for t in tasks if t["figure"]] + [
        str((out / t["figure"]).with_suffix(".svg")) for t in tasks if t["figure"]
    ]
    files["markdown"].write_text(markdown(report))
    files["json"].write_text(json.dumps(report, indent=1) + "\n")
    return report
