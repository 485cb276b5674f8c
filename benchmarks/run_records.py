"""Keep finished runs' records in git, and lay them back out on another machine.

A benchmark's run directories live outside git (``benchmarks/runs/`` or any ``--run-root``);
a new machine starts without them, and a 100K-step run takes longer than a session. A finished
run's record is small: its stored config, eval curve, summary, the code of each segment and its
logged metrics (:data:`RECORD_FILES`, no checkpoints, no TensorBoard files). ``keep`` copies
the record of every finished run under the run root into ``benchmarks/results/run_records/``
(commit it); ``restore`` copies each record back into the run root where that run is missing,
so ``benchmarks/learning_curve.py`` counts it as finished (it does not train it again), and its
``--collect`` and ``spiking-dreamer report`` read it as any other run. From the repository root:

    python benchmarks/run_records.py keep --run-root /work/runs       # after runs finish
    python benchmarks/run_records.py restore --run-root /work/runs    # on a new machine
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from spiking_dreamer.config_loading import load_yaml
from spiking_dreamer.errors import UserError
from spiking_dreamer.files import atomic_write, check_output_dir, trained_all_steps

ROOT = Path(__file__).resolve().parents[1]
RECORDS = ROOT / "benchmarks" / "results" / "run_records"
RECORD_FILES = ("config.yaml", "eval.jsonl", "summary.json", "sessions.jsonl", "metrics.jsonl")
"""What a run's record holds; the first three are required (``trained_all_steps`` and
``spiking-dreamer report`` read them)."""


def is_finished(run_dir: Path) -> bool:
    """Whether ``run_dir`` trained every step its stored config asks for (``summary.json``'s
    ``steps`` at least ``train.total_steps``); a run stopped early also writes a summary."""
    try:
        total = load_yaml((run_dir / "config.yaml").read_text())["train"]["total_steps"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return isinstance(total, int) and trained_all_steps(run_dir, total)


def copy_record(src: Path, dst: Path) -> None:
    """Copy the record files ``src`` has into ``dst`` (created), each atomically (two workers
    of a benchmark may keep the same finished run at once)."""
    for name in RECORD_FILES:
        if (src / name).is_file():
            atomic_write(dst / name, lambda tmp, f=src / name: shutil.copyfile(f, tmp))


def same_record(a: Path, b: Path) -> bool:
    """Whether ``a`` and ``b`` hold the same record files with the same bytes."""
    return all(
        (a / n).is_file() == (b / n).is_file()
        and (not (a / n).is_file() or (a / n).read_bytes() == (b / n).read_bytes())
        for n in RECORD_FILES
    )


def keep(run_root: Path, records: Path) -> list[str]:
    """Copy every finished run's record from ``run_root`` into ``records``; the names copied
    (a record already there with the same bytes is left as it is)."""
    kept = []
    for run_dir in sorted(p for p in run_root.iterdir() if p.is_dir()):
        if not is_finished(run_dir):
            continue
        dst = records / run_dir.name
        if dst.exists() and same_record(run_dir, dst):
            continue
        copy_record(run_dir, dst)
        kept.append(run_dir.name)
    return kept


def restore(run_root: Path, records: Path) -> list[str]:
    """Copy each record in ``records`` whose run is missing from ``run_root`` into it (a run
    directory already there, finished or not, is left as it is); the names copied."""
    restored = []
    for record in sorted(p for p in records.iterdir() if p.is_dir()) if records.is_dir() else []:
        if (run_root / record.name).exists() or not is_finished(record):
            continue
        copy_record(record, run_root / record.name)
        restored.append(record.name)
    return restored


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["keep", "restore"])
    parser.add_argument("--run-root", required=True, help="where the run directories are")
    parser.add_argument(
        "--records", default=str(RECORDS), help="where the records are (default: %(default)s)"
    )
    args = parser.parse_args()
    run_root, records = ROOT / args.run_root, ROOT / args.records
    try:
        if args.action == "keep":
            if not run_root.is_dir():
                parser.error(f"--run-root {args.run_root}: no such directory")
            check_output_dir(records, "--records")
        else:
            if records.exists() and not records.is_dir():
                parser.error(f"--records {args.records}: not a directory")
            check_output_dir(run_root, "--run-root")
    except UserError as e:
        parser.error(str(e))
    names = keep(run_root, records) if args.action == "keep" else restore(run_root, records)
    where = records if args.action == "keep" else run_root
    verb = "kept" if args.action == "keep" else "restored"
    print(f"{verb} {len(names)} run records in {where}" + "".join(f"\n  {n}" for n in names))
    return 0


if __name__ == "__main__":
    sys.exit(main())
