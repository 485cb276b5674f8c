"""Per-arm, per-task and cross-task summaries of the runs of an experiment.

Conventions (``shared/reference/protocol.md``): the return at step N is the mean return of that
run's evaluation at step N (an exact eval step, never interpolated); "steps to X" is the first
eval step whose mean return is >= X, "not reached" otherwise (never extrapolated). For an arm the
first step at which the mean across its seeds reaches X is reported, with how many single seeds
reached it. Curves use the eval steps common to all seeds of an arm; final figures use the last
eval step common to every run of the task (both arms), so an unfinished run truncates them.
IQM and probability of improvement follow rliable (Agarwal et al., NeurIPS 2021).

The summaries are the frozen dataclasses of :mod:`.summary`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence

import numpy as np

from spiking_dreamer.report.load import Experiment, ReportError, RunData
from spiking_dreamer.report.stats import (
    bootstrap_bands,
    bootstrap_ci,
    iqm,
    mean,
    probability_of_improvement_ci,
    sample_variance,
    steps_to_threshold,
    stratified_bootstrap_ci,
)
from spiking_dreamer.report.summary import (
    Aggregate,
    AggregateIQM,
    ArmSummary,
    BudgetReturn,
    CurvePoint,
    FinalReturn,
    Improvement,
    Report,
    SeedStats,
    TaskSummary,
    ThresholdSteps,
    VarianceRatio,
)

ARM_ORDER = ("dreaming", "baseline")
DEFAULT_THRESHOLDS: dict[str, tuple[float, ...]] = {
    "halfcheetah": (8000.0, 10000.0),
    "ant": (3000.0, 5000.0),
    "hopper": (2000.0, 3000.0),
    "walker2d": (2000.0, 3000.0),
}
"""Return thresholds per env family (env id without version, lower case); others have none."""
DEFAULT_BUDGETS = (100_000, 300_000, 1_000_000)
"""Step budgets reported by default when every run of the task has an evaluation there."""
NORMALIZATION = {"halfcheetah": (-289.4, 10574.0), "ant": (-70.3, 3942.0)}
"""TD3-normalised scores, (score - random) / (TD3@1M - random); v4 constants
(benchmarks.md §5.2)."""


# ----------------------------------------------------------------------------- options


def env_family(name: str) -> str:
    """``HalfCheetah-v5`` -> ``halfcheetah`` (lower case, version suffix dropped)."""
    return re.sub(r"-v\d+$", "", name.strip()).lower()


def parse_thresholds(specs: Sequence[str]) -> dict[str, tuple[float, ...]]:
    """``["ant=3000,5000", "hopper=2500"]`` -> ``{"ant": (3000.0, 5000.0), ...}``; the key is
    an env id or family (``Ant-v5`` or ``ant``) or a task (config stem); an empty list
    (``ant=``) means no thresholds. Raises :class:`ReportError` for a malformed spec."""
    out = {}
    for spec in specs:
        if "=" not in spec:
            raise ReportError(f"--thresholds {spec!r}: expected ENV=X,Y")
        key, raw = spec.split("=", 1)
        try:
            values = tuple(float(v) for v in raw.split(",") if v.strip())
        except ValueError:
            raise ReportError(f"--thresholds {spec!r}: thresholds must be numbers") from None
        if not all(math.isfinite(v) for v in values):
            raise ReportError(f"--thresholds {spec!r}: thresholds must be finite numbers")
        out[env_family(key)] = values
    return out


def parse_budgets(spec: str | None) -> list[int] | None:
    """``"100000,300000"`` (``100k``, ``1M`` also accepted) -> [100000, 300000]; None -> None.
    Raises :class:`ReportError` for a malformed spec."""
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
        except (ValueError, OverflowError):
            raise ReportError(f"--budgets {spec!r}: expected steps like 100000,300k,1M") from None
        if out[-1] < 1:
            raise ReportError(f"--budgets {spec!r}: steps must be >= 1")
    return out


# ----------------------------------------------------------------------------- analysis


def _seed_stats(values: np.ndarray, reps: int, seed: int) -> SeedStats:
    """Mean, 95% bootstrap CI and values of ``values`` (1-D, one per seed)."""
    ci = bootstrap_ci(values, mean, reps, seed)
    return SeedStats(float(values.mean()), ci, int(values.size), tuple(float(v) for v in values))


def _common_steps(runs: Sequence[RunData]) -> list[int]:
    if not runs:
        return []
    return sorted(set.intersection(*(set(r.steps) for r in runs)))


def analyse_arm(
    runs: Sequence[RunData],
    thresholds: Sequence[float],
    budgets: Sequence[int],
    final_step: int | None,
    reps: int,
    seed: int,
) -> ArmSummary:
    """Curve, steps to ``thresholds``, returns at ``budgets`` and figures at ``final_step`` of
    the ``runs`` of one arm of a task; ``reps`` bootstrap resamples drawn with ``seed``."""
    runs = sorted(runs, key=lambda r: r.seed)
    steps = _common_steps(runs)
    curve: list[CurvePoint] = []
    if steps:
        mat = np.array([[r.at(s) for s in steps] for r in runs])
        lo, hi = bootstrap_bands(mat, reps, seed)
        curve = [
            CurvePoint(s, float(mat[:, j].mean()), (float(lo[j]), float(hi[j])), len(runs))
            for j, s in enumerate(steps)
        ]
    mean_curve = [c.mean for c in curve]
    to_threshold = []
    for x in thresholds:
        per_seed = tuple(steps_to_threshold(r.steps, r.returns, x) for r in runs)
        to_threshold.append(
            ThresholdSteps(
                threshold=x,
                step=steps_to_threshold(steps, mean_curve, x) if steps else None,
                searched_to=steps[-1] if steps else None,
                per_seed=per_seed,
                seeds_reached=sum(p is not None for p in per_seed),
                n_seeds=len(runs),
            )
        )
    at_budget = []
    for b in budgets:
        have = [r for r in runs if b in r.steps]
        stats = None
        if runs and len(have) == len(runs):
            stats = _seed_stats(np.array([r.at(b) for r in runs]), reps, seed)
        at_budget.append(BudgetReturn(b, len(have), len(runs), stats))
    final = None
    if final_step is not None and runs:
        values = np.array([r.at(final_step) for r in runs])
        final = FinalReturn(
            step=final_step,
            stats=_seed_stats(values, reps, seed),
            variance=sample_variance(values),
            iqm=iqm(values),
            iqm_ci95=stratified_bootstrap_ci([values], iqm, reps, seed),
        )
    return ArmSummary(
        seeds=tuple(r.seed for r in runs),
        runs=tuple(r.name for r in runs),
        curve=tuple(curve),
        steps_to_threshold=tuple(to_threshold),
        return_at=tuple(at_budget),
        final=final,
    )


def analyse_task(
    task: str,
    runs: Sequence[RunData],
    thresholds: Mapping[str, Sequence[float]],
    budgets: Sequence[int] | None,
    reps: int,
    seed: int,
) -> TaskSummary:
    """Every figure of one task: per arm, plus the variance ratio and P(improvement).

    ``thresholds`` maps a task name or env family to its thresholds (default
    :data:`DEFAULT_THRESHOLDS`); ``budgets`` None means those of :data:`DEFAULT_BUDGETS` every
    run has; the final common step is always added. Runs without evaluations are left out.
    """
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
    ratio = improvement = None
    if {"dreaming", "baseline"} <= set(arms) and final_step is not None:
        d, b = per_arm["dreaming"].final, per_arm["baseline"].final
        assert d is not None  # every arm has runs with the final step
        assert b is not None
        value = None
        if d.variance is not None and b.variance is not None and d.variance > 0:
            value = b.variance / d.variance
        ratio = VarianceRatio(final_step, value, d.stats.n_seeds, b.stats.n_seeds)
        p, ci = probability_of_improvement_ci([d.stats.per_seed], [b.stats.per_seed], reps, seed)
        improvement = Improvement(p, ci, step=final_step)
    return TaskSummary(
        task=task,
        env_id=env_id,
        env_ids=tuple(env_ids),
        thresholds=tuple(th),
        budgets=tuple(budgets),
        final_step=final_step,
        arms=per_arm,
        variance_ratio=ratio,
        probability_of_improvement=improvement,
        note=f"runs of several env ids: {', '.join(env_ids)}" if len(env_ids) > 1 else None,
    )


def aggregate(tasks: Sequence[TaskSummary], reps: int, seed: int) -> Aggregate | None:
    """Across tasks (more than one with a final step): IQM of TD3-normalised final returns per
    arm (when every task has :data:`NORMALIZATION` constants) and the mean P(dreaming >
    baseline), both with stratified bootstrap intervals (rliable; Agarwal et al., NeurIPS
    2021). None for fewer than two tasks."""
    tasks = [t for t in tasks if t.final_step is not None]
    if len(tasks) < 2:
        return None
    fams = [env_family(t.env_id) for t in tasks]
    iqms: dict[str, AggregateIQM] | None = None
    note = None
    if all(f in NORMALIZATION for f in fams):
        iqms = {}
        for arm in ARM_ORDER:
            groups = []
            for t, f in zip(tasks, fams, strict=True):
                final = t.arms[arm].final if arm in t.arms else None
                if final is not None:
                    lo, hi = NORMALIZATION[f]
                    groups.append((np.array(final.stats.per_seed) - lo) / (hi - lo))
            if len(groups) == len(tasks):
                iqms[arm] = AggregateIQM(
                    iqm(np.concatenate(groups)),
                    stratified_bootstrap_ci(groups, iqm, reps, seed),
                    "TD3-normalised (v4 constants)",
                )
    else:
        note = "no cross-task IQM: returns of different tasks need normalisation constants"
    improvement = None
    if all({"dreaming", "baseline"} <= set(t.arms) for t in tasks):
        xs = [_final(t, "dreaming").stats.per_seed for t in tasks]
        ys = [_final(t, "baseline").stats.per_seed for t in tasks]
        improvement = Improvement(*probability_of_improvement_ci(xs, ys, reps, seed))
    return Aggregate(tuple(t.task for t in tasks), iqms, note, improvement)


def _final(task: TaskSummary, arm: str) -> FinalReturn:
    final = task.arms[arm].final
    assert final is not None  # a task with a final step has final figures for every arm
    return final


def analyse(
    experiment: Experiment,
    thresholds: Mapping[str, Sequence[float]] | None = None,
    budgets: Sequence[int] | None = None,
    reps: int = 2000,
    seed: int = 0,
) -> Report:
    """Every task of ``experiment`` (in the order its runs first name them) and the aggregate;
    ``thresholds`` keys may be env ids, families or task names (see :func:`analyse_task`)."""
    thresholds = {env_family(k): tuple(v) for k, v in (thresholds or {}).items()}
    names = list(dict.fromkeys(r.task for r in experiment.runs))
    runs = experiment.runs
    tasks = tuple(
        analyse_task(n, [r for r in runs if r.task == n], thresholds, budgets, reps, seed)
        for n in names
    )
    return Report(experiment, tasks, aggregate(tasks, reps, seed), reps, seed)
