"""Fingerprint of a short dreaming run, its ``--no-dreaming`` baseline and a value-gradient run,
for refactors that must not change behaviour.

Trains each arm for ``--steps`` env steps on HalfCheetah-v5 (small networks, dreams or
distribution rollouts from step 1,500), then hashes every tensor and value of the saved
training state (networks, targets, optimisers, buffers, world model, generators, counters;
however the state nests them) and every logged metric except timings. Two commits behave the
same when their fingerprints are equal::

    python benchmarks/behaviour_fingerprint.py --out before.json          # on the old commit
    python benchmarks/behaviour_fingerprint.py --compare before.json      # on the new one
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
from pathlib import Path

import torch

from spiking_dreamer.arguments import existing_file, output_file, positive_int
from spiking_dreamer.cli import main as cli_main
from spiking_dreamer.files import atomic_write_json
from spiking_dreamer.provenance import result_header
from spiking_dreamer.training.checkpoint import load_state_file

SETTINGS = [
    "train.start_steps=1000",
    "train.update_after=500",
    "train.eval_every=1000",
    "train.eval_episodes=2",
    "train.checkpoint_every=1000",
    "actor.hidden_sizes=[64,64]",
    "critic.hidden_sizes=[64,64]",
    "world_model.hidden_size=32",
    "world_model.ensemble_size=3",
    "world_model.num_elites=2",
    "dreaming.start_step=1500",
    "dreaming.every=250",
    "dreaming.rollout_batch=128",
    "dreaming.horizon=2",
    "dreaming.updates_per_step=2",
    "log.log_every=250",
    "log.tensorboard=false",
]


def _leaves(obj: object) -> list[bytes]:
    """Every tensor (as bytes) and plain value (as its repr) in ``obj``, depth first."""
    if isinstance(obj, torch.Tensor):
        return [obj.detach().cpu().contiguous().numpy().tobytes()]
    if isinstance(obj, dict):
        return [b for k in sorted(obj, key=str) for b in _leaves(obj[k])]
    if isinstance(obj, list | tuple):
        return [b for v in obj for b in _leaves(v)]
    return [repr(obj).encode()]


def _multiset_digest(leaves: list[bytes]) -> str:
    """A digest of the leaves that does not depend on how the state nests them."""
    h = hashlib.sha256()
    for d in sorted(hashlib.sha256(b).digest() for b in leaves):
        h.update(d)
    return h.hexdigest()[:16]


VALUE_GRADIENT = [
    *(s for s in SETTINGS if not s.startswith("dreaming.")),
    "world_model.use=value_gradient",
    "value_gradient.start_step=1500",
    "value_gradient.batch_size=32",
    "value_gradient.distribution_starts=64",
    "td3.policy_delay=1",
]
ARMS = {"dreaming": SETTINGS, "baseline": SETTINGS, "value_gradient": VALUE_GRADIENT}
"""Each arm's settings; ``baseline`` adds ``--no-dreaming``."""


def fingerprint(steps: int, arm: str, root: Path) -> dict[str, str]:
    run_dir = root / arm
    argv = ["train", "--run-dir", str(run_dir), "--total-steps", str(steps), "--no-progress"]
    argv += [a for s in ARMS[arm] for a in ("--set", s)]
    if arm == "baseline":
        argv.append("--no-dreaming")
    if cli_main(argv) != 0:
        raise SystemExit(f"{arm} run failed")
    state, _, _ = load_state_file(run_dir / "checkpoints" / "state.pt")
    # everything but provenance, the config (new keys may appear), log-file offsets, timings
    skip = ("versions", "config", "logger", "timing")
    kept = {k: v for k, v in state.items() if k not in skip}
    out = {"state": _multiset_digest(_leaves(kept)), "state_leaves": str(len(_leaves(kept)))}
    for name in ("metrics.jsonl", "eval.jsonl"):
        h = hashlib.sha256()
        for line in (run_dir / name).read_text().splitlines():
            row = {
                k: v for k, v in json.loads(line).items() if "time" not in k and "per_s" not in k
            }
            h.update(json.dumps(row, sort_keys=True).encode())
        out[name] = h.hexdigest()[:16]
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=positive_int, default=3000)
    p.add_argument("--out", type=output_file, help="write the fingerprint here")
    p.add_argument("--compare", type=existing_file, help="compare with this recorded fingerprint")
    args = p.parse_args()
    old = None
    if args.compare:
        try:
            old = json.loads(args.compare.read_text())
            recorded = old["steps"], old["fingerprints"]
        except (ValueError, KeyError, TypeError) as e:
            p.error(f"--compare {args.compare}: not a recorded fingerprint ({e})")
        if recorded[0] != args.steps:
            p.error(f"--compare {args.compare} has {recorded[0]} steps, this run {args.steps}")
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        prints = {arm: fingerprint(args.steps, arm, Path(tmp)) for arm in ARMS}
    record = {
        **result_header("behaviour_fingerprint", threads=1),
        "steps": args.steps,
        "fingerprints": prints,
    }
    print(json.dumps(prints, indent=1))
    if args.out:
        atomic_write_json(args.out, record)
    if old is not None:
        diff = [
            f"{arm}/{k}"
            for arm, fp in prints.items()
            for k, v in fp.items()
            if old["fingerprints"][arm].get(k) != v
        ]
        print("identical" if not diff else f"DIFFERENT: {', '.join(diff)}")
        return 1 if diff else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
