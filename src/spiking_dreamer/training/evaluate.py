"""Deterministic policy evaluation on separately seeded environments."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from spiking_dreamer.agent import Actor, PopSpikingActor

EVAL_CHUNK = 32
"""Episodes :func:`evaluate_episodes` runs in lockstep at most (one env each)."""


@torch.no_grad()
def evaluate(
    actor: Actor,
    envs: Sequence[gym.Env],
    seed: int,
    first: int = 0,
    generator: torch.Generator | None = None,
) -> tuple[list[float], list[int]]:
    """Run one episode per env in lockstep with the deterministic policy (no exploration noise).

    Episode ``i`` is reset with ``seed + first + i``, so repeated evaluations see identical
    initial states. The policy acts on all unfinished episodes in one batched forward pass. A
    Bernoulli encoder draws from ``generator``, by default one seeded with ``seed``.

    Returns:
        per-episode returns and lengths.
    """
    device = actor.action_scale.device
    if generator is None:
        generator = torch.Generator(device).manual_seed(seed)
    obs = np.stack([env.reset(seed=seed + first + i)[0] for i, env in enumerate(envs)])
    returns = np.zeros(len(envs))
    lengths = np.zeros(len(envs), dtype=np.int64)
    active = np.ones(len(envs), dtype=bool)
    while active.any():
        idx = np.flatnonzero(active)
        x = torch.as_tensor(obs[idx], dtype=torch.float32, device=device)
        actions = actor(x, generator).cpu().numpy()
        for j, i in enumerate(idx):
            o, r, terminated, truncated, _ = envs[i].step(actions[j])
            obs[i] = o
            returns[i] += r
            lengths[i] += 1
            if terminated or truncated:
                active[i] = False
    return returns.tolist(), lengths.tolist()


def evaluate_episodes(
    actor: Actor,
    make_env: Callable[[], gym.Env],
    episodes: int,
    seed: int,
    chunk: int = EVAL_CHUNK,
) -> tuple[list[float], list[int]]:
    """:func:`evaluate` over ``episodes`` episodes, ``chunk`` at a time in lockstep, so memory
    does not grow with ``episodes``: at most ``chunk`` envs exist (made by ``make_env`` and
    reused). Episode ``i`` is reset with ``seed + i`` as in :func:`evaluate`, and one generator
    seeded with ``seed`` serves every chunk; up to ``chunk`` episodes this is :func:`evaluate`
    on ``episodes`` envs exactly.

    Returns:
        per-episode returns and lengths.
    """
    device = actor.action_scale.device
    generator = torch.Generator(device).manual_seed(seed)
    envs = [make_env() for _ in range(min(chunk, episodes))]
    returns: list[float] = []
    lengths: list[int] = []
    try:
        for start in range(0, episodes, chunk):
            n = min(chunk, episodes - start)
            r, lens = evaluate(actor, envs[:n], seed, first=start, generator=generator)
            returns += r
            lengths += lens
    finally:
        for env in envs:
            env.close()
    return returns, lengths


@torch.no_grad()
def firing_rates(
    actor: PopSpikingActor, obs: Tensor, generator: torch.Generator | None = None
) -> dict[str, float]:
    """Mean firing rate of each population of a spiking actor on observations ``[B, O]``:
    ``encoder``, ``hidden1`` ... ``hidden<L>``, ``output``. A stochastic encoder draws from
    ``generator`` (pass one: the global generator is a training run's)."""
    trains = actor.spike_trains(obs, generator)
    names = ["encoder", *[f"hidden{i}" for i in range(1, len(trains) - 1)], "output"]
    return {k: t.mean().item() for k, t in zip(names, trains, strict=True)}
