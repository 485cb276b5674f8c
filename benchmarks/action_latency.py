"""PopSAN action latency at batch 1 on one CPU thread: ways of compiling the acting path,
measured interleaved (each round times every variant in turn; medians over rounds).

Variants of ``TD3.act`` (raw observation in, NumPy action out):

* ``eager``: no compilation;
* ``compiled``: ``train.compile`` (``torch.compile``, default mode);
* ``max_autotune``: mode ``max-autotune-no-cudagraphs`` (lets inductor pick its C++ GEMM
  templates for the small matrix multiplies);
* ``skip_guards``: ``compiled`` inside ``torch.compiler.set_stance(skip_guard_eval_unsafe=True)``
  (no TorchDynamo guard check per call; unsafe in general, measured only);
* ``graph_only``: the compiled actor called directly (no ``act`` wrapper: the wrapper's cost).

    python benchmarks/action_latency.py --out benchmarks/results/action_latency_cpu1.json
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from spiking_dreamer.agent import TD3, TwinQCritic, build_actor
from spiking_dreamer.arguments import config_file, output_file, positive_int
from spiking_dreamer.bench import median_ms
from spiking_dreamer.config_loading import load_config
from spiking_dreamer.envs import make_env
from spiking_dreamer.files import atomic_write_json
from spiking_dreamer.provenance import result_header


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=config_file, default="configs/halfcheetah.yaml")
    parser.add_argument("--rounds", type=positive_int, default=15)
    parser.add_argument(
        "--calls", type=positive_int, default=400, help="actions per variant and round"
    )
    parser.add_argument("--out", type=output_file, required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    import torch._inductor.config as inductor_config

    inductor_config.compile_threads = 1
    cfg = load_config(args.config)
    env = make_env(cfg.env.id, cfg.env.kwargs)
    obs, _ = env.reset(seed=0)
    obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
    low, high = (torch.as_tensor(b) for b in (env.action_space.low, env.action_space.high))
    torch.manual_seed(0)
    actor = build_actor(obs_dim, low, high, cfg.actor)
    agent = TD3(
        actor,
        TwinQCritic(obs_dim, act_dim, cfg.critic.hidden_sizes),
        cfg.td3,
        torch.Generator().manual_seed(0),
    )
    policies = {"eager": agent._policy}
    agent.compile()
    policies["compiled"] = agent._policy
    policies["max_autotune"] = torch.compile(
        actor, dynamic=False, mode="max-autotune-no-cudagraphs"
    )
    x = torch.as_tensor(obs, dtype=torch.float32).unsqueeze(0)
    with torch.no_grad():
        ref = policies["eager"](x)
        for name in ("compiled", "max_autotune"):  # also compiles
            err = (policies[name](x) - ref).abs().max().item()
            if err > 1e-5:
                print(f"{name} differs from eager by {err}", file=sys.stderr)
                return 1

    def act(policy: Callable) -> Callable[[], object]:
        def call() -> object:
            agent._policy = policy
            return agent.act(obs)

        return call

    def skip_guards() -> object:
        agent._policy = policies["compiled"]
        with torch.compiler.set_stance("default", skip_guard_eval_unsafe=True):
            return agent.act(obs)

    def graph_only() -> object:
        with torch.no_grad():
            return policies["compiled"](x)

    variants = {name: act(p) for name, p in policies.items()}
    variants.update(skip_guards=skip_guards, graph_only=graph_only)
    per_round: dict[str, list[float]] = {k: [] for k in variants}
    for fn in variants.values():
        median_ms(fn, 50)
    for _ in range(args.rounds):
        for name, fn in variants.items():
            per_round[name].append(median_ms(fn, args.calls, warmup=0))
    medians = {k: statistics.median(v) for k, v in per_round.items()}
    result = {
        **result_header("action_latency_batch1", threads=1),
        "env": cfg.env.id,
        "median_ms": medians,
        "per_round_ms": per_round,
        "numpy_action": np.asarray(variants["compiled"]()).tolist(),
    }
    for k, v in medians.items():
        lo, hi = min(per_round[k]), max(per_round[k])
        print(f"{k:14} {v:.3f} ms  ({lo:.3f}-{hi:.3f} over {args.rounds} rounds)")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
