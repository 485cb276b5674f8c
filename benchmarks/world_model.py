"""World-model benchmark: the spiking ensemble against MBPO's ANN Gaussian ensemble.

Both models train on the same fixed HalfCheetah-v5 transitions with the same budget (gradient
steps x batch per member) and are scored on held-out episodes:

* one-step MSE of the normalised state change (elite-mean prediction, target-normaliser units),
* reward MSE (raw units),
* 5-step open-loop MSE of the normalised state (recorded actions, elite-mean model),
* Spearman correlation between the ensemble's uncertainty (``variance`` over all members, the
  dreamer's default; other metrics and the elites alone are reported too) and the actual
  one-step error of each transition.

Data: ``--episodes`` episodes of 1,000 steps, half with uniform random actions and half with a
trained PopSAN policy (``--policy``, deterministic action + Gaussian noise 0.1 x half-range);
the last ``--test-episodes`` of each kind are held out. Everything is seeded.

    python benchmarks/world_model.py --policy benchmarks/results/halfcheetah_policy.pt \\
        --out benchmarks/results/world_model_halfcheetah.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace

import numpy as np
import torch

from spiking_dreamer.arguments import existing_file, int_in, output_file, positive_int, seed_int
from spiking_dreamer.buffers import ReplayBuffer
from spiking_dreamer.config import WorldModelConfig
from spiking_dreamer.config_loading import load_config
from spiking_dreamer.dreaming import uncertainty
from spiking_dreamer.envs import make_env
from spiking_dreamer.errors import UserError
from spiking_dreamer.files import atomic_write_json
from spiking_dreamer.provenance import result_header
from spiking_dreamer.training.checkpoint import load_actor
from spiking_dreamer.world_model import (
    EnsembleDynamicsModel,
    GaussianMLPEnsemble,
    ModelTrainer,
    SpikingEnsembleModel,
)

FIXED_KEYS = {"kind", "use", "head", "ensemble_size", "num_elites", "train_steps", "holdout_every"}
"""World-model keys the benchmark sets itself: the same budget and members for both models."""


def collect(policy_path: str | None, episodes: int, seed: int) -> list[dict[str, np.ndarray]]:
    """Episodes as dicts of arrays (obs, action, reward, next_obs); half random, half policy."""
    env = make_env("HalfCheetah-v5")
    rng = np.random.default_rng(seed)
    actor = load_actor(policy_path)[0] if policy_path else None
    out = []
    for ep in range(episodes):
        use_policy = actor is not None and ep % 2 == 1
        obs, _ = env.reset(seed=seed + ep)
        rows: dict[str, list] = {"obs": [], "action": [], "reward": [], "next_obs": []}
        done = False
        while not done:
            if use_policy:
                with torch.no_grad():
                    a = actor(torch.as_tensor(obs, dtype=torch.float32)[None])[0].numpy()
                a = np.clip(a + rng.normal(0, 0.1, a.shape), -1, 1)
            else:
                a = rng.uniform(-1, 1, env.action_space.shape)
            nxt, r, terminated, truncated, _ = env.step(a)
            for k, v in zip(rows, (obs, a, r, nxt), strict=True):
                rows[k].append(v)
            obs, done = nxt, terminated or truncated
        out.append({k: np.asarray(v, dtype=np.float32) for k, v in rows.items()})
    return out


def to_buffer(episodes: list[dict[str, np.ndarray]]) -> ReplayBuffer:
    n = sum(len(e["reward"]) for e in episodes)
    buf = ReplayBuffer(n, episodes[0]["obs"].shape[1], episodes[0]["action"].shape[1])
    for e in episodes:
        for o, a, r, o2 in zip(e["obs"], e["action"], e["reward"], e["next_obs"], strict=True):
            buf.add(o, a, float(r), o2, False)
    return buf


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra = np.argsort(np.argsort(a))
    rb = np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


@torch.no_grad()
def score(model: EnsembleDynamicsModel, test: list[dict[str, np.ndarray]]) -> dict[str, float]:
    model.eval()
    elites = model.elites
    obs = torch.as_tensor(np.concatenate([e["obs"] for e in test]))
    act = torch.as_tensor(np.concatenate([e["action"] for e in test]))
    rew = torch.as_tensor(np.concatenate([e["reward"] for e in test]))
    nxt = torch.as_tensor(np.concatenate([e["next_obs"] for e in test]))
    pred = model.predict(obs, act)
    _, y = model.normalize_batch(obs, act, nxt, rew)
    mean = pred.mean[elites].mean(0)
    err = (mean[:, :-1] - y[:, :-1]).square().mean(-1)
    everyone = torch.arange(model.ensemble_size)
    u = uncertainty(pred, everyone, "variance")  # the dreamer's default (all members)
    kinds = ["variance", "max_deviation"] + (["max_std"] if pred.logvar is not None else [])
    spearman_by = {
        f"{kind}_{name}": spearman(uncertainty(pred, members, kind).numpy(), err.numpy())
        for kind in kinds
        for name, members in (("elites", elites), ("all_members", everyone))
    }
    reward_mse = (pred.reward[elites].mean(0) - rew).square().mean()
    # 5-step open loop from every 5th state of each test episode, with the recorded actions;
    # error in the model's observation-normaliser units
    o_dim = obs.shape[1]
    sd = model.input_normalizer.var[:o_dim].sqrt().float()
    errs = []
    for e in test:
        o, a = torch.as_tensor(e["obs"]), torch.as_tensor(e["action"])
        starts = torch.arange(0, len(o) - 5, 5)
        s = o[starts]
        for k in range(5):
            p = model.predict(s, a[starts + k])
            s = p.next_obs[elites].mean(0)
        truth = o[starts + 5]
        errs.append(((s - truth) / sd).square().mean(-1))
    return {
        "one_step_delta_mse": err.mean().item(),
        "reward_mse": reward_mse.item(),
        "open_loop_5_mse": torch.cat(errs).mean().item(),
        "spearman_uncertainty_error": spearman(u.numpy(), err.numpy()),
        "spearman_by_uncertainty": spearman_by,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--policy",
        type=existing_file,
        help="actor checkpoint for the trained-policy half of the data",
    )
    p.add_argument("--episodes", type=positive_int, default=40)
    p.add_argument("--test-episodes", type=positive_int, default=4, help="held out, of each kind")
    p.add_argument("--steps", type=positive_int, default=2000, help="gradient steps per model")
    p.add_argument("--seed", type=seed_int, default=0)
    p.add_argument("--threads", type=int_in(1, 1024), default=1)
    p.add_argument(
        "--spiking-head",
        choices=["deterministic", "gaussian"],
        default="deterministic",
        help="the spiking ensemble's head (gaussian: NLL, adds MOPO's max_std uncertainty)",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="world_model.KEY=VALUE",
        help="the spiking ensemble's shape (e.g. world_model.hidden_size=256); repeatable",
    )
    p.add_argument("--out", type=output_file, required=True)
    args = p.parse_args()
    changes: dict[str, object] = {}
    for item in args.set:
        key = item.split("=", 1)[0]
        if not key.startswith("world_model."):
            p.error(f"--set {item}: only the spiking ensemble's world_model.* keys")
        if key.split(".", 1)[1] in FIXED_KEYS:
            p.error(f"--set {item}: set by the benchmark itself (--steps, --spiking-head)")
        try:  # parsed and checked as a config would be
            changes[key.split(".", 1)[1]] = getattr(
                load_config(None, [item]).world_model, key.split(".", 1)[1]
            )
        except UserError as e:
            p.error(f"--set {item}: {e}")
    if 2 * args.test_episodes >= args.episodes:
        p.error(
            f"--test-episodes {args.test_episodes} holds out {2 * args.test_episodes} of "
            f"--episodes {args.episodes}: nothing left to train on"
        )
    if args.policy:
        try:
            load_actor(args.policy)
        except UserError as e:
            p.error(f"--policy: {e}")
    torch.set_num_threads(args.threads)

    t0 = time.time()
    eps = collect(args.policy, args.episodes, args.seed)
    k = 2 * args.test_episodes
    train_eps, test_eps = eps[:-k], eps[-k:]
    buf = to_buffer(train_eps)
    print(f"data: {len(buf)} train / {sum(len(e['reward']) for e in test_eps)} test transitions")

    budget = dict(
        ensemble_size=7, num_elites=5, train_steps=args.steps, holdout_every=args.steps + 1
    )
    snn_cfg = replace(WorldModelConfig(**budget, head=args.spiking_head), **changes)
    models = {
        "spiking_ensemble": lambda: SpikingEnsembleModel(17, 6, snn_cfg),
        "ann_gaussian_ensemble_mbpo": lambda: GaussianMLPEnsemble(17, 6, 7, 5),
    }
    results = {}
    for name, build in models.items():
        torch.manual_seed(args.seed)
        model = build()
        trainer = ModelTrainer(model, snn_cfg, torch.Generator().manual_seed(args.seed))
        start = time.perf_counter()
        train_metrics = trainer.train_phase(buf)
        wall = time.perf_counter() - start
        results[name] = {
            **score(model, test_eps),
            "train_wall_s": wall,
            "ms_per_step": 1e3 * wall / max(train_metrics["model/train_steps"], 1),
            "parameters": sum(q.numel() for q in model.parameters()),
            "train": train_metrics,
        }
        print(name, json.dumps({k: v for k, v in results[name].items() if k != "train"}))
    snn, ann = results["spiking_ensemble"], results["ann_gaussian_ensemble_mbpo"]
    summary = {
        "mse_ratio_spiking_over_ann": snn["one_step_delta_mse"] / ann["one_step_delta_mse"],
        "goal_mse_ratio_le_1_25": snn["one_step_delta_mse"] <= 1.25 * ann["one_step_delta_mse"],
        "goal_spearman_ge_0_5": snn["spearman_uncertainty_error"] >= 0.5,
    }
    out = {
        **result_header("world_model", threads=args.threads),
        "data": {
            "env": "HalfCheetah-v5",
            "episodes": args.episodes,
            "policy": None if args.policy is None else str(args.policy),
            "train_transitions": len(buf),
            "test_episodes": k,
        },
        "budget": {"gradient_steps": args.steps, "batch_per_member": snn_cfg.batch_size},
        "spiking_config": snn_cfg.__dict__,
        "spiking_overrides": args.set,
        "results": results,
        "summary": summary,
        "wall_time_s": time.time() - t0,
    }
    path = args.out
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, out, default=list)
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
