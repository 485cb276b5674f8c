"""SAC's update beside TD3's, PopSAN actor, one thread, measured interleaved.

``spiking-dreamer bench`` times each arm's parts one arm after another; on a shared machine the
load shifts between them. Here the arms take turns (``--rounds`` rounds; in each, every arm runs
``--calls`` calls of each part, the minimum kept), so a ratio compares timings taken seconds
apart. Arms: PopSAN-TD3, PopSAN-SAC with PopSAN-SAC's log-std network (``log_std_head: ann``)
and fully spiking (``shared``), each at the config's actor and critic sizes and batch size, on
HalfCheetah-v5's dimensions (17 observation, 6 action values) and random batches (the networks
are dense: their cost does not depend on the data).

Parts: ``critic_ms`` (a TD target and a critic step), ``actor_ms`` (an actor step; SAC's with
its temperature step), ``update_ms`` (one update of the agent's default schedule: TD3 a critic
step and every ``policy_delay``-th an actor step and Polyak update, averaged over
``policy_delay`` calls; SAC a critic, actor, temperature step and Polyak update), ``act_ms``
(the deterministic action at batch 1) and ``explore_ms`` (the exploring action at batch 1: TD3's
action plus noise, a sample of SAC's policy). Ratios over TD3 are taken per round, then their
median.

    python benchmarks/sac_update.py --out benchmarks/results/sac_update_interleaved_cpu1.json
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from spiking_dreamer.agent import TwinQCritic, build_agent, build_policy
from spiking_dreamer.arguments import config_file, output_file, positive_int
from spiking_dreamer.buffers import Batch
from spiking_dreamer.config import Config
from spiking_dreamer.config_loading import load_config
from spiking_dreamer.files import atomic_write_json
from spiking_dreamer.provenance import result_header

OBS_DIM, ACT_DIM = 17, 6  # HalfCheetah-v5
PARTS = ("critic_ms", "actor_ms", "update_ms", "act_ms", "explore_ms")


def _arms(cfg: Config) -> dict[str, Config]:
    td3 = cfg.replace(agent={"kind": "td3"})
    sac = {"agent": {"kind": "sac"}, "sac": {"batch_size": cfg.td3.batch_size}}
    return {
        "td3": td3,
        "sac_ann": cfg.replace(**sac),
        "sac_shared": cfg.replace(**{**sac, "sac": {**sac["sac"], "log_std_head": "shared"}}),
    }


def _parts(cfg: Config, seed: int = 0) -> tuple[dict[str, Callable[[], object]], int]:
    """The parts of one arm as calls, and the updates ``update_ms`` runs per call."""
    torch.manual_seed(seed)
    high = torch.ones(ACT_DIM)
    actor = build_policy(OBS_DIM, -high, high, cfg)
    critic = TwinQCritic(OBS_DIM, ACT_DIM, cfg.critic.hidden_sizes)
    agent = build_agent(cfg, actor, critic, torch.Generator().manual_seed(seed))
    g = torch.Generator().manual_seed(seed + 1)
    n = cfg.agent_settings.batch_size
    batches = [
        Batch(
            torch.randn(n, OBS_DIM, generator=g),
            torch.rand(n, ACT_DIM, generator=g) * 2 - 1,
            torch.randn(n, generator=g),
            torch.randn(n, OBS_DIM, generator=g),
            torch.zeros(n),
        )
        for _ in range(8)
    ]
    obs, rng = batches[0].obs[0].numpy(), np.random.default_rng(seed)
    state = {"i": 0}

    def batch() -> Batch:
        state["i"] += 1
        return batches[state["i"] % len(batches)]

    delay = cfg.td3.policy_delay if cfg.agent.kind == "td3" else 1

    def update() -> None:  # ``delay`` updates: one actor step among them, as a TD3 step
        for _ in range(delay):
            agent.update(batch())

    parts = {
        "critic_ms": lambda: agent.critic_update(batch()),
        "actor_ms": lambda: agent.actor_update(batch()),
        "update_ms": update,
        "act_ms": lambda: agent.act(obs),
        "explore_ms": lambda: agent.explore(obs, rng),
    }
    return parts, delay


def _min_ms(fn: Callable[[], object], calls: int) -> float:
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * min(times)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--config", type=config_file, default="configs/halfcheetah.yaml", help="a TD3 config"
    )
    p.add_argument("--rounds", type=positive_int, default=7)
    p.add_argument("--calls", type=positive_int, default=10)
    p.add_argument("--out", type=output_file, help="write the result as JSON")
    args = p.parse_args()
    torch.set_num_threads(1)
    arms = {name: _parts(cfg) for name, cfg in _arms(load_config(args.config)).items()}
    for parts, _ in arms.values():  # warm-up
        for part in PARTS:
            _min_ms(parts[part], 3)
    rounds: list[dict[str, dict[str, float]]] = []
    for _ in range(args.rounds):
        this: dict[str, dict[str, float]] = {}
        for name, (parts, delay) in arms.items():
            this[name] = {part: _min_ms(parts[part], args.calls) for part in PARTS}
            this[name]["update_ms"] /= delay  # per update
        rounds.append(this)
    best = {a: {p: min(r[a][p] for r in rounds) for p in PARTS} for a in arms}
    ratios = {
        f"{a}_over_td3_{p[:-3]}": statistics.median(r[a][p] / r["td3"][p] for r in rounds)
        for a in arms
        if a != "td3"
        for p in PARTS
    }
    result = {
        **result_header("sac_update", threads=1),
        "config": args.config,
        "dims": {"obs": OBS_DIM, "act": ACT_DIM},
        "rounds": args.rounds,
        "calls_per_round": args.calls,
        "best_ms": best,
        "median_ratios": ratios,
    }
    width = max(len(a) for a in arms) + 2
    print(f"{'':14}" + "".join(f"{a:>{width}}" for a in arms))
    for part in PARTS:
        print(f"{part:14}" + "".join(f"{best[a][part]:{width}.3f}" for a in arms))
    for k, v in ratios.items():
        print(f"{k}: {v:.2f}")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(args.out, result)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
