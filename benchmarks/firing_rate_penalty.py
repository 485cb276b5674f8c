"""Effect of ``td3.firing_rate_penalty`` on return and estimated energy per action.

For each run directory: the final evaluation return (from ``eval.jsonl``, the training protocol)
and, on one deterministic episode of the evaluation env (seed = train seed + eval offset), the
per-population firing rates, SOPs per action and the 45 nm energy estimate of its last actor.

    python benchmarks/firing_rate_penalty.py --runs DIR [DIR ...] \\
        --out benchmarks/results/firing_rate_penalty_20k.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from spiking_dreamer.arguments import existing_dir, output_file
from spiking_dreamer.envs import make_env
from spiking_dreamer.export import collect_observations, energy_report
from spiking_dreamer.files import atomic_write_json
from spiking_dreamer.provenance import result_header
from spiking_dreamer.training.checkpoint import load_actor


def measure(run: Path) -> dict:
    evals = [json.loads(line) for line in (run / "eval.jsonl").read_text().splitlines()]
    actor, data = load_actor(run / "checkpoints" / "last.pt")
    cfg = data["config"]
    env = make_env(data["env"]["id"], cfg["env"]["kwargs"])
    seed = cfg["train"]["seed"] + cfg["train"]["eval_seed_offset"]
    report = energy_report(actor, collect_observations(actor, env, seed))
    return {
        "run_dir": str(run),
        "seed": cfg["train"]["seed"],
        "firing_rate_penalty": cfg["td3"]["firing_rate_penalty"],
        "final_step": evals[-1]["step"],
        "final_return": evals[-1]["return_mean"],
        "firing_rates": {p["name"]: p["firing_rate"] for p in report["populations"]},
        "sops_per_action": report["totals"]["sops_per_action"],
        "snn_energy_nj": report["totals"]["snn_energy_j"] * 1e9,
        "ann_over_snn": report["totals"]["ann_over_snn"],
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=existing_dir, nargs="+", required=True)
    p.add_argument("--out", type=output_file, required=True)
    args = p.parse_args()
    for run in args.runs:
        for need in ("eval.jsonl", "checkpoints/last.pt"):
            if not (run / need).is_file():
                p.error(f"--runs {run}: no {need}; not a run directory")
    torch.set_num_threads(1)
    rows = [measure(r) for r in args.runs]
    by_coef: dict[float, list[dict]] = {}
    for r in rows:
        by_coef.setdefault(r["firing_rate_penalty"], []).append(r)
    summary = {
        str(c): {
            "seeds": len(rs),
            "mean_final_return": float(np.mean([r["final_return"] for r in rs])),
            "mean_sops_per_action": float(np.mean([r["sops_per_action"] for r in rs])),
            "mean_snn_energy_nj": float(np.mean([r["snn_energy_nj"] for r in rs])),
        }
        for c, rs in sorted(by_coef.items())
    }
    out = {
        **result_header("firing_rate_penalty"),
        "runs": rows,
        "summary": summary,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.out, out)
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
