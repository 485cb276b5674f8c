"""``write_report``: read the inputs, analyse them and write the report files.

The stages: :func:`~.load.load_inputs` (runs), :func:`~.analysis.analyse` (summaries),
:mod:`.render` (figures, CSV, Markdown, JSON), every file written atomically.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from spiking_dreamer.errors import OutputPathError
from spiking_dreamer.files import atomic_write, atomic_write_json, check_output_dir
from spiking_dreamer.report.analysis import analyse
from spiking_dreamer.report.load import ReportError, load_inputs
from spiking_dreamer.report.render import (
    REPORT_FILES,
    curve_rows,
    markdown,
    plot_task,
    report_json,
    results_rows,
    write_csv,
)


def _output_dir(out_dir: str | Path | None, inputs: Sequence[Path], common: Path) -> Path:
    """``out_dir``, or ``<input>/report`` (several inputs: ``<common parent>/report``), checked
    to be creatable and writable (not created yet); a :class:`ReportError` when it is not."""
    if out_dir is not None:
        out = Path(out_dir)
    else:
        out = (inputs[0] if len(inputs) == 1 else common) / "report"
    if out.exists() and not out.is_dir():
        raise ReportError(f"report output {out} is a file, not a directory (choose another --out)")
    try:
        return check_output_dir(out, "report output")
    except OutputPathError as e:
        raise ReportError(str(e)) from None


def _create(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ReportError(f"cannot create the report directory {out}: {e}") from None


def write_report(
    exp_dir: str | Path | Sequence[str | Path],
    out_dir: str | Path | None = None,
    thresholds: Mapping[str, Sequence[float]] | None = None,
    budgets: Sequence[int] | None = None,
    reps: int = 2000,
    seed: int = 0,
    figures: bool = True,
) -> dict[str, Any]:
    """Analyse ``exp_dir`` (one or several inputs: sweep experiments, train run directories or
    folders of them; see :mod:`.load`) and write the report files into ``out_dir`` (default
    ``<input>/report``); returns ``report.json``'s content (with ``files``: the paths written).

    ``thresholds`` maps env ids, families or task names to return thresholds, ``budgets`` the
    steps to report returns at (None: :data:`~.analysis.DEFAULT_BUDGETS` where every run has
    them), ``reps`` and ``seed`` drive every bootstrap; ``figures`` False skips matplotlib.
    Raises :class:`ReportError` for unusable inputs or options; nothing is written then.
    """
    if reps < 1:
        raise ReportError(f"--reps must be >= 1, got {reps}")
    inputs = [Path(exp_dir)] if isinstance(exp_dir, str | Path) else [Path(p) for p in exp_dir]
    experiment = load_inputs(inputs)
    out = _output_dir(out_dir, inputs, experiment.path)
    report = analyse(experiment, thresholds, budgets, reps, seed)
    _create(out)
    tasks = []
    for t in report.tasks:
        if figures and any(a.curve for a in t.arms.values()):
            runs = [r for r in report.runs if r.task == t.task and r.steps]
            png, _svg = plot_task(t, runs, out)
            t = replace(t, figure=png.name)
        tasks.append(t)
    report = replace(report, tasks=tuple(tasks))
    content = report_json(report)
    files = {key: out / name for key, name in REPORT_FILES.items()}
    fields = ["task", "env_id", "arm", "metric", "param", "value", "ci95_low", "ci95_high"]
    write_csv(files["results_csv"], results_rows(report.tasks), [*fields, "n_seeds", "note"])
    curves = curve_rows(report.tasks)
    write_csv(files["curves_csv"], curves, list(curves[0]) if curves else ["task"])
    write_csv(files["runs_csv"], content["runs"], list(content["runs"][0]))
    content["files"] = {k: str(v) for k, v in files.items()}
    pngs = [out / t.figure for t in report.tasks if t.figure]
    svgs = [p.with_suffix(".svg") for p in pngs]
    content["files"]["figures"] = [str(p) for p in [*pngs, *svgs]]
    text = markdown(report)
    atomic_write(files["markdown"], lambda tmp: tmp.write_text(text))
    atomic_write_json(files["json"], content)
    return content
