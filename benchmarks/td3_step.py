"""TD3 step time, PopSAN actor against the MLP actor, eager and compiled, measured interleaved.

A noisy VM shifts timings between the arms of a sequential benchmark; here the arms take turns
(``--rounds`` rounds, ``--updates`` TD3 updates per arm and round, on the same replay batch
stream), and the ratios are computed per round, then their median is taken. One TD3 update per
call of ``TD3.update`` (critic step every call, actor step every ``policy_delay``-th), so the mean
time per update is the TD3 step time of ``spiking-dreamer bench``. Each round also times
``--act-calls`` actions at batch 1 per arm (median). Afterwards each arm runs
``--profile-calls`` updates (and five times as many actions) under the torch profiler: the
result file records where the time goes (top ops by self CPU time, share in matrix multiplies).

    python benchmarks/td3_step.py --out benchmarks/results/td3_step_interleaved_cpu1.json
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import torch

from spiking_dreamer.agent import TD3, TwinQCritic, build_actor
from spiking_dreamer.arguments import config_file, int_in, output_file, positive_int
from spiking_dreamer.bench import median_ms
from spiking_dreamer.buffers import ReplayBuffer
from spiking_dreamer.config_loading import load_config
from spiking_dreamer.envs import make_env
from spiking_dreamer.files import atomic_write_json
from spiking_dreamer.provenance import result_header

MATMUL_OPS = ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::addmv", "aten::mv")


def profile(fn: Callable[[int], object], calls: int, top: int = 15) -> dict[str, object]:
    """Where the CPU time of ``fn(i)``, ``i < calls``, goes (torch profiler): the ``top`` ops by
    self time, each with its share, and the share of all matrix multiplies."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        for i in range(calls):
            fn(i)
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    rows = sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:top]
    return {
        "calls": calls,
        "self_cpu_ms_per_call": total / 1e3 / calls,
        "matmul_share": sum(e.self_cpu_time_total for e in events if e.key in MATMUL_OPS) / total,
        "top_ops": [
            {
                "op": e.key,
                "count_per_call": e.count / calls,
                "self_ms_per_call": e.self_cpu_time_total / 1e3 / calls,
                "share": e.self_cpu_time_total / total,
            }
            for e in rows
        ],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=config_file, default="configs/halfcheetah.yaml")
    parser.add_argument("--rounds", type=positive_int, default=15)
    parser.add_argument("--updates", type=positive_int, default=40)
    parser.add_argument(
        "--act-calls", type=positive_int, default=200, help="actions timed per round"
    )
    parser.add_argument("--profile-calls", type=int_in(0), default=200, help="0: no profile")
    parser.add_argument("--out", type=output_file, required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    cfg = load_config(args.config)

    env = make_env(cfg.env.id, cfg.env.kwargs)
    obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
    buf = ReplayBuffer(5000, obs_dim, act_dim)
    obs, _ = env.reset(seed=0)
    env.action_space.seed(0)
    for _ in range(5000):  # random-policy transitions
        action = env.action_space.sample()
        nxt, reward, term, trunc, _ = env.step(action)
        buf.add(obs, action, reward, nxt, term)
        obs = env.reset()[0] if term or trunc else nxt
    low, high = (torch.as_tensor(b) for b in (env.action_space.low, env.action_space.high))

    agents = {}
    for kind in ("mlp", "popsan"):
        for compiled in (False, True):
            torch.manual_seed(0)
            actor = build_actor(obs_dim, low, high, cfg.replace(actor={"kind": kind}).actor)
            actor.obs_normalizer.update(buf.obs[: len(buf)])
            critic = TwinQCritic(obs_dim, act_dim, cfg.critic.hidden_sizes)
            agent = TD3(actor, critic, cfg.td3, torch.Generator().manual_seed(0))
            if compiled:
                agent.compile()
            agents[f"{kind}{'_compiled' if compiled else ''}"] = agent
    g = torch.Generator().manual_seed(0)
    batches = [buf.sample(cfg.td3.batch_size, g) for _ in range(args.updates)]
    obs_1 = buf.obs[0].numpy()  # one raw observation: acting at batch 1
    for agent in agents.values():  # warm-up (compiles)
        for b in batches[:8]:
            agent.update(b)
        for _ in range(20):
            agent.act(obs_1)

    per_round: dict[str, list[float]] = {name: [] for name in agents}
    act_per_round: dict[str, list[float]] = {name: [] for name in agents}
    for _ in range(args.rounds):
        for name, agent in agents.items():
            start = time.perf_counter()
            for b in batches:
                agent.update(b)
            per_round[name].append(1e3 * (time.perf_counter() - start) / len(batches))
            act_per_round[name].append(
                median_ms(partial(agent.act, obs_1), args.act_calls, warmup=0)
            )

    n = len(batches)

    def ratio(a: str, b: str) -> float:
        return statistics.median(x / y for x, y in zip(per_round[a], per_round[b], strict=True))

    best = {
        k: min(("", "_compiled"), key=lambda c: statistics.median(per_round[k + c]))
        for k in ("mlp", "popsan")
    }
    result = {
        **result_header("td3_step_interleaved", threads=1),
        "env": cfg.env.id,
        "batch_size": cfg.td3.batch_size,
        "rounds": args.rounds,
        "updates_per_round": args.updates,
        "td3_step_ms_median": {k: statistics.median(v) for k, v in per_round.items()},
        "td3_step_ms_per_round": per_round,
        "ratios_median_of_rounds": {
            "popsan_over_mlp_eager": ratio("popsan", "mlp"),
            "popsan_over_mlp_compiled": ratio("popsan_compiled", "mlp_compiled"),
            "popsan_compiled_over_mlp_eager": ratio("popsan_compiled", "mlp"),
            "best_popsan_over_best_mlp": ratio("popsan" + best["popsan"], "mlp" + best["mlp"]),
        },
        "best_setting": best,
        "action_batch1_ms_median": {k: statistics.median(v) for k, v in act_per_round.items()},
        "action_batch1_ms_per_round": act_per_round,
        "profile": {
            name: profile(lambda i, a=agent: a.update(batches[i % n]), args.profile_calls)
            for name, agent in agents.items()
            if args.profile_calls > 0
        },
        "profile_action_batch1": {
            name: profile(lambda i, a=agent: a.act(obs_1), 5 * args.profile_calls)
            for name, agent in agents.items()
            if args.profile_calls > 0
        },
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.out, result)
    for k, v in result["td3_step_ms_median"].items():
        act = result["action_batch1_ms_median"][k]
        print(f"{k:18} {v:7.2f} ms per TD3 step, {act:.3f} ms per action at batch 1")
    for k, v in result["ratios_median_of_rounds"].items():
        print(f"{k:32} {v:.2f}")
    for name, prof in result["profile"].items():
        print(f"{name}: {prof['matmul_share']:.0%} of profiled CPU time in matrix multiplies")
    print(f"(medians over {args.rounds} interleaved rounds)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
