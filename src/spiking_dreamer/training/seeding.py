"""Seeding a run, and capturing / restoring every random generator it draws from.

A run draws from: Python's ``random``, the global torch generator (network initialisation, a
Bernoulli encoder), the run's own NumPy generator (exploration noise), named torch generators
passed to the parts that sample (replay minibatches, target-policy noise, dreams), and the
training env with its action space (resets, warm-up actions). Capturing all of them at an
episode boundary lets a resumed run continue exactly.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np
import torch


def seed_everything(seed: int) -> np.random.Generator:
    """Seed Python, NumPy's global and torch's global generators; returns the run's own NumPy
    generator (seeded with ``seed`` too)."""
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 (third-party code may draw from it)
    torch.manual_seed(seed)
    return np.random.default_rng(seed)


def rng_state(
    device: torch.device,
    np_rng: np.random.Generator,
    generators: Mapping[str, torch.Generator],
    env: gym.Env,
) -> dict[str, Any]:
    """Every generator's state: ``python``, ``numpy`` (``np_rng``), ``torch``, ``cuda`` (empty
    unless ``device`` is a GPU), one entry per named generator, ``env`` and ``action_space``."""
    cuda = torch.cuda.get_rng_state_all() if device.type == "cuda" else []
    return {
        "python": random.getstate(),
        "numpy": np_rng.bit_generator.state,
        "torch": torch.get_rng_state(),
        "cuda": cuda,
        **{name: g.get_state() for name, g in generators.items()},
        "env": env.unwrapped.np_random.bit_generator.state,
        "action_space": env.action_space.np_random.bit_generator.state,
    }


def saved_on(state: Mapping[str, Any]) -> str:
    """``cuda`` or ``cpu``: the kind of device an :func:`rng_state` was captured on."""
    return "cuda" if state["cuda"] else "cpu"


def restore_rng_state(
    state: Mapping[str, Any],
    np_rng: np.random.Generator,
    generators: Mapping[str, torch.Generator],
    env: gym.Env,
) -> None:
    """Put every generator back where :func:`rng_state` found it."""
    random.setstate(state["python"])
    np_rng.bit_generator.state = state["numpy"]
    torch.set_rng_state(state["torch"])
    if state["cuda"]:
        torch.cuda.set_rng_state_all(state["cuda"])
    for name, g in generators.items():
        g.set_state(state[name])
    env.unwrapped.np_random.bit_generator.state = state["env"]
    env.action_space.np_random.bit_generator.state = state["action_space"]
