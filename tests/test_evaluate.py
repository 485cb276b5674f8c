"""Evaluation returns against a toy env whose episode returns are known by hand."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor, nn

from spiking_dreamer.training.evaluate import evaluate, evaluate_episodes


class CountingEnv(gym.Env):
    """Reward ``t`` at step ``t`` (1, 2, ...); an episode reset with seed ``s`` lasts
    ``k = 2 + s % 3`` steps and then terminates (even ``s``) or is truncated (odd ``s``), so its
    return is ``k (k + 1) / 2``. The observation is the reset seed; the actions are recorded."""

    observation_space = gym.spaces.Box(-np.inf, np.inf, (1,), np.float64)
    action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)

    def __init__(self) -> None:
        self.seed, self.t, self.actions = 0, 0, []

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        self.seed, self.t = int(seed), 0
        return np.array([float(self.seed)]), {}

    def step(self, action):
        self.t += 1
        self.actions.append(float(action[0]))
        end = self.t == 2 + self.seed % 3
        terminated, truncated = end and self.seed % 2 == 0, end and self.seed % 2 == 1
        return np.array([float(self.seed)]), float(self.t), terminated, truncated, {}


class EchoActor(nn.Module):
    """The action is ``obs / 1000`` (the reset seed, scaled into the bounds)."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("action_scale", torch.ones(1))

    def forward(self, obs: Tensor, generator: torch.Generator | None = None) -> Tensor:
        return obs / 1000


def expected(seeds: range) -> tuple[list[float], list[int]]:
    lengths = [2 + s % 3 for s in seeds]
    return [k * (k + 1) / 2 for k in lengths], lengths


def test_returns_and_lengths_are_the_episodes_sums_reset_with_seed_plus_index() -> None:
    envs = [CountingEnv() for _ in range(5)]
    returns, lengths = evaluate(EchoActor(), envs, seed=100, first=3)
    assert (returns, lengths) == expected(range(103, 108))  # 3, 6 or 10; terminated or truncated
    for i, env in enumerate(envs):  # every step acted on the env's own observation
        assert env.actions == [np.float32((103 + i) / 1000)] * lengths[i]  # float32 actions


def test_episodes_in_chunks_keep_their_seeds_and_returns() -> None:
    made: list[CountingEnv] = []

    def make() -> CountingEnv:
        made.append(CountingEnv())
        return made[-1]

    returns, lengths = evaluate_episodes(EchoActor(), make, episodes=7, seed=20, chunk=3)
    assert (returns, lengths) == expected(range(20, 27))
    assert len(made) == 3
