"""Deterministic policy evaluation on separately seeded environments."""

from __future__ import annotations

from collections.abc import Sequence

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from spiking_dreamer.agent import Actor, PopSpikingActor


@torch.no_grad()
def evaluate(actor: Actor, envs: Sequence[gym.Env], seed: int) -> tuple[list[float], list[int]]:
    """Run one episode per env in lockstep with the deterministic policy (no exploration noise).

    Episode ``i`` is reset with ``seed + i``, so repeated evaluations see identical initial states.
    The policy acts on all unfinished episodes in one batched forward pass. A Bernoulli encoder
    draws from a generator seeded with ``seed``.

    Returns:
        per-episode returns and lengths.
    """
    device = actor.action_scale.device
    generator = torch.Generator(device).manual_seed(seed)
    obs = np.stack([env.reset(seed=seed + i)[0] for i, env in enumerate(envs)])
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


@torch.no_grad()
def firing_rates(actor: PopSpikingActor, obs: Tensor) -> dict[str, float]:
    """Mean firing rate of each population of a spiking actor on observations ``[B, O]``:
    ``encoder``, ``hidden1`` ... ``hidden<L>``, ``output``."""
    trains = actor.spike_trains(obs)
    names = ["encoder", *[f"hidden{i}" for i in range(1, len(trains) - 1)], "output"]
    return {k: t.mean().item() for k, t in zip(names, trains, strict=True)}
