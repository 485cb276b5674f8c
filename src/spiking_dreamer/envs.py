"""Environment construction: gymnasium MuJoCo tasks with id validation."""

from __future__ import annotations

import difflib
import re
import warnings
from typing import Any

import gymnasium as gym
import numpy as np

from spiking_dreamer.errors import EnvError

# Observation layout and dynamics of these v4 tasks match v5 (gymnasium 1.x moved v2/v3 out).
_V4_TO_V5 = re.compile(
    r"^(HalfCheetah|Ant|Hopper|Walker2d|Humanoid|HumanoidStandup|Swimmer|Reacher|Pusher|"
    r"InvertedPendulum|InvertedDoublePendulum)-v4$"
)


def resolve_env_id(env_id: str) -> str:
    """Map v4 MuJoCo ids to v5 (with a warning) and check the id is registered."""
    m = _V4_TO_V5.match(env_id)
    if m:
        new = f"{m.group(1)}-v5"
        warnings.warn(
            f"{env_id} is run as {new} (same observation and action layout on gymnasium 1.x); "
            "label results with the v5 id",
            stacklevel=2,
        )
        env_id = new
    if env_id not in gym.registry:
        close = difflib.get_close_matches(env_id, list(gym.registry), n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise EnvError(f"unknown environment id {env_id!r}{hint}")
    return env_id


def make_env(env_id: str, kwargs: dict[str, Any] | None = None) -> gym.Env:
    """Create a single environment with a continuous (Box) action space."""
    env_id = resolve_env_id(env_id)
    try:
        env = gym.make(env_id, **(kwargs or {}))
    except TypeError as e:
        raise EnvError(f"bad env.kwargs {kwargs!r} for {env_id}: {e}") from None
    except gym.error.Error as e:
        raise EnvError(f"cannot create {env_id}: {e}") from None
    if not isinstance(env.action_space, gym.spaces.Box):
        env.close()
        raise EnvError(f"{env_id} has a {type(env.action_space).__name__} action space; needs Box")
    if (
        not isinstance(env.observation_space, gym.spaces.Box)
        or len(env.observation_space.shape) != 1
    ):
        env.close()
        raise EnvError(f"{env_id} needs a flat Box observation space")
    if not np.all(np.isfinite(env.action_space.low)) or not np.all(
        np.isfinite(env.action_space.high)
    ):
        env.close()
        raise EnvError(f"{env_id} has unbounded actions")
    return env
