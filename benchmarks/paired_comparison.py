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
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from spiking_dreamer.provenance import result_header


def curves(path: Path) -> dict[str, dict[int, float]]:
    """Per seed: eval step -> mean return, from a ``learning_curve.py`` result file."""
    data = json.loads(path.read_text())
    return {
        seed: dict(zip(run["steps"], run["return_mean"], strict=True))
        for seed, run in data["seeds"].items()
    }


def window_mean(curve: dict[int, float], lo: int, hi: int) -> tuple[float, int]:
    """Mean return over the evaluations with ``lo <= step <= hi``, and the last such step."""
    steps = [s for s in curve if lo <= s <= hi]
    return float(np.mean([curve[s] for s in steps])), max(steps)


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
    lo, hi = window
    last = min(window_mean(arm[s], lo, hi)[1] for s in seeds)
    means = [window_mean(arm[s], lo, last)[0] for s in seeds]
    refs = [window_mean(ref[s], lo, last)[0] for s in seeds]
    out["window"] = {
        "from": lo,
        "to": last,
        "mean": float(np.mean(means)),
        "per_seed": means,
        "reference_mean": float(np.mean(refs)),
        "per_seed_delta": [m - r for m, r in zip(means, refs, strict=True)],
    }
    return out


def _fmt(values: list[float]) -> str:
    return " / ".join(f"{v:+,.0f}" for v in values)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", type=Path, required=True)
    parser.add_argument("--arms", type=Path, nargs="+", required=True)
    parser.add_argument("--at", type=int, nargs="+", default=[55_000, 100_000])
    parser.add_argument("--window", type=int, nargs=2, default=[55_000, 100_000])
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    ref = curves(args.reference)
    rows = {str(p): compare(ref, curves(p), args.at, tuple(args.window)) for p in args.arms}
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
        }
        args.out.write_text(json.dumps(result, indent=1) + "\n")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
