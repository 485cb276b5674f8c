"""One env step's TD3 updates at G critic updates per env step: the ``td3`` schedule (G x
``update``) against REDQ's ``per_env_step`` schedule, without and with batched TD targets,
eager and compiled, measured interleaved on one CPU thread (and, eager, on two threads:
``--threads2-rounds`` rounds of one env step per arm).

Every arm starts from the same networks and runs the same replay batches (HalfCheetah-v5
transitions of a random policy, PopSAN sizes from ``--config``). The arms take turns
(``--rounds`` rounds, ``--env-steps`` env steps per arm and round); the result is the median of
the rounds in ms per env step, and each ratio is the median of the per-round ratios (a noisy
VM shifts timings between the arms of a sequential benchmark). The file also records the parts
of an env step timed alone (G sequential TD targets, one batched TD target over ``[G * B]``,
one critic step, one actor step) and whether the batched targets equal the sequential ones
bitwise at these sizes.

    python benchmarks/td3_schedule.py --out benchmarks/results/td3_schedule_cpu1.json
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

from spiking_dreamer.agent import TD3, TwinQCritic, build_actor
from spiking_dreamer.arguments import config_file, int_in, output_file, positive_int
from spiking_dreamer.bench import median_ms
from spiking_dreamer.buffers import Batch, ReplayBuffer
from spiking_dreamer.config import Config, TD3Config
from spiking_dreamer.config_loading import load_config
from spiking_dreamer.envs import make_env
from spiking_dreamer.files import atomic_write_json
from spiking_dreamer.provenance import result_header

ARMS: dict[str, dict[str, object]] = {
    "td3": {"schedule": "td3"},
    "per_env_step": {"schedule": "per_env_step", "batched_targets": False},
    "per_env_step_batched": {"schedule": "per_env_step", "batched_targets": True},
}
RATIOS = {
    "td3_over_per_env_step": ("td3", "per_env_step"),
    "td3_over_per_env_step_batched": ("td3", "per_env_step_batched"),
    "per_env_step_batched_over_per_env_step": ("per_env_step_batched", "per_env_step"),
}


def _replay(cfg: Config, size: int) -> tuple[ReplayBuffer, torch.Tensor, torch.Tensor]:
    env = make_env(cfg.env.id, cfg.env.kwargs)
    obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
    buf = ReplayBuffer(size, obs_dim, act_dim)
    obs, _ = env.reset(seed=0)
    env.action_space.seed(0)
    for _ in range(size):  # random-policy transitions
        action = env.action_space.sample()
        nxt, reward, term, trunc, _ = env.step(action)
        buf.add(obs, action, reward, nxt, term)
        obs = env.reset()[0] if term or trunc else nxt
    low, high = (torch.as_tensor(b) for b in (env.action_space.low, env.action_space.high))
    return buf, low, high


def _agent(cfg: Config, td3: TD3Config, buf: ReplayBuffer, low: torch.Tensor, high: torch.Tensor):
    torch.manual_seed(0)
    obs_dim, act_dim = buf.obs.shape[1], buf.action.shape[1]
    actor = build_actor(obs_dim, low, high, cfg.actor)
    actor.obs_normalizer.update(buf.obs[: len(buf)])
    critic = TwinQCritic(obs_dim, act_dim, cfg.critic.hidden_sizes)
    return TD3(actor, critic, td3, torch.Generator().manual_seed(0))


def _interleaved(
    agents: dict[str, TD3], steps: list[list[Batch]], rounds: int, per_round: int
) -> dict[str, list[float]]:
    """ms per env step of every agent, one list entry per round; the agents take turns."""
    times: dict[str, list[float]] = {name: [] for name in agents}
    i = 0
    for _ in range(rounds):
        for name, agent in agents.items():
            start = time.perf_counter()
            for j in range(per_round):
                agent.update_env_step(steps[(i + j) % len(steps)])
            times[name].append(1e3 * (time.perf_counter() - start) / per_round)
        i += per_round
    return times


def _summary(times: dict[str, list[float]], ratios: dict[str, tuple[str, str]]) -> dict:
    def ratio(a: str, b: str) -> float:
        return statistics.median(x / y for x, y in zip(times[a], times[b], strict=True))

    return {
        "ms_per_env_step_median": {k: statistics.median(v) for k, v in times.items()},
        "ratios_median_of_rounds": {k: ratio(a, b) for k, (a, b) in ratios.items()},
        "ms_per_env_step_per_round": times,
    }


def _parts(agent: TD3, batches: list[Batch], repeats: int) -> dict[str, float]:
    """ms of the parts of one env step, each timed alone (median of ``repeats``)."""
    b = batches[0]
    obs_n = agent.actor.obs_normalizer(b.obs)
    target = agent.critic_target_value(b)
    parts: dict[str, Callable[[], object]] = {
        f"{len(batches)}_sequential_td_targets": lambda: [
            agent.critic_target_value(x) for x in batches
        ],
        f"batched_td_target_over_{len(batches)}_batches": lambda: agent.critic_target_values(
            batches
        ),
        "one_critic_step": lambda: agent._critic_step(obs_n, b.action, target),
        "one_actor_step": lambda: agent.actor_update(b),
        "one_polyak_update_of_both_targets": lambda: agent._update_targets(agent.cfg.tau),
    }
    return {name: median_ms(fn, repeats, warmup=2) for name, fn in parts.items()}


def _two_threads(
    eager: dict[str, TD3], steps: list[list[Batch]], rounds: int, per_round: int
) -> dict | None:
    """The eager arms on two threads (interleaved rounds), then each arm's 2-thread / 1-thread
    time ratio with the two thread counts taking turns on the same agent."""
    if rounds <= 0:
        return None
    torch.set_num_threads(2)
    for agent in eager.values():
        agent.update_env_step(steps[0])
    out = _summary(_interleaved(eager, steps, rounds, per_round), RATIOS)
    per_arm: dict[str, float] = {}
    for name, agent in eager.items():
        ratios = []
        for r in range(rounds):
            t = []
            for threads in (1, 2):
                torch.set_num_threads(threads)
                start = time.perf_counter()
                agent.update_env_step(steps[r % len(steps)])
                t.append(time.perf_counter() - start)
            ratios.append(t[1] / t[0])
        per_arm[name] = statistics.median(ratios)
    torch.set_num_threads(1)
    out["two_over_one_thread_median_of_rounds"] = per_arm
    return out


def _print(result: dict) -> None:
    one_thread, two_threads, parts = (
        result["one_thread"],
        result["two_threads"],
        result["parts_ms_one_thread"],
    )
    g, batch_size = result["updates_per_env_step"], result["batch_size"]
    targets_check = result["batched_vs_sequential_targets"]
    for k, v in one_thread["ms_per_env_step_median"].items():
        print(f"{k:30} {v:7.1f} ms per env step (G={g}, B={batch_size}, 1 thread)")
    for k, v in one_thread["ratios_median_of_rounds"].items():
        print(f"{k:48} {v:.2f}")
    if two_threads is not None:
        for k, v in two_threads["ms_per_env_step_median"].items():
            print(f"{k:30} {v:7.1f} ms per env step (2 threads)")
        for k, v in two_threads["two_over_one_thread_median_of_rounds"].items():
            print(f"{k:30} 2 threads / 1 thread: {v:.2f}")
    for k, v in parts.items():
        print(f"{k:40} {v:7.2f} ms")
    print(f"batched vs sequential targets: {targets_check}")
    print(f"(medians over {result['rounds']} interleaved rounds; {result['wall_s']:.0f} s)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=config_file, default="configs/halfcheetah.yaml")
    parser.add_argument("--updates-per-step", type=positive_int, default=20, help="G")
    parser.add_argument("--rounds", type=positive_int, default=15)
    parser.add_argument(
        "--env-steps", type=positive_int, default=2, help="env steps per arm and round"
    )
    parser.add_argument("--threads2-rounds", type=int_in(0), default=4, help="0: no 2-thread run")
    parser.add_argument("--no-compile", action="store_true")
    parser.add_argument("--out", type=output_file, required=True)
    args = parser.parse_args()
    wall = time.perf_counter()
    torch.set_num_threads(1)
    cfg = load_config(args.config)
    g, batch_size = args.updates_per_step, cfg.td3.batch_size
    buf, low, high = _replay(cfg, 5000)
    sampler = torch.Generator().manual_seed(0)
    steps = [[buf.sample(batch_size, sampler) for _ in range(g)] for _ in range(4)]

    def arm(settings: dict[str, object]) -> TD3:
        return _agent(cfg, dataclasses.replace(cfg.td3, **settings), buf, low, high)

    # bitwise check: batched against sequential targets, same networks and noise stream
    probe = arm(ARMS["per_env_step"])
    probe.generator.manual_seed(1)
    seq = torch.stack([probe.critic_target_value(b) for b in steps[0]])
    probe.generator.manual_seed(1)
    bat = probe.critic_target_values(steps[0])
    targets_check = {
        "bitwise_equal": bool(torch.equal(seq, bat)),
        "max_abs_diff": (seq - bat).abs().max().item(),
        "max_rel_diff": ((seq - bat).abs() / seq.abs().clamp_min(1e-12)).max().item(),
    }
    parts = _parts(arm(ARMS["per_env_step"]), steps[0], repeats=7)

    eager = {name: arm(settings) for name, settings in ARMS.items()}
    compiled: dict[str, TD3] = {}
    compile_s: dict[str, float] = {}
    if not args.no_compile:
        for name, settings in ARMS.items():
            agent = compiled[f"{name}_compiled"] = arm(settings)
            agent.compile()
            start = time.perf_counter()
            agent.update_env_step(steps[0])  # compiles every shape this arm uses
            compile_s[f"{name}_compiled"] = time.perf_counter() - start
    agents = {**eager, **compiled}
    for agent in agents.values():  # warm-up
        for batches in steps[:2]:
            agent.update_env_step(batches)
    ratios = dict(RATIOS)
    if compiled:
        ratios.update(
            {f"{name}_compiled_over_{name}": (f"{name}_compiled", name) for name in ARMS},
        )
        ratios["td3_over_per_env_step_batched_compiled"] = ("td3", "per_env_step_batched_compiled")
    one_thread = _summary(_interleaved(agents, steps, args.rounds, args.env_steps), ratios)

    two_threads = _two_threads(eager, steps, args.threads2_rounds, 1)
    result = {
        **result_header("td3_schedule", threads=1),
        "env": cfg.env.id,
        "obs_dim": buf.obs.shape[1],
        "act_dim": buf.action.shape[1],
        "actor": {
            k: getattr(cfg.actor, k)
            for k in ("kind", "hidden_sizes", "spike_ts", "encoder_pop_dim", "decoder_pop_dim")
        },
        "critic_hidden_sizes": cfg.critic.hidden_sizes,
        "updates_per_env_step": g,
        "batch_size": batch_size,
        "td3": {k: getattr(cfg.td3, k) for k in ("policy_delay", "tau")},
        "arms": {
            "td3": f"{g} x update(): {g} critic steps, {g // cfg.td3.policy_delay} actor steps "
            f"and Polyak updates, {g} target-actor forwards of [{batch_size}]",
            "per_env_step": f"{g} critic steps (targets fixed, {g} target forwards of "
            f"[{batch_size}]), 1 actor step, 1 Polyak update",
            "per_env_step_batched": f"as per_env_step, one target forward of [{g * batch_size}]",
            "*_compiled": "the same after TD3.compile()",
        },
        "rounds": args.rounds,
        "env_steps_per_arm_and_round": args.env_steps,
        "one_thread": one_thread,
        "two_threads": two_threads,
        "compile_s_first_env_step": compile_s,
        "parts_ms_one_thread": parts,
        "batched_vs_sequential_targets": targets_check,
        "wall_s": time.perf_counter() - wall,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.out, result)
    _print(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
