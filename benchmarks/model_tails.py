"""Where a run's world model errs on the agent's next states: one-step errors of the model saved
at one checkpoint on the real transitions the run collected after it (never trained on), beside
its errors on the transitions it was trained on, each split by how far the inputs lie from the
model's input normaliser (the largest |z| over the observation's dimensions).

The spiking ensemble encodes each normalised input with Gaussian receptive fields centred over
[-3, 3]: an input beyond them barely moves the encoding, where an ANN extrapolates. An agent
that improves visits states faster than any it has seen, so its newest transitions lie in the
normaliser's tails; this measures what that costs each kind of model.

    python benchmarks/model_tails.py --run benchmarks/runs/halfcheetah_mbpo_sac_dreaming_30000_s0 \\
        --out benchmarks/results/model_tails_halfcheetah_mbpo_sac_s0_30k.json

The run's newest state (``state.pt``) gives the real transitions; its previous one
(``state.pt.prev``, one ``train.checkpoint_every`` earlier) gives the model. Predictions are the
elites' mean (``dreaming.member: elite_mean``); state errors are in the model's normalised
state-change units (what it is trained on), reward errors in reward units.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import torch

from spiking_dreamer.arguments import existing_dir, output_file, positive_int, seed_int
from spiking_dreamer.config_loading import config_from_dict
from spiking_dreamer.errors import CheckpointError
from spiking_dreamer.files import atomic_write_json
from spiking_dreamer.provenance import result_header
from spiking_dreamer.training.checkpoint import read_state
from spiking_dreamer.world_model import EnsembleDynamicsModel, build_world_model

BINS = (0.0, 2.0, 3.0, 4.0, float("inf"))
"""Edges of the largest-|z| bins."""


def errors(
    model: EnsembleDynamicsModel,
    obs: torch.Tensor,
    action: torch.Tensor,
    next_obs: torch.Tensor,
    reward: torch.Tensor,
) -> dict[str, torch.Tensor]:
    """Per row ``[N]``: the largest |z| of the observation under the model's input normaliser,
    the elites' mean prediction's squared state error (normalised state change, mean over
    dimensions) and its reward error (predicted − real)."""
    with torch.no_grad():
        pred = model.predict(obs, action, chunk=625, members=model.elites)
        pred_next, pred_reward = pred.next_obs.mean(0), pred.reward.mean(0)
        x = model.input_normalizer(torch.cat([obs, action], -1))
        norm = model.target_normalizer
        std = (norm.var[: model.obs_dim] + norm.eps).sqrt().float()
    return {
        "max_abs_z": x[:, : model.obs_dim].abs().max(-1).values,
        "state_se": (((pred_next - next_obs) / std) ** 2).mean(-1),
        "reward_error": pred_reward - reward,
    }


def summary(e: dict[str, torch.Tensor]) -> dict[str, object]:
    """The errors of a set of rows, all of them and per largest-|z| bin."""

    def stats(keep: torch.Tensor) -> dict[str, float | int]:
        n = int(keep.sum())
        if n == 0:
            return {"rows": 0}
        r = e["reward_error"][keep]
        return {
            "rows": n,
            "state_mse": e["state_se"][keep].mean().item(),
            "reward_mae": r.abs().mean().item(),
            "reward_bias": r.mean().item(),
        }

    z = e["max_abs_z"]
    out: dict[str, object] = {"all": stats(torch.ones_like(z, dtype=torch.bool))}
    out["by_max_abs_z"] = {
        f"[{lo:g}, {hi:g})": stats((z >= lo) & (z < hi)) for lo, hi in itertools.pairwise(BINS)
    }
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=existing_dir, required=True, help="a dreaming run directory")
    parser.add_argument(
        "--rows", type=positive_int, default=5000, help="rows drawn from the trained-on data"
    )
    parser.add_argument("--seed", type=seed_int, default=0)
    parser.add_argument("--out", type=output_file, required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)

    ckpt = Path(args.run) / "checkpoints"
    try:
        new, old = read_state(ckpt / "state.pt"), read_state(ckpt / "state.pt.prev")
    except (CheckpointError, OSError) as e:
        parser.error(f"--run {args.run}: needs state.pt and state.pt.prev ({e})")
    t0, t1 = old["counters"]["step"], new["counters"]["step"]
    if old["dreaming"] is None or not t0 < t1:
        parser.error(f"--run {args.run}: needs a dreaming run's two states, older first")
    buf = new["buffer"]
    if t1 > buf["capacity"]:
        parser.error(f"--run {args.run}: its replay buffer has wrapped; rows are not env steps")
    cfg = config_from_dict(old["config"], f"{ckpt} (stored config)")
    if t0 <= cfg.train.start_steps:
        parser.error(f"--run {args.run}: its model state ({t0}) predates the policy's data")
    obs_dim, act_dim = old["env"]["obs_dim"], old["env"]["act_dim"]
    model = build_world_model(obs_dim, act_dim, cfg.world_model)
    model.load_state_dict(old["dreaming"]["model"])
    model.eval()

    def rows(idx: torch.Tensor) -> dict[str, torch.Tensor]:
        return errors(
            model, buf["obs"][idx], buf["action"][idx], buf["next_obs"][idx], buf["reward"][idx]
        )

    g = torch.Generator().manual_seed(args.seed)
    seen = torch.randint(cfg.train.start_steps, t0, (args.rows,), generator=g)
    unseen = torch.arange(t0, t1)
    result = {
        **result_header("model_tails"),
        "run": str(args.run),
        "world_model": cfg.world_model.kind,
        "model_step": t0,
        "trained_on": {"steps": [cfg.train.start_steps, t0], **summary(rows(seen))},
        "next": {"steps": [t0, t1], **summary(rows(unseen))},
    }
    atomic_write_json(args.out, result)
    for name in ("trained_on", "next"):
        part = result[name]
        print(f"{name} {part['steps']}: {part['all']}")
        for b, s in part["by_max_abs_z"].items():
            print(f"  max|z| {b}: {s}")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
