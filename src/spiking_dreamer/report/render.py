"""The report's files: Markdown, JSON, CSV and learning-curve figures (PNG and SVG).

What :func:`~spiking_dreamer.report.write.write_report` writes, each file atomically
(:func:`spiking_dreamer.files.atomic_write`):

* ``curves_<task>.png`` / ``.svg``: mean eval return across seeds per arm with a 95% bootstrap
  confidence band (thin lines: single seeds; dotted: the return thresholds the curves come
  near);
* ``report.md``: per task a Markdown table ready for the README (steps to return thresholds,
  return at step budgets, cross-seed variance at the final common step), the variance ratio
  baseline/dreaming, IQM and probability of improvement (rliable; Agarwal et al., NeurIPS
  2021), and the figure;
* ``report.json`` (everything), ``results.csv`` (one row per number), ``curves.csv`` and
  ``runs.csv``.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from spiking_dreamer.errors import import_extra
from spiking_dreamer.files import atomic_write
from spiking_dreamer.report.load import RunData
from spiking_dreamer.report.summary import Aggregate, Report, SeedStats, TaskSummary

ARM_LABEL = {"dreaming": "Dreaming", "baseline": "Baseline"}
ARM_COLOR = {"dreaming": "#1f77b4", "baseline": "#ff7f0e"}
REPORT_FILES = {
    "json": "report.json",
    "markdown": "report.md",
    "results_csv": "results.csv",
    "curves_csv": "curves.csv",
    "runs_csv": "runs.csv",
}


# ----------------------------------------------------------------------------- formatting


def fmt_steps(step: float | None, exact: bool = True) -> str:
    """Env steps, short: 450000 -> ``450K``, 1000000 -> ``1M``, 250 -> ``250``, None -> ``-``.

    With ``exact`` (tables, notes; integer steps) only multiples of 100 (of 100K for ``M``)
    are shortened, so the text stays exact: 12345 -> ``12345``. Without (axis ticks, progress
    lines) every value from 1000 up is: 12345 -> ``12.345K``, 1250.0 -> ``1.25K``, 0.0 -> ``0``.
    """
    if step is None:
        return "-"
    for unit, suffix in ((1_000_000, "M"), (1000, "K")):
        if abs(step) >= unit and (not exact or step % (unit // 10) == 0):
            return f"{step / unit:g}{suffix}"
    return str(step) if exact else f"{step:g}"


def fmt_threshold(x: float) -> str:
    """8000 -> ``8K``, 2500 -> ``2.5K``, 300 -> ``300``, -1.5 -> ``-1.50``."""
    if abs(x) >= 1000 and x % 100 == 0:
        return f"{x / 1000:g}K"
    return f"{x:g}" if float(x).is_integer() else fmt_return(x)


def fmt_return(x: float | None) -> str:
    """12345.6 -> ``12,346``; 12.345 -> ``12.35``; None or non-finite -> ``-``."""
    if x is None or not math.isfinite(x):
        return "-"
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.2f}"


def _fmt_mean_ci(stats: SeedStats) -> str:
    lo, hi = stats.ci95
    return f"{fmt_return(stats.mean)} [{fmt_return(lo)}, {fmt_return(hi)}]"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)


# ----------------------------------------------------------------------------- figures


def figure_title(task: TaskSummary) -> str:
    """The env id, and the task (a config's name) where it differs: ``HalfCheetah-v5
    (halfcheetah_mbpo)``; a train run's task is its env id, named once."""
    return task.env_id if task.task == task.env_id else f"{task.env_id} ({task.task})"


NEAR = 0.15
"""A threshold line is drawn when it lies within this share of the curves' range (or of their
top value, if larger) of them."""


def thresholds_shown(thresholds: Sequence[float], values: Sequence[float]) -> list[float]:
    """The return thresholds worth a line: those the plotted ``values`` come near (within
    :data:`NEAR` of their range), so that a far threshold does not flatten an early curve."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return []
    lo, hi = min(finite), max(finite)
    margin = NEAR * max(hi - lo, abs(hi), 1e-9)
    return [x for x in thresholds if lo - margin <= x <= hi + margin]


def task_figure(task: TaskSummary, runs: Sequence[RunData]) -> Any:
    """The learning-curve figure of ``task`` (a matplotlib ``Figure`` on an Agg canvas)."""
    import_extra("matplotlib", "report figures", "report")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter

    fig = Figure(figsize=(6.4, 4.0), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    plotted: list[float] = []
    for arm, data in task.arms.items():
        color = ARM_COLOR.get(arm)
        for r in runs:
            if r.arm == arm and r.steps:
                ax.plot(r.steps, r.returns, color=color, alpha=0.2, linewidth=0.7)
                plotted += r.returns
        if data.curve:
            plotted += [v for c in data.curve for v in (c.mean, *c.ci95)]
            x = [c.step for c in data.curve]
            ax.plot(
                x,
                [c.mean for c in data.curve],
                color=color,
                linewidth=1.8,
                label=f"{ARM_LABEL.get(arm, arm)} (n={len(data.seeds)})",
            )
            ax.fill_between(
                x,
                [c.ci95[0] for c in data.curve],
                [c.ci95[1] for c in data.curve],
                color=color,
                alpha=0.25,
                linewidth=0,
            )
    for x in thresholds_shown(task.thresholds, plotted):
        ax.axhline(x, color="grey", linestyle=":", linewidth=0.8)
        ax.annotate(
            fmt_threshold(x),
            (0, x),
            xycoords=("axes fraction", "data"),
            xytext=(2, 2),
            textcoords="offset points",
            fontsize=7,
            color="grey",
        )
    ax.set_title(figure_title(task))
    ax.set_xlabel("env steps")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: fmt_steps(v, exact=False)))
    ax.set_ylabel("mean eval return (band: 95% bootstrap CI)")
    ax.grid(alpha=0.3)
    if task.arms:
        ax.legend(loc="best")
    return fig


def plot_task(task: TaskSummary, runs: Sequence[RunData], out_dir: Path) -> list[Path]:
    """Draw the learning curves of ``task`` (mean and band per arm, thin lines for the single
    ``runs``; return thresholds the curves come near) into ``out_dir/curves_<task>.png`` and
    ``.svg``; returns the two paths. Raises
    :class:`~spiking_dreamer.errors.MissingExtraError` without matplotlib."""
    fig = task_figure(task, runs)
    base = out_dir / f"curves_{_slug(task.task)}"
    png, svg = base.with_suffix(".png"), base.with_suffix(".svg")
    atomic_write(png, lambda t: fig.savefig(t, format="png", dpi=150, metadata={"Software": None}))
    atomic_write(svg, lambda t: fig.savefig(t, format="svg", metadata={"Date": None}))
    return [png, svg]


# ----------------------------------------------------------------------------- tables


def results_rows(tasks: Sequence[TaskSummary]) -> list[dict[str, Any]]:
    """One row per reported number (tidy form of the tables): task, env_id, arm, metric,
    param, value, ci95_low, ci95_high, n_seeds, note."""
    rows: list[dict[str, Any]] = []

    def row(t, arm, metric, param, value, ci=None, n=None, note=None):
        rows.append(
            {
                "task": t.task,
                "env_id": t.env_id,
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
        for arm, a in t.arms.items():
            for s in a.steps_to_threshold:
                note = f"{s.seeds_reached}/{s.n_seeds} seeds reached it"
                if s.step is None:
                    note = f"not reached by step {s.searched_to}; {note}"
                row(t, arm, "steps_to_threshold", s.threshold, s.step, None, s.n_seeds, note)
            for b in a.return_at:
                if b.stats is not None:
                    row(t, arm, "return_at", b.step, b.stats.mean, b.stats.ci95, b.n_seeds)
                else:
                    note = f"{b.reached_by}/{b.n_seeds} seeds have this eval"
                    row(t, arm, "return_at", b.step, None, None, b.n_seeds, note)
            f = a.final
            if f:
                n = f.stats.n_seeds
                row(t, arm, "final_return", f.step, f.stats.mean, f.stats.ci95, n)
                row(t, arm, "variance_final", f.step, f.variance, None, n)
                row(t, arm, "iqm_final", f.step, f.iqm, f.iqm_ci95, n)
        v = t.variance_ratio
        if v:
            n = min(v.n_dreaming, v.n_baseline)
            row(t, "-", "variance_ratio_baseline_over_dreaming", v.step,
                v.baseline_over_dreaming, None, n, v.note)  # fmt: skip
        p = t.probability_of_improvement
        if p:
            row(t, "-", "p_dreaming_gt_baseline", p.step, p.p, p.ci95)
    return rows


def curve_rows(tasks: Sequence[TaskSummary]) -> list[dict[str, Any]]:
    """One row per (task, arm, eval step) of the mean curves, with the band."""
    return [
        {
            "task": t.task,
            "env_id": t.env_id,
            "arm": arm,
            "step": c.step,
            "mean": c.mean,
            "ci95_low": c.ci95[0],
            "ci95_high": c.ci95[1],
            "n_seeds": c.n_seeds,
        }
        for t in tasks
        for arm, a in t.arms.items()
        for c in a.curve
    ]


def run_rows(runs: Sequence[RunData]) -> list[dict[str, Any]]:
    """One row per run: name, task, env_id, arm, seed, status, last and total steps, return."""
    return [
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
    ]


def write_csv(path: Path, rows: Sequence[Mapping[str, Any]], fields: Sequence[str]) -> None:
    """Write ``rows`` as CSV with the columns ``fields`` (None as an empty cell), atomically."""

    def write(tmp: Path) -> None:
        with tmp.open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(fields))
            w.writeheader()
            for r in rows:
                w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in fields})

    atomic_write(path, write)


# ----------------------------------------------------------------------------- Markdown


def notes(report: Report) -> list[str]:
    """Files with skipped lines, runs that are not done or have no evaluations, and tasks with
    a note."""
    out = [f"{r.name}: {p}" for r in report.runs for p in r.problems]
    for r in report.runs:
        last = fmt_steps(r.steps[-1]) if r.steps else "none"
        total = fmt_steps(r.total_steps) if r.total_steps else "?"
        if not r.steps:
            out.append(f"{r.name}: {r.status}, no evaluations (left out)")
        elif r.status != "done":
            out.append(f"{r.name}: {r.status}, last evaluation at step {last} of {total}")
    return out + [f"{t.task}: {t.note}" for t in report.tasks if t.note]


def provenance(report: Report) -> dict[str, Any] | None:
    """The sweep's command, commit, date, machine, versions, overrides, seeds and arms."""
    manifest = report.experiment.manifest
    if not manifest:
        return None
    keys = ("command", "commit", "date", "machine", "versions", "overrides", "seeds", "arms")
    return {k: manifest.get(k) for k in keys}


def markdown(report: Report) -> str:
    """The README-ready Markdown report."""
    lines = [f"# Experiment {report.experiment.name}", ""]
    prov = provenance(report) or {}
    if prov:
        lines += [
            f"Command: `{prov.get('command')}`; commit `{prov.get('commit')}`; "
            f"{prov.get('date')}; {prov.get('machine', {}).get('cpu')} "
            f"({prov.get('machine', {}).get('cores')} cores).",
            "",
        ]
    lines += [
        "Return at N = mean return of the evaluation at env step N (— until every seed has "
        "it); steps to X = first eval step "
        'whose return is ≥ X ("not reached" otherwise, never extrapolated), for the mean curve '
        "across seeds (with how many single seeds reached X). Brackets: 95% bootstrap CI over "
        "seeds. Variance: across seeds (ddof 1) at the last eval step common to all runs.",
        "",
    ]
    for t in report.tasks:
        lines += _task_markdown(t)
    if report.aggregate:
        lines += _aggregate_markdown(report.aggregate)
    report_notes = notes(report)
    if report_notes:
        lines += ["## Notes", ""] + [f"- {n}" for n in report_notes] + [""]
    return "\n".join(lines)


def _task_markdown(t: TaskSummary) -> list[str]:
    """One task's section: heading, figure, table, variance ratio, IQM, P(improvement)."""
    lines = [f"## {t.env_id} (`{t.task}`)", ""]
    if t.figure:
        lines += [f"![{t.env_id} learning curves]({t.figure})", ""]
    final = t.final_step
    head = ["Method", "Seeds"]
    head += [f"Steps to {fmt_threshold(x)}" for x in t.thresholds]
    head += [f"Return @ {fmt_steps(b)}" + (" (final)" if b == final else "") for b in t.budgets]
    head += [f"Cross-seed variance @ {fmt_steps(final)}"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for arm, a in t.arms.items():
        cells = [ARM_LABEL.get(arm, arm), str(len(a.seeds))]
        for s in a.steps_to_threshold:
            seeds = f"{s.seeds_reached}/{s.n_seeds} seeds"
            cells.append(
                f"not reached ({seeds})" if s.step is None else f"{fmt_steps(s.step)} ({seeds})"
            )
        for b in a.return_at:
            cells.append(
                _fmt_mean_ci(b.stats)
                if b.stats is not None
                else f"— ({b.reached_by}/{b.n_seeds} seeds have this eval)"
            )
        var = a.final.variance if a.final else None
        cells.append("-" if var is None else f"{var:,.0f}" if var >= 1000 else f"{var:.3g}")
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    v = t.variance_ratio
    if v:
        r = v.baseline_over_dreaming
        text = "-" if r is None else f"{r:.3g}"
        extra = f"; {v.note}" if v.note else ""
        lines.append(
            f"Variance ratio baseline/dreaming at step {fmt_steps(v.step)}: {text} "
            f"({v.n_baseline} vs {v.n_dreaming} seeds{extra})."
        )
    iqms = [
        f"{ARM_LABEL.get(arm, arm)} {fmt_return(a.final.iqm)} "
        f"[{fmt_return(a.final.iqm_ci95[0])}, {fmt_return(a.final.iqm_ci95[1])}]"
        for arm, a in t.arms.items()
        if a.final
    ]
    if iqms:
        lines.append(f"IQM of returns at step {fmt_steps(final)}: " + "; ".join(iqms) + ".")
    p = t.probability_of_improvement
    if p:
        lines.append(
            f"P(dreaming > baseline) at step {fmt_steps(p.step)}: {p.p:.2f} "
            f"[{p.ci95[0]:.2f}, {p.ci95[1]:.2f}]."
        )
    lines.append("")
    return lines


def _aggregate_markdown(agg: Aggregate) -> list[str]:
    lines = ["## All tasks", ""]
    for arm, v in (agg.iqm or {}).items():
        lines.append(
            f"- IQM of {v.score} final returns, {ARM_LABEL.get(arm, arm)}: "
            f"{v.iqm:.3f} [{v.ci95[0]:.3f}, {v.ci95[1]:.3f}]"
        )
    if agg.note:
        lines.append(f"- {agg.note}")
    p = agg.probability_of_improvement
    if p:
        lines.append(
            f"- P(dreaming > baseline), mean over tasks: {p.p:.2f} "
            f"[{p.ci95[0]:.2f}, {p.ci95[1]:.2f}]"
        )
    lines.append("")
    return lines


# ----------------------------------------------------------------------------- the report


def report_json(report: Report) -> dict[str, Any]:
    """``report.json``'s content, without ``files``."""
    exp = report.experiment
    out: dict[str, Any] = {"experiment": exp.name, "exp_dir": str(exp.path)}
    if len(exp.inputs) > 1:
        out["inputs"] = [str(p) for p in exp.inputs]
    return {
        **out,
        "provenance": provenance(report),
        "bootstrap": {
            "reps": report.reps,
            "seed": report.seed,
            "level": 0.95,
            "method": "percentile",
        },
        "runs": run_rows(report.runs),
        "tasks": [t.to_json() for t in report.tasks],
        "aggregate": report.aggregate.to_json() if report.aggregate else None,
        "notes": notes(report),
    }
