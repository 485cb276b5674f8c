"""Paired per-seed comparison of learning-curve result files against a reference arm.

The arms of a comparison share seeds and (for the dreaming variants) everything up to the first
dream phase, so differences are paired per seed. For each arm: the return at given steps and the
mean eval return over a window of steps (protocol: ``../shared/reference/protocol.md``), each as
the mean over seeds and the per-seed difference to the reference. Only seeds present in both
files are paired; a window an arm has not finished is reported up to its last common step.

    python benchmarks/paired_comparison.py \\
        --reference benchmarks/results/halfcheetah_baseline_100k.json \\
        --arms benchmarks/results/halfcheetah_dreaming_h1mean_utd3_100k.json \\
               benchmarks/results/halfcheetah_real_utd3_100k.json \\
        --at 55000 100000 --window 55000 100000 \\
        --out benchmarks/results/halfcheetah_100k_paired.json

``--plot FILE.svg`` also draws every arm's per-seed curves (one colour per arm, one line style
per seed), the reference first; ``--labels`` names the reference and the arms in that order
(default: the file stems).

``--thresholds`` adds, per arm and seed, the first eval step reaching each return to ``--out``
(with each arm's mean, 95% bootstrap CI, IQM and per-seed values at the ``--at`` steps, and
P(arm > reference) at the last one). The README's headline table is ``headline.py``'s.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from spiking_dreamer.errors import OutputPathError, import_extra
from spiking_dreamer.files import atomic_write, atomic_write_json, check_output_file
from spiking_dreamer.provenance import result_header
from spiking_dreamer.report import (
    bootstrap_ci,
    fmt_steps,
    iqm,
    probability_of_improvement_ci,
    steps_to_threshold,
)


def read_parsed(path: Path, parse: Callable[[str], Any], error: type[Exception], what: str) -> Any:
    """``parse`` of the text of ``path``; ``ValueError`` naming the file when it cannot be read
    or ``parse`` raises ``error`` (the file is not ``what``, e.g. ``"JSON"``)."""
    try:
        return parse(path.read_text())
    except OSError as e:
        raise ValueError(f"{path}: cannot read it ({e.strerror or e})") from e
    except error as e:
        raise ValueError(f"{path}: not {what} ({e})") from e


def curves(path: Path) -> dict[str, dict[int, float]]:
    """Per seed: eval step -> mean return, from a ``learning_curve.py`` result file.

    Raises ``ValueError`` naming the file and the problem when it is not such a file."""
    data = read_parsed(path, json.loads, json.JSONDecodeError, "JSON")
    seeds = data.get("seeds") if isinstance(data, dict) else None
    if not isinstance(seeds, dict) or not seeds:
        raise ValueError(f"{path}: no 'seeds' with runs; not a learning_curve.py result file")
    out: dict[str, dict[int, float]] = {}
    for seed, run in seeds.items():
        steps = run.get("steps") if isinstance(run, dict) else None
        returns = run.get("return_mean") if isinstance(run, dict) else None
        if not isinstance(steps, list) or not isinstance(returns, list) or not steps:
            raise ValueError(f"{path}: seed {seed} has no 'steps' and 'return_mean' lists")
        if len(steps) != len(returns):
            raise ValueError(f"{path}: seed {seed} has {len(steps)} steps, {len(returns)} returns")
        out[seed] = dict(zip(steps, returns, strict=True))
    return out


def wall_times(path: Path) -> list[float]:
    """Per finished seed: the run's wall time in seconds, from a result file."""
    data = json.loads(path.read_text())
    return [r["wall_time_s"] for r in data["seeds"].values() if r.get("wall_time_s")]


def threshold_key(threshold: float) -> str:
    """A threshold as a key, every digit kept: ``5000`` for 5000.0, ``2.5`` for 2.5."""
    t = float(threshold)
    return str(int(t)) if t.is_integer() else repr(t)


def arm_stats(
    arm: dict[str, dict[int, float]], at: list[int], thresholds: list[float]
) -> dict[str, Any]:
    """One arm on its own: per ``at`` step the per-seed returns, their mean with a 95%
    bootstrap CI and their IQM with one; per threshold the first step, up to the last of
    ``at``, at which each seed reaches it (None: not reached by then, whatever the run did
    later). Thresholds are keyed by :func:`threshold_key`."""
    seeds = sorted(arm, key=int)
    out: dict[str, Any] = {"seeds": seeds}
    for step in at:
        vals = [arm[s][step] for s in seeds if step in arm[s]]
        if vals:
            out[f"at_{step}"] = {
                "seeds": [s for s in seeds if step in arm[s]],
                "per_seed": vals,
                "mean": float(np.mean(vals)),
                "ci95": list(bootstrap_ci(vals)),
                "iqm": iqm(vals),
                "iqm_ci95": list(bootstrap_ci(vals, iqm)),
            }
    until = max(at)
    out["steps_to"] = {
        threshold_key(t): [
            steps_to_threshold(
                [k for k in sorted(arm[s]) if k <= until],
                [arm[s][k] for k in sorted(arm[s]) if k <= until],
                t,
            )
            for s in seeds
        ]
        for t in thresholds
    }
    return out


def shared_steps(a: dict[int, float], b: dict[int, float], lo: int, hi: int) -> list[int]:
    """The eval steps of both curves with ``lo <= step <= hi``, in order."""
    return sorted(s for s in a if s in b and lo <= s <= hi)


def compare(
    ref: dict[str, dict[int, float]],
    arm: dict[str, dict[int, float]],
    at: list[int],
    window: tuple[int, int],
) -> dict[str, Any]:
    seeds = sorted(set(ref) & set(arm), key=int)
    out: dict[str, Any] = {"seeds": seeds}
    for step in at:
        paired = [s for s in seeds if step in arm[s] and step in ref[s]]
        if paired:
            out[f"at_{step}"] = {
                "mean": float(np.mean([arm[s][step] for s in paired])),
                "reference_mean": float(np.mean([ref[s][step] for s in paired])),
                "per_seed_delta": [arm[s][step] - ref[s][step] for s in paired],
            }
    lo, hi = window  # per seed, the same evaluations on both sides, up to the last all share
    shared = {s: shared_steps(arm[s], ref[s], lo, hi) for s in seeds}
    last = min(max(steps) for steps in shared.values())
    means = [float(np.mean([arm[s][k] for k in shared[s] if k <= last])) for s in seeds]
    refs = [float(np.mean([ref[s][k] for k in shared[s] if k <= last])) for s in seeds]
    out["window"] = {
        "from": lo,
        "to": last,
        "mean": float(np.mean(means)),
        "per_seed": means,
        "reference_mean": float(np.mean(refs)),
        "per_seed_delta": [m - r for m, r in zip(means, refs, strict=True)],
    }
    return out


def plot_curves(arms: dict[str, dict[str, dict[int, float]]], title: str, out: Path) -> None:
    """Draw ``label -> seed -> {step: return}`` into ``out`` (an ``.svg`` or ``.png``)."""
    import_extra("matplotlib", "the comparison figure", "report")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter

    fig = Figure(figsize=(7.0, 4.2), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    styles = ["-", "--", ":", "-."]
    for i, (label, seeds) in enumerate(arms.items()):
        color = f"C{i}"
        for j, (seed, curve) in enumerate(sorted(seeds.items(), key=lambda kv: int(kv[0]))):
            steps = sorted(curve)
            ax.plot(
                steps,
                [curve[s] for s in steps],
                color=color,
                linestyle=styles[j % len(styles)],
                linewidth=1.4,
                marker="o",
                markersize=2.5,
                label=f"{label}, seed {seed}",
            )
    ax.set_title(title)
    ax.set_xlabel("env steps")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: fmt_steps(v, exact=False)))
    ax.set_ylabel("eval return (10 deterministic episodes)")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=7)
    fmt = out.suffix.lstrip(".").lower()
    metadata = {"Date": None} if fmt == "svg" else {"Software": None}
    atomic_write(out, lambda t: fig.savefig(t, format=fmt, metadata=metadata))


PLOT_SUFFIXES = (".svg", ".png")
"""The figure formats ``--plot`` writes."""


def _fmt(values: list[float]) -> str:
    return " / ".join(f"{v:+,.0f}" for v in values)


def output_problem(args: argparse.Namespace, inputs: list[Path]) -> str | None:
    """What is wrong with ``--out`` and ``--plot`` (``None``: nothing): a plot that is not
    ``.svg`` or ``.png``, the two the same file, either one an input or unwritable."""
    if args.plot is not None and args.plot.suffix.lower() not in PLOT_SUFFIXES:
        return f"--plot {args.plot}: name a {' or '.join(PLOT_SUFFIXES)} file"
    if args.out is not None and args.plot is not None and args.out.resolve() == args.plot.resolve():
        return "--out and --plot name the same file"
    try:
        for flag, out in (("--out", args.out), ("--plot", args.plot)):
            if out is not None:
                check_output_file(out, flag, inputs=inputs)
    except OutputPathError as e:
        return str(e)
    return None


def check_args(
    parser: argparse.ArgumentParser, args: argparse.Namespace
) -> dict[str, dict[str, dict[int, float]]]:
    """Every argument and input file checked before any work (exit 2 naming the problem);
    returns the curves of the reference and the arms, keyed by path."""
    paths = [args.reference, *args.arms]
    problem = output_problem(args, paths)
    if problem:
        parser.error(problem)
    if args.labels is not None and len(args.labels) != len(paths):
        parser.error(f"--labels needs {len(paths)} names: the reference, then each arm")
    if min(args.at) < 0:
        parser.error(f"--at: env steps are >= 0, got {min(args.at)}")
    lo, hi = args.window
    if not 0 <= lo <= hi:
        parser.error(f"--window {lo} {hi}: needs 0 <= FROM <= TO")
    loaded: dict[str, dict[str, dict[int, float]]] = {}
    for p in paths:
        try:
            loaded[str(p)] = curves(p)
        except ValueError as e:
            parser.error(str(e))
        for seed, curve in loaded[str(p)].items():
            if not any(lo <= s <= hi for s in curve):
                parser.error(f"{p}: seed {seed} has no eval step in --window {lo} {hi}")
    ref = loaded[str(args.reference)]
    unpaired = [str(p) for p in args.arms if not set(ref) & set(loaded[str(p)])]
    if unpaired:
        parser.error(f"no seed in common with --reference: {', '.join(unpaired)}")
    for p in args.arms:
        arm = loaded[str(p)]
        for seed in sorted(set(ref) & set(arm), key=int):
            if not shared_steps(arm[seed], ref[seed], lo, hi):
                parser.error(
                    f"{p}: seed {seed} shares no eval step in --window {lo} {hi} with --reference"
                )
    return loaded


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", type=Path, required=True)
    parser.add_argument("--arms", type=Path, nargs="+", required=True)
    parser.add_argument("--at", type=int, nargs="+", default=[55_000, 100_000])
    parser.add_argument("--window", type=int, nargs=2, default=[55_000, 100_000])
    parser.add_argument("--out", type=Path)
    parser.add_argument("--plot", type=Path, help="also draw the per-seed curves (.svg or .png)")
    parser.add_argument("--labels", nargs="+", help="names of the reference and the arms")
    parser.add_argument("--title", default="per-seed learning curves")
    parser.add_argument(
        "--thresholds", type=float, nargs="*", default=[], help="returns for 'steps to X'"
    )
    args = parser.parse_args()
    paths = [args.reference, *args.arms]
    loaded = check_args(parser, args)
    ref = loaded[str(args.reference)]
    lo, hi = args.window
    rows = {str(p): compare(ref, loaded[str(p)], args.at, (lo, hi)) for p in args.arms}
    stats = {str(p): arm_stats(loaded[str(p)], args.at, args.thresholds) for p in paths}
    last = args.at[-1]
    for p in args.arms:
        arm = loaded[str(p)]
        mine = [arm[s][last] for s in arm if last in arm[s]]
        theirs = [ref[s][last] for s in ref if last in ref[s]]
        if mine and theirs:
            point, ci = probability_of_improvement_ci([mine], [theirs])
            rows[str(p)]["p_improvement"] = {"step": last, "p": point, "ci95": list(ci)}
    print(f"reference: {args.reference}; Δ per seed = arm − reference")
    for name, row in rows.items():
        w = row["window"]
        cells = [
            f"mean {w['from'] // 1000}K–{w['to'] // 1000}K {w['mean']:,.0f} vs "
            f"{w['reference_mean']:,.0f} ({_fmt(w['per_seed_delta'])})"
        ]
        for step in args.at:
            if f"at_{step}" in row:
                a = row[f"at_{step}"]
                cells.append(
                    f"@{step // 1000}K {a['mean']:,.0f} vs {a['reference_mean']:,.0f} "
                    f"({_fmt(a['per_seed_delta'])})"
                )
        print(f"{Path(name).stem} [seeds {', '.join(row['seeds'])}]: " + "; ".join(cells))
    if args.out:
        result = {
            **result_header("paired_comparison"),
            "reference": str(args.reference),
            "arms": rows,
            "stats": stats,
            "wall_time_s": {str(p): wall_times(p) for p in paths},
        }
        atomic_write_json(args.out, result)
        print(f"wrote {args.out}")
    labels = args.labels or [p.stem for p in paths]
    if args.plot:
        plot_curves(
            {lab: loaded[str(p)] for lab, p in zip(labels, paths, strict=True)},
            args.title,
            args.plot,
        )
        print(f"wrote {args.plot}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
