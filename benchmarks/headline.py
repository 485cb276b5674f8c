"""The README's headline table: every task of the decisive benchmark in one table, from results.

    python benchmarks/headline.py --spec benchmarks/headline.yaml \\
        --markdown benchmarks/results/headline.md --out benchmarks/results/headline.json

The spec (YAML) gives the env steps to report (``at``) and, per task, the real-only control's
``learning_curve.py`` result file, the arms' result files, the returns for "steps to X"
(``thresholds``), the ``aim`` at the last step, and the ``anchors`` and ``claims`` shown beside
them, each labelled with its env version and protocol (its returns by env step). Per arm and
control: at each step the mean return with its 95% bootstrap CI and the IQM with its own, and
the per-seed values; per seed the first eval step, up to the last of ``at``, reaching each
threshold ("not reached by" that step otherwise, never extrapolated); P(arm > control) at the
last step (rliable's probability of improvement, unpaired, with its bootstrap CI; Agarwal et
al., NeurIPS 2021); the per-seed paired differences to the control at each step (every seed of
an arm must have a control run of the same seed); the median wall time of a run. Under the
table, the aims: whether each arm's mean reaches the task's aim at the last step, and whether
each model-using arm is ahead of its control there on every seed. Every input is checked before
anything is computed (exit 2 naming the problem, nothing written). ``--task NAME``
(repeatable) reports only the named tasks and reads only their files: a task whose runs are all
in can be shown while another's still run.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from paired_comparison import arm_stats, curves, read_parsed, wall_times

from spiking_dreamer.errors import OutputPathError
from spiking_dreamer.files import atomic_write, atomic_write_json, check_output_file
from spiking_dreamer.provenance import result_header
from spiking_dreamer.report import fmt_steps, probability_of_improvement_ci

TASK_KEYS = {"task", "thresholds", "aim", "control", "arms", "anchors", "claims"}
RUN_KEYS = {"label", "file", "model"}
QUOTE_KEYS = {"label", "returns"}


class SpecError(ValueError):
    """A headline spec that cannot be used, with the reason."""


def _keys(where: str, entry: Any, allowed: set[str], required: set[str]) -> dict[str, Any]:
    if not isinstance(entry, dict):
        raise SpecError(f"{where}: expected a mapping, got {type(entry).__name__}")
    unknown = sorted(set(entry) - allowed)
    if unknown:
        raise SpecError(
            f"{where}: unknown key {unknown[0]!r}; allowed: {', '.join(sorted(allowed))}"
        )
    missing = sorted(required - set(entry))
    if missing:
        raise SpecError(f"{where}: missing key {missing[0]!r}")
    return entry


def _number(where: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not np.isfinite(value):
        raise SpecError(f"{where}: expected a number, got {value!r}")
    return float(value)


def _run(where: str, entry: Any, root: Path, at: list[int]) -> dict[str, Any]:
    """A run of the spec, its result file read; every seed of it must have run to every step
    of ``at`` (a figure over fewer seeds than the row names would be a different figure)."""
    entry = _keys(where, entry, RUN_KEYS, {"label", "file"})
    path = root / str(entry["file"])
    try:
        runs = curves(path)
        missing = json.loads(path.read_text()).get("missing_seeds")
    except ValueError as e:
        raise SpecError(f"{where}: {e}") from e
    if missing:
        raise SpecError(f"{where}: {path}: seeds {missing} have no runs; collect it again")
    for seed, curve in sorted(runs.items(), key=lambda kv: int(kv[0])):
        short = [step for step in at if step not in curve]
        if short:
            raise SpecError(
                f"{where}: {path}: seed {seed} has no evaluation at step {short[0]} "
                f"(its last is {max(curve)}); collect it again once its run has finished"
            )
    return {
        "label": str(entry["label"]),
        "file": str(entry["file"]),
        "model": bool(entry.get("model", False)),
        "curves": runs,
        "wall": wall_times(path),
    }


def _quote(where: str, entry: Any) -> dict[str, Any]:
    entry = _keys(where, entry, QUOTE_KEYS, QUOTE_KEYS)
    returns = entry["returns"]
    if not isinstance(returns, dict) or not returns:
        raise SpecError(f"{where}.returns: expected env step -> return")
    out = {}
    for step, value in returns.items():
        if isinstance(step, bool) or not isinstance(step, int) or step <= 0:
            raise SpecError(f"{where}.returns: env steps are positive integers, got {step!r}")
        out[step] = _number(f"{where}.returns[{step}]", value)
    return {"label": str(entry["label"]), "returns": out}


def load_spec(path: Path, root: Path, only: list[str] | None = None) -> dict[str, Any]:
    """The spec with every result file loaded; raises ``SpecError`` naming the first problem.

    Result files are relative to ``root`` (the repository). ``only``: the tasks to load, by
    name (every task of the spec when None); the others' files are not read."""
    try:
        raw = read_parsed(path, yaml.safe_load, yaml.YAMLError, "YAML")
    except ValueError as e:
        raise SpecError(str(e)) from e
    raw = _keys(str(path), raw, {"at", "tasks"}, {"at", "tasks"})
    at = raw["at"]
    if (
        not isinstance(at, list)
        or not at
        or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in at)
        or at != sorted(set(at))
    ):
        raise SpecError(f"{path}: at: expected increasing positive env steps, got {at!r}")
    if not isinstance(raw["tasks"], list) or not raw["tasks"]:
        raise SpecError(f"{path}: tasks: expected a list of tasks")
    if only is not None:
        names = [str(t.get("task")) for t in raw["tasks"] if isinstance(t, dict)]
        unknown = [name for name in only if name not in names]
        if unknown:
            raise SpecError(f"--task {unknown[0]!r}: not a task of {path}; its tasks: {names}")
    tasks = []
    for i, t in enumerate(raw["tasks"]):
        where = f"tasks[{i}]"
        t = _keys(where, t, TASK_KEYS, {"task", "control", "arms"})
        if only is not None and str(t["task"]) not in only:
            continue
        thresholds = t.get("thresholds", [])
        if not isinstance(thresholds, list):
            raise SpecError(f"{where}.thresholds: expected a list of returns")
        control = _run(f"{where}.control", t["control"], root, at)
        if not isinstance(t["arms"], list) or not t["arms"]:
            raise SpecError(f"{where}.arms: expected a list of arms")
        arms = [_run(f"{where}.arms[{j}]", a, root, at) for j, a in enumerate(t["arms"])]
        for j, arm in enumerate(arms):
            unpaired = sorted(set(arm["curves"]) - set(control["curves"]), key=int)
            if unpaired:
                raise SpecError(
                    f"{where}.arms[{j}]: seeds {', '.join(unpaired)} have no run of the "
                    "control: every seed of an arm is compared with the control's same seed"
                )
        quotes = {}
        for kind in ("anchors", "claims"):
            entries = t.get(kind, [])
            if not isinstance(entries, list):
                raise SpecError(f"{where}.{kind}: expected a list")
            quotes[kind] = [_quote(f"{where}.{kind}[{j}]", q) for j, q in enumerate(entries)]
        tasks.append(
            {
                "task": str(t["task"]),
                "thresholds": [_number(f"{where}.thresholds", x) for x in thresholds],
                "aim": _number(f"{where}.aim", t["aim"]) if "aim" in t else None,
                "control": control,
                "arms": arms,
                **quotes,
            }
        )
    return {"at": at, "tasks": tasks}


def task_rows(task: dict[str, Any], at: list[int]) -> list[dict[str, Any]]:
    """Per run (the control first): its stats, its paired Δ per step and P(arm > control)."""
    ref = task["control"]["curves"]
    rows = []
    for run in [task["control"], *task["arms"]]:
        mine = run["curves"]
        row: dict[str, Any] = {
            "label": run["label"],
            "file": run["file"],
            "model": run["model"],
            "control": run is task["control"],
            "stats": arm_stats(mine, at, task["thresholds"]),
            "wall_time_s": run["wall"],
        }
        if not row["control"]:
            paired = sorted(set(ref) & set(mine), key=int)
            for step in at:
                seeds = [s for s in paired if step in ref[s] and step in mine[s]]
                if seeds:
                    row[f"delta_{step}"] = {
                        "seeds": seeds,
                        "per_seed": [mine[s][step] - ref[s][step] for s in seeds],
                    }
            last = at[-1]
            xs = [mine[s][last] for s in mine if last in mine[s]]
            ys = [ref[s][last] for s in ref if last in ref[s]]
            if xs and ys:
                p, ci = probability_of_improvement_ci([xs], [ys])
                row["p_improvement"] = {"step": last, "p": p, "ci95": list(ci)}
        rows.append(row)
    return rows


def aims(task: dict[str, Any], rows: list[dict[str, Any]], at: list[int]) -> list[str]:
    """The aims of a task against what its runs reached at the last step, in words."""
    last, k = at[-1], fmt_steps(at[-1], exact=False)
    lines = []
    for row in rows:
        a = row["stats"].get(f"at_{last}")
        if task["aim"] is not None:
            if a is None:
                lines.append(f"{row['label']}: not run to {k}")
            else:
                reached = "reached" if a["mean"] >= task["aim"] else "not reached"
                lines.append(
                    f"{row['label']}: {a['mean']:,.0f} at {k} against the aim of "
                    f"{task['aim']:,.0f}, {reached}"
                )
        if row["model"]:
            d = row.get(f"delta_{last}")
            if d is None:
                lines.append(f"{row['label']}: no seed paired with the control at {k}")
                continue
            ahead = all(x > 0 for x in d["per_seed"])
            lines.append(
                f"{row['label']}: {'ahead of' if ahead else 'not ahead of'} its real-only control "
                f"on every seed at {k} (Δ {_signed(d['per_seed'])}, seeds {', '.join(d['seeds'])})"
            )
    return lines


def _signed(values: list[float]) -> str:
    return " / ".join(f"{v:+,.0f}" for v in values)


def _return_cell(a: dict[str, Any] | None) -> list[str]:
    if a is None:
        return ["not run to here", ""]
    lo, hi = a["ci95"]
    ilo, ihi = a["iqm_ci95"]
    return [
        f"{a['mean']:,.0f} [{lo:,.0f}, {hi:,.0f}]; {a['iqm']:,.0f} [{ilo:,.0f}, {ihi:,.0f}]",
        " / ".join(f"{v:,.0f}" for v in a["per_seed"]),
    ]


def reading_note(rows: list[list[dict[str, Any]]]) -> str:
    """How to read the table's intervals and comparisons, for the seed counts it has."""
    counts = {len(r["stats"]["seeds"]) for task_rows_ in rows for r in task_rows_}
    few = sorted(n for n in counts if n < 4)
    note = (
        "Brackets: 95% percentile bootstrap CIs over seeds. P(arm > control) compares every "
        "seed of the arm with every seed of the control (unpaired, rliable's); the Δ columns "
        "pair the seeds by id."
    )
    if few:
        seeds = " or ".join(str(n) for n in few)
        cover = ", ".join(f"{1 - 2 * 0.5**n:.0%} for {n}" for n in few if n > 1)
        note += (
            f" A row of {seeds} seeds: its bootstrap interval is the seeds' range, lowest to "
            "highest (a resample of the lowest seed alone is more likely than 2.5%)"
            + (
                f", which holds the median of the seeds' distribution with probability "
                f"1 − 2·0.5^n ({cover})"
                if cover
                else ""
            )
            + ", and its IQM (⌊n/4⌋ seeds trimmed at each end) is the mean: read both as "
            "descriptions of those seeds."
        )
    return note


def markdown(tasks: list[dict[str, Any]], rows: list[list[dict[str, Any]]], at: list[int]) -> str:
    """One table for every task (runs, then anchors and claims), then each task's aims."""
    k = lambda step: fmt_steps(step, exact=False)  # noqa: E731
    head = ["task", "arm", "seeds"]
    for step in at:
        head += [f"return @ {k(step)}: mean [95% CI]; IQM [95% CI]", f"@ {k(step)} per seed"]
    head += ["steps to X per seed", f"P(arm > control) @ {k(at[-1])} [95% CI]"]
    head += [f"Δ vs control per seed @ {k(step)}" for step in at]
    head += ["wall time per run (median)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    blank_tail = ["", "", *["" for _ in at], ""]
    for task, task_rows_ in zip(tasks, rows, strict=True):
        for row in task_rows_:
            st = row["stats"]
            cells = [task["task"], row["label"], ", ".join(st["seeds"])]
            for step in at:
                cells += _return_cell(st.get(f"at_{step}"))
            cells.append(
                "; ".join(
                    f"{float(t):,.0f}: "
                    + " / ".join(
                        f"not reached by {k(at[-1])}" if s is None else k(s)
                        for s in st["steps_to"][t]
                    )
                    for t in st["steps_to"]
                )
            )
            if row["control"]:
                cells += ["(real-only control)", *["" for _ in at]]
            else:
                p = row.get("p_improvement")
                cells.append(
                    f"{p['p']:.2f} [{p['ci95'][0]:.2f}, {p['ci95'][1]:.2f}]"
                    if p
                    else "no common step"
                )
                cells += [
                    _signed(row[f"delta_{step}"]["per_seed"]) if f"delta_{step}" in row else ""
                    for step in at
                ]
            wall = row["wall_time_s"]
            cells.append(f"{np.median(wall) / 3600:.1f} h" if wall else "unfinished")
            lines.append("| " + " | ".join(cells) + " |")
        for kind, prefix in (("anchors", "anchor"), ("claims", "claim")):
            for q in task[kind]:
                cells = [task["task"], f"{prefix}: {q['label']}", ""]
                elsewhere = {s: v for s, v in q["returns"].items() if s not in at}
                for i, step in enumerate(at):
                    value = q["returns"].get(step)
                    text = "–" if value is None else f"{value:,.0f}"
                    if i == len(at) - 1 and elsewhere:
                        text += " (" + "; ".join(f"{k(s)}: {v:,.0f}" for s, v in elsewhere.items())
                        text += ")"
                    cells += [text, ""]
                lines.append("| " + " | ".join(cells + blank_tail) + " |")
    out = "\n".join(lines) + "\n\n" + reading_note(rows) + "\n"
    for task, task_rows_ in zip(tasks, rows, strict=True):
        said = aims(task, task_rows_, at)
        if said:
            out += f"\nAims, {task['task']}: " + "; ".join(said) + ".\n"
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", type=Path, required=True, help="the tasks, runs and anchors")
    parser.add_argument("--markdown", type=Path, required=True, help="the table (.md)")
    parser.add_argument("--out", type=Path, help="also every figure of the table (.json)")
    parser.add_argument(
        "--root", type=Path, default=Path.cwd(), help="result files are relative to it"
    )
    parser.add_argument(
        "--task",
        action="append",
        metavar="NAME",
        help="only this task of the spec (repeatable; every task by default)",
    )
    args = parser.parse_args()
    try:
        if args.out is not None and args.out.resolve() == args.markdown.resolve():
            raise OutputPathError("--markdown and --out name the same file")
        for flag, out in (("--markdown", args.markdown), ("--out", args.out)):
            if out is not None:
                check_output_file(out, flag, inputs=[args.spec])
        spec = load_spec(args.spec, args.root, args.task)
    except (OutputPathError, SpecError) as e:
        parser.error(str(e))

    at = spec["at"]
    rows = [task_rows(task, at) for task in spec["tasks"]]
    table = markdown(spec["tasks"], rows, at)
    atomic_write(args.markdown, lambda t: Path(t).write_text(table))
    print(table, end="")
    print(f"wrote {args.markdown}")
    if args.out:
        result = {
            **result_header("headline"),
            "spec": str(args.spec),
            "at": at,
            "tasks": [
                {
                    "task": task["task"],
                    "aim": task["aim"],
                    "rows": task_rows_,
                    "anchors": task["anchors"],
                    "claims": task["claims"],
                }
                for task, task_rows_ in zip(spec["tasks"], rows, strict=True)
            ],
        }
        atomic_write_json(args.out, result)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
