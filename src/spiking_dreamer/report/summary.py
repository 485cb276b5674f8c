"""The summaries a report is made of, as frozen dataclasses.

:mod:`.analysis` computes them from the runs (:mod:`.load`), :mod:`.render` writes them; each
``to_json()`` gives its part of ``report.json`` (tuples become lists, keys in the file's order).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from spiking_dreamer.report.load import Experiment, RunData

MIN_SEEDS_FOR_VARIANCE = 5
NOT_MEANINGFUL = "fewer than 5 seeds: not meaningful"


@dataclass(frozen=True)
class SeedStats:
    """One number per seed: their mean with a 95% bootstrap CI over seeds."""

    mean: float
    ci95: tuple[float, float]
    n_seeds: int
    per_seed: tuple[float, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "mean": self.mean,
            "ci95": list(self.ci95),
            "n_seeds": self.n_seeds,
            "per_seed": list(self.per_seed),
        }


@dataclass(frozen=True)
class CurvePoint:
    """The mean curve of an arm at one eval step, with a 95% bootstrap band."""

    step: int
    mean: float
    ci95: tuple[float, float]
    n_seeds: int

    def to_json(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "mean": self.mean,
            "ci95": list(self.ci95),
            "n_seeds": self.n_seeds,
        }


@dataclass(frozen=True)
class ThresholdSteps:
    """Steps to a return threshold: of the mean curve (``step``, None: not reached by
    ``searched_to``) and of each seed."""

    threshold: float
    step: int | None
    searched_to: int | None
    per_seed: tuple[int | None, ...]
    seeds_reached: int
    n_seeds: int

    def to_json(self) -> dict[str, Any]:
        return {
            "threshold": self.threshold,
            "step": self.step,
            "searched_to": self.searched_to,
            "per_seed": list(self.per_seed),
            "seeds_reached": self.seeds_reached,
            "n_seeds": self.n_seeds,
        }


@dataclass(frozen=True)
class BudgetReturn:
    """The return at a step budget; ``stats`` is None unless every seed has an eval there."""

    step: int
    reached_by: int
    n_seeds: int
    stats: SeedStats | None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"step": self.step, "reached_by": self.reached_by}
        out["n_seeds"] = self.n_seeds
        if self.stats is not None:
            out.update(self.stats.to_json())
        return out


@dataclass(frozen=True)
class FinalReturn:
    """The returns at the task's final common step: mean, variance across seeds, IQM."""

    step: int
    stats: SeedStats
    variance: float | None
    iqm: float
    iqm_ci95: tuple[float, float]

    def to_json(self) -> dict[str, Any]:
        return {
            **self.stats.to_json(),
            "step": self.step,
            "variance": self.variance,
            "iqm": self.iqm,
            "iqm_ci95": list(self.iqm_ci95),
        }


@dataclass(frozen=True)
class ArmSummary:
    """Everything reported about one arm of one task (runs sorted by seed)."""

    seeds: tuple[int, ...]
    runs: tuple[str, ...]
    curve: tuple[CurvePoint, ...]
    steps_to_threshold: tuple[ThresholdSteps, ...]
    return_at: tuple[BudgetReturn, ...]
    final: FinalReturn | None

    def to_json(self) -> dict[str, Any]:
        return {
            "seeds": list(self.seeds),
            "runs": list(self.runs),
            "curve": [c.to_json() for c in self.curve],
            "steps_to_threshold": [s.to_json() for s in self.steps_to_threshold],
            "return_at": [b.to_json() for b in self.return_at],
            "final": self.final.to_json() if self.final else None,
        }


@dataclass(frozen=True)
class VarianceRatio:
    """Cross-seed variance of the baseline over that of dreaming at the final step."""

    step: int
    baseline_over_dreaming: float | None
    n_dreaming: int
    n_baseline: int

    @property
    def meaningful(self) -> bool:
        return min(self.n_dreaming, self.n_baseline) >= MIN_SEEDS_FOR_VARIANCE

    @property
    def note(self) -> str | None:
        return None if self.meaningful else NOT_MEANINGFUL

    def to_json(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "baseline_over_dreaming": self.baseline_over_dreaming,
            "n_seeds": {"dreaming": self.n_dreaming, "baseline": self.n_baseline},
            "meaningful": self.meaningful,
            "note": self.note,
        }


@dataclass(frozen=True)
class Improvement:
    """P(dreaming > baseline) with a 95% stratified bootstrap CI; ``step`` is the final step of
    one task, None for the mean over tasks."""

    p: float
    ci95: tuple[float, float]
    step: int | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {} if self.step is None else {"step": self.step}
        return {**out, "p": self.p, "ci95": list(self.ci95)}


@dataclass(frozen=True)
class TaskSummary:
    """Every figure of one task (config, or env id for train runs)."""

    task: str
    env_id: str
    env_ids: tuple[str, ...]
    thresholds: tuple[float, ...]
    budgets: tuple[int, ...]
    final_step: int | None
    arms: Mapping[str, ArmSummary]
    """Per arm, in :data:`ARM_ORDER`."""
    variance_ratio: VarianceRatio | None
    probability_of_improvement: Improvement | None
    note: str | None = None
    figure: str | None = None
    """The file name of the learning-curve PNG, once drawn."""

    def to_json(self) -> dict[str, Any]:
        out = {
            "task": self.task,
            "env_id": self.env_id,
            "env_ids": list(self.env_ids),
            "thresholds": list(self.thresholds),
            "budgets": list(self.budgets),
            "final_step": self.final_step,
            "arms": {arm: a.to_json() for arm, a in self.arms.items()},
            "variance_ratio": self.variance_ratio.to_json() if self.variance_ratio else None,
            "probability_of_improvement": (
                self.probability_of_improvement.to_json()
                if self.probability_of_improvement
                else None
            ),
        }
        if self.note is not None:
            out["note"] = self.note
        return {**out, "figure": self.figure}


@dataclass(frozen=True)
class AggregateIQM:
    """IQM of one arm's normalised final returns over all tasks, stratified bootstrap CI."""

    iqm: float
    ci95: tuple[float, float]
    score: str

    def to_json(self) -> dict[str, Any]:
        return {"iqm": self.iqm, "ci95": list(self.ci95), "score": self.score}


@dataclass(frozen=True)
class Aggregate:
    """Figures across tasks; ``iqm`` is None (with a ``note``) without normalisation
    constants for every task."""

    tasks: tuple[str, ...]
    iqm: Mapping[str, AggregateIQM] | None
    note: str | None
    probability_of_improvement: Improvement | None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "tasks": list(self.tasks),
            "iqm": None if self.iqm is None else {k: v.to_json() for k, v in self.iqm.items()},
            "note": self.note,
        }
        if self.probability_of_improvement is not None:
            out["probability_of_improvement"] = self.probability_of_improvement.to_json()
        return out


@dataclass(frozen=True)
class Report:
    """The analysis of an experiment: its runs, per-task summaries and the aggregate."""

    experiment: Experiment
    tasks: tuple[TaskSummary, ...]
    aggregate: Aggregate | None
    reps: int
    seed: int

    @property
    def runs(self) -> tuple[RunData, ...]:
        return self.experiment.runs
