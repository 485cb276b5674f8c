"""Learning benchmark: train several seeds of one arm and record eval curves and throughput.

Each seed is a separate ``spiking-dreamer train`` process (one torch thread each, ``--jobs`` at a
time). The result file follows ``../shared/reference/protocol.md``: command, commit, date, machine,
versions, per-seed eval curves and aggregates (mean and 95% bootstrap CI across seeds). The
header's commit is the code that wrote the file; each seed's ``sessions`` list the commit every
segment of its run ran (the run's ``sessions.jsonl``: one line per start or resume).

    python benchmarks/learning_curve.py --config configs/halfcheetah.yaml --arm baseline \\
        --seeds 0 1 2 --steps 100000 --jobs 3 \\
        --out benchmarks/results/halfcheetah_baseline_100k.json

``--collect`` only aggregates existing run directories (e.g. while the runs are still going);
``--check`` only checks the arguments (every one is checked before any run starts anyway), so a
script of several benchmarks can check them all first.
Run again with the same arguments, it keeps finished runs and resumes stopped ones from their
last saved training state (``spiking-dreamer train --resume``), so a benchmark can span sessions;
a run directory whose stored config differs at a key ``--set`` sets is refused (exit 2), not
relabelled. ``--collect`` leaves out seeds without evaluations and lists them as
``missing_seeds``.

``--fork-from NAME --fork-step N`` starts each seed from the training state that run
``<run-root>/NAME_s<seed>`` saved at env step ``N`` (waiting for it if that run is still going),
with ``--set`` changing what may change (``spiking-dreamer train --fork``); ``--tag`` keeps such
variants apart. Example: the MBPO-like dreaming variant, branched from the seed-default dreaming
runs at the first dream phase:

    python benchmarks/learning_curve.py --arm dreaming --tag h1_utd2 \\
        --fork-from halfcheetah_dreaming_100000 --fork-step 50000 \\
        --set dreaming.horizon=1 --set dreaming.updates_per_step=2 \\
        --out benchmarks/results/halfcheetah_dreaming_h1_utd2_100k.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from spiking_dreamer.config import MAX_SEED
from spiking_dreamer.config_loading import flatten_keys, load_config
from spiking_dreamer.errors import UserError
from spiking_dreamer.files import (
    atomic_write_json,
    check_output_file,
    read_jsonl,
    trained_all_steps,
)
from spiking_dreamer.provenance import result_header
from spiking_dreamer.report import bootstrap_ci
from spiking_dreamer.training.checkpoint import has_training_state

ROOT = Path(__file__).resolve().parents[1]
MODEL_METRICS = ("model/", "dream/", "vg/")
"""Prefixes of the metrics whose last logged values each seed's record keeps (the world
model's hold-out error, dream acceptance, ...): what the model was like at the end."""


def records(path: Path) -> list[dict]:
    """The JSON records of a ``.jsonl`` file (a live run may be writing its last line).

    Raises:
        ValueError: a complete line is not a JSON record."""
    found, notes = read_jsonl(path)
    if notes:
        raise ValueError(f"{path}: not JSON records: {', '.join(notes[:3])}")
    return [rec for _, rec in found]


def read_run(run_dir: Path, total_steps: int) -> dict[str, object]:
    evals = records(run_dir / "eval.jsonl")
    summary_file = run_dir / "summary.json"
    summary = json.loads(summary_file.read_text()) if summary_file.exists() else None
    sps = None
    last: dict[str, float] = {}
    sessions_file = run_dir / "sessions.jsonl"  # the code each segment ran (older runs: none)
    sessions = records(sessions_file) if sessions_file.exists() else []
    metrics = run_dir / "metrics.jsonl"
    if metrics.exists():
        for rec in records(metrics):
            if "time/env_steps_per_s" in rec:
                sps = rec["time/env_steps_per_s"]
            last.update((k, v) for k, v in rec.items() if k.startswith(MODEL_METRICS))
    return {
        "run_dir": str(run_dir.relative_to(ROOT) if run_dir.is_relative_to(ROOT) else run_dir),
        "finished": trained_all_steps(run_dir, total_steps),
        "steps": [e["step"] for e in evals],
        "return_mean": [e["return_mean"] for e in evals],
        "return_std": [e["return_std"] for e in evals],
        "env_steps_per_s": summary["env_steps_per_s"] if summary else sps,
        "wall_time_s": summary["wall_time_s"] if summary else None,
        "last_model_metrics": dict(sorted(last.items())),
        "sessions": [
            {k: rec[k] for k in ("from_step", "commit", "date", "host")} for rec in sessions
        ],
    }


def parent_ready(args: argparse.Namespace, seed: int) -> bool:
    """Whether seed ``seed`` can start: always, unless it forks a run that has not yet saved
    its state at ``--fork-step``.

    Raises:
        RuntimeError: the parent has saved both of its kept states past ``--fork-step``, so
            the state to fork is gone (it would be waited for forever)."""
    if not args.fork_from:
        return True
    from spiking_dreamer.training.checkpoint import CheckpointError, read_state

    parent = ROOT / args.run_root / f"{args.fork_from}_s{seed}"
    found, _ = read_jsonl(parent / "eval.jsonl") if (parent / "eval.jsonl").exists() else ([], [])
    if not any(rec["step"] >= args.fork_step for _, rec in found):
        return False  # cheap test first: the state is saved right after that evaluation
    ckpt = parent / "checkpoints"
    later = 0
    for path in (ckpt / "state.pt", ckpt / "state.pt.prev"):
        try:
            step = read_state(path)["counters"]["step"] if path.exists() else None
        except CheckpointError:
            continue
        if step == args.fork_step:
            return True
        later += step is not None and step > args.fork_step
    if later == 2:
        raise RuntimeError(
            f"{parent} has saved past step {args.fork_step} and keeps only its last two "
            "states: the state to fork is gone"
        )
    return False


def check_args(args: argparse.Namespace) -> str | None:
    """What is wrong with the arguments, checked before any run starts (``None``: nothing):
    the counts, the output file, and the config with its ``--set`` overrides as each run would
    load it (``spiking-dreamer train`` would only reject them once its seed's turn came)."""
    if args.steps < 1 or args.jobs < 1:
        return "--steps and --jobs must be at least 1"
    if len(set(args.seeds)) != len(args.seeds) or min(args.seeds) < 0 or max(args.seeds) > MAX_SEED:
        return f"--seeds must be distinct integers in [0, {MAX_SEED}]"
    if (args.fork_from is None) != (args.fork_step is None):
        return "--fork-from and --fork-step go together"
    if args.fork_from:
        if args.fork_step < 1:
            return "--fork-step must be at least 1"
        for seed in args.seeds:
            parent = ROOT / args.run_root / f"{args.fork_from}_s{seed}"
            if not (parent / "config.yaml").is_file():
                return f"--fork-from {args.fork_from}: no parent run {parent} (start it first)"
    try:
        check_output_file(ROOT / args.out, "--out")
        if not args.fork_from:
            overrides = [*args.set, f"train.total_steps={args.steps}"]
            if args.arm == "baseline":
                overrides.append("world_model.use=none")
            load_config(ROOT / args.config, overrides)
    except UserError as e:
        return str(e)
    return None


def stored_config_problem(overrides: list[str], run_dirs: dict[int, Path]) -> str | None:
    """What is wrong with keeping or resuming the existing run directories (``None``:
    nothing): a run whose stored config differs from ``overrides`` at any key they set ran
    something else than this call asks for (its name holds config, arm, steps and tag only)."""
    for seed, run_dir in run_dirs.items():
        stored = run_dir / "config.yaml"
        if not overrides or not stored.exists():
            continue
        try:
            ran = flatten_keys(load_config(stored).to_dict())
            asked = flatten_keys(load_config(stored, overrides).to_dict())
        except UserError as e:
            return f"seed {seed}: {run_dir}: {e}"
        differ = sorted(k for k in asked if asked[k] != ran.get(k))
        if differ:
            return (
                f"seed {seed}: {run_dir} ran with {differ[0]}={ran.get(differ[0])!r}, not "
                f"{asked[differ[0]]!r} as --set asks; use another --tag or --run-root"
            )
    return None


def aggregate(runs: dict[int, dict]) -> dict[str, object]:
    common = sorted(set.intersection(*(set(r["steps"]) for r in runs.values())))
    curve = []
    for step in common:
        vals = np.array([r["return_mean"][r["steps"].index(step)] for r in runs.values()])
        curve.append(
            {
                "step": step,
                "mean": float(vals.mean()),
                "ci95": list(bootstrap_ci(vals)) if len(vals) > 1 else [float(vals[0])] * 2,
                "std_across_seeds": float(vals.std(ddof=1)) if len(vals) > 1 else 0.0,
                "per_seed": vals.tolist(),
            }
        )
    sps = [r["env_steps_per_s"] for r in runs.values() if r["env_steps_per_s"]]
    return {
        "curve": curve,
        "final": curve[-1] if curve else None,
        "env_steps_per_s_median": float(np.median(sps)) if sps else None,
    }


def ready_seeds(
    args: argparse.Namespace, run_dirs: dict[int, Path], pending: list[int]
) -> list[int]:
    """The pending seeds that can start now (a stopped run, or a fork whose parent state is
    saved); a seed whose parent state is gone is dropped from ``pending``, with a message."""
    ready = []
    for s in list(pending):
        try:
            if has_training_state(run_dirs[s]) or parent_ready(args, s):
                ready.append(s)
        except RuntimeError as e:
            print(f"seed {s} cannot start: {e}", file=sys.stderr)
            pending.remove(s)
    return ready


def train_seeds(args: argparse.Namespace, run_dirs: dict[int, Path]) -> None:
    """Train every seed not yet finished, ``args.jobs`` at a time; resume stopped ones."""
    pending = [s for s in args.seeds if not trained_all_steps(run_dirs[s], args.steps)]
    procs: dict[int, subprocess.Popen] = {}
    waiting: list[int] = []
    while pending or procs:
        while pending and len(procs) < args.jobs:
            ready = ready_seeds(args, run_dirs, pending)
            if not ready:
                if not procs and pending != waiting:
                    waiting = list(pending)
                    print(
                        f"seeds {waiting}: waiting for their parent runs ({args.fork_from}) "
                        f"to save their states at step {args.fork_step}",
                        file=sys.stderr,
                    )
                break
            s = ready[0]
            pending.remove(s)
            cmd = [sys.executable, "-m", "spiking_dreamer.cli", "train"]
            log_path = ROOT / args.run_root / f"{run_dirs[s].name}.log"
            if has_training_state(run_dirs[s]):
                cmd += ["--resume", str(run_dirs[s]), "--no-progress"]
                procs[s] = subprocess.Popen(
                    cmd, cwd=ROOT, stdout=log_path.open("a"), stderr=subprocess.STDOUT
                )
                continue
            cmd += ["--run-dir", str(run_dirs[s]), "--no-progress", "--set", "train.threads=1"]
            if args.fork_from:
                parent = ROOT / args.run_root / f"{args.fork_from}_s{s}"
                cmd += ["--fork", str(parent), "--fork-step", str(args.fork_step)]
                cmd += ["--total-steps", str(args.steps)]
            else:
                cmd += ["--config", args.config, "--seed", str(s)]
                cmd += ["--total-steps", str(args.steps)]
            if args.arm == "baseline" and not args.fork_from:
                cmd.append("--no-dreaming")
            for o in args.set:
                cmd += ["--set", o]
            log = log_path.open("w")
            procs[s] = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        time.sleep(5)
        for s, p in list(procs.items()):
            if p.poll() is not None:
                if p.returncode == 75:  # stopped by a signal, its state saved
                    print(f"seed {s} stopped: rerun this command to resume it", file=sys.stderr)
                elif p.returncode != 0:
                    print(f"seed {s} failed with exit code {p.returncode}", file=sys.stderr)
                del procs[s]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/halfcheetah.yaml")
    parser.add_argument("--arm", choices=["baseline", "dreaming"], default="baseline")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--jobs", type=int, default=2, help="runs in parallel")
    parser.add_argument("--run-root", default="benchmarks/runs")
    parser.add_argument("--out", required=True)
    parser.add_argument("--set", action="append", default=[], help="extra config overrides")
    parser.add_argument("--collect", action="store_true", help="only aggregate existing runs")
    parser.add_argument(
        "--check", action="store_true", help="only check the arguments (exit 0 or 2), run nothing"
    )
    parser.add_argument("--tag", help="variant name, part of the run directories' names")
    parser.add_argument("--fork-from", help="parent runs' name, without _s<seed>")
    parser.add_argument("--fork-step", type=int, help="env step of the parents' state to fork")
    args = parser.parse_args()
    cfg_name = Path(args.config).stem
    arm = f"{args.arm}_{args.tag}" if args.tag else args.arm
    run_dirs = {s: ROOT / args.run_root / f"{cfg_name}_{arm}_{args.steps}_s{s}" for s in args.seeds}
    problem = check_args(args) or stored_config_problem(args.set, run_dirs)
    if problem:
        parser.error(problem)
    if args.check:
        print(f"{args.config} --arm {args.arm}: arguments checked")
        return 0
    # the code the runs start with, not what is checked out at the end
    header = result_header("learning_curve", threads_per_run=1, parallel_runs=args.jobs)
    (ROOT / args.run_root).mkdir(parents=True, exist_ok=True)
    if not args.collect:
        train_seeds(args, run_dirs)

    runs = {s: read_run(d, args.steps) for s, d in run_dirs.items() if (d / "eval.jsonl").exists()}
    if not runs:
        print("no runs found", file=sys.stderr)
        return 1
    missing = [s for s in args.seeds if s not in runs]
    if missing:
        print(f"seeds {missing}: no evaluations yet, left out of {args.out}", file=sys.stderr)
    result = {
        **header,
        "protocol": "shared/reference/protocol.md: eval every 5k steps, 10 deterministic episodes",
        "config": args.config,
        "arm": args.arm,
        "tag": args.tag,
        "fork": {"from": args.fork_from, "step": args.fork_step} if args.fork_from else None,
        "overrides": args.set,
        "total_steps": args.steps,
        "seeds": {str(s): r for s, r in runs.items()},
        "missing_seeds": [str(s) for s in missing],
        "run_commits": sorted({x["commit"] for r in runs.values() for x in r["sessions"]}),
        "aggregate": aggregate(runs),
    }
    out = ROOT / args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out, result)
    final = result["aggregate"]["final"]
    print(
        f"{args.arm}: step {final['step']}: mean return {final['mean']:.1f} "
        f"(95% CI {final['ci95'][0]:.1f}..{final['ci95'][1]:.1f}) over {len(runs)} seeds; "
        f"median {result['aggregate']['env_steps_per_s_median']} env steps/s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
