"""Environment construction: gymnasium MuJoCo tasks with id validation."""

from __future__ import annotations

import contextlib
import difflib
import re
import sys
import warnings
from collections.abc import Iterator
from typing import Any

import gymnasium as gym
import numpy as np

from spiking_dreamer.errors import EnvError

# Observation layout and dynamics of these v4 tasks match v5 (gymnasium 1.x moved v2/v3 out).
_V4_TO_V5 = re.compile(r"^(HalfCheetah|Hopper|Walker2d|Swimmer|Pusher|InvertedPendulum)-v4$")
# These v4 tasks observe another layout than their v5 defaults: running them as v5 would
# silently change what the actor sees, so they are refused with what to use instead.
_V4_REFUSED = {
    "Ant": (
        "Ant-v4 observes 27 values by default and Ant-v5 105 (with contact forces); use "
        "Ant-v5 with env.kwargs {include_cfrc_ext_in_observation: false} (the same 27 values, "
        "as in configs/ant.yaml)"
    ),
    "Humanoid": "it observes 376 values and Humanoid-v5 348; use Humanoid-v5",
    "HumanoidStandup": "it observes 376 values and HumanoidStandup-v5 348; use it",
    "Reacher": "it observes 11 values and Reacher-v5 10; use Reacher-v5",
    "InvertedDoublePendulum": (
        "it observes 11 values and InvertedDoublePendulum-v5 9; use InvertedDoublePendulum-v5"
    ),
}
_V4_REFUSED_ID = re.compile(rf"^({'|'.join(_V4_REFUSED)})-v4$")

# v2/v3 ids: gymnasium 1.x registers them only to raise an ImportError (they needed mujoco-py).
# Where the default observation and action layout equals v5's (checked against gym's v2/v3 and
# gymnasium's v5 sources: same qpos/qvel slices and clipping, same default kwargs), they are run
# as v5, and the value says what else v5 changed (for the v4 ids too). Where the layout differs
# there is no v5 equivalent: the id is refused with what to use instead.
_LEGACY_AS_V5 = {
    "HalfCheetah": "",
    "Hopper": "; v5 pays healthy_reward only while healthy, not on the terminal step",
    "Walker2d": (
        "; v5 pays healthy_reward only while healthy and gives the right foot the left foot's "
        "friction (1.9, was 0.9)"
    ),
    "Swimmer": "",
    "InvertedPendulum": "; v5 gives reward 0 on the terminal step",
    "Pusher": "; v5 makes the object denser than air",
}
_LEGACY_REFUSED = {
    "Ant": (
        "it observes 111 values (27 + contact forces of 14 bodies, all zero under mujoco-py >= "
        "2.0) and Ant-v5 has no such layout; use Ant-v5 with env.kwargs "
        "{include_cfrc_ext_in_observation: false} (the 27 values without contact forces, as in "
        "configs/ant.yaml) or Ant-v5 (105 values with contact forces)"
    ),
    "Humanoid": (
        "it observes 376 values and Humanoid-v5 348 (v5 drops 28 that were always zero); "
        "use Humanoid-v5"
    ),
    "HumanoidStandup": (
        "it observes 376 values and HumanoidStandup-v5 348 (v5 drops 28 that were always "
        "zero); use HumanoidStandup-v5"
    ),
    "Reacher": (
        "it observes 11 values and Reacher-v5 10 (v5 drops the fingertip's z distance, always "
        "zero); use Reacher-v5"
    ),
    "InvertedDoublePendulum": (
        "it observes 11 values and InvertedDoublePendulum-v5 9 (v5 drops two constraint "
        "forces that were always zero); use InvertedDoublePendulum-v5"
    ),
}
_LEGACY = re.compile(rf"^({'|'.join([*_LEGACY_AS_V5, *_LEGACY_REFUSED])})-v[23]$")


def _runnable_ids() -> list[str]:
    """Registered ids that can be made: not the v2/v3 and shimmy placeholders gymnasium
    registers only to raise an ImportError (their entry point is a ``_raise_*`` function)."""
    return [
        env_id
        for env_id, spec in gym.registry.items()
        if not _V4_REFUSED_ID.match(env_id)
        and (
            isinstance(spec.entry_point, str)
            or not getattr(spec.entry_point, "__name__", "").startswith("_raise")
        )
    ]


def resolve_env_id(env_id: str) -> str:
    """Map v4 MuJoCo ids, and v2/v3 ids with v5's observation and action layout, to v5 (with a
    warning); refuse other v2/v3 ids with what to use instead; check the id is registered."""
    refused_v4 = _V4_REFUSED_ID.match(env_id)
    if refused_v4:
        raise EnvError(f"{env_id} is not run as v5: {_V4_REFUSED[refused_v4.group(1)]}")
    legacy = _LEGACY.match(env_id) if env_id in gym.registry else None
    if legacy and legacy.group(1) in _LEGACY_REFUSED:
        raise EnvError(
            f"{env_id} cannot be run (gymnasium 1.x dropped the mujoco-py v2/v3 tasks) and has "
            f"no v5 equivalent: {_LEGACY_REFUSED[legacy.group(1)]}"
        )
    m = _V4_TO_V5.match(env_id) or legacy
    if m:
        new = f"{m.group(1)}-v5"
        warnings.warn(
            f"{env_id} is run as {new} (same observation and action layout on gymnasium 1.x"
            f"{_LEGACY_AS_V5.get(m.group(1), '')}); label results with the v5 id",
            stacklevel=2,
        )
        env_id = new
    if env_id not in gym.registry:
        close = difflib.get_close_matches(env_id, _runnable_ids(), n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise EnvError(f"unknown environment id {env_id!r}{hint}")
    return env_id


# MuJoCo >= 3.16 warns about this attribute of gymnasium's own half_cheetah.xml on every load
# (to stderr from C and into ./MUJOCO_LOG.TXT); it says nothing a user can act on.
_SETTOTALMASS = "compiler attribute 'settotalmass' is deprecated"


@contextlib.contextmanager
def _without_settotalmass_warning() -> Iterator[None]:
    """Drop MuJoCo's ``settotalmass`` deprecation warning while the block runs; every other
    MuJoCo warning goes where it went before (the previously installed handler, else what
    MuJoCo's default handler does: ``MUJOCO_LOG.TXT`` and stderr)."""
    try:
        import mujoco
    except ImportError:  # gymnasium without its mujoco extra: nothing to silence
        yield
        return
    previous = mujoco.get_mju_user_warning()

    def handler(msg: str) -> None:
        if msg.startswith(_SETTOTALMASS):
            return
        if previous is not None:
            previous(msg)
            return
        mujoco.mju_writeLog("WARNING", msg)
        sys.stderr.write(f"WARNING: {msg}\n\n")
        sys.stderr.flush()

    mujoco.set_mju_user_warning(handler)
    try:
        yield
    finally:
        mujoco.set_mju_user_warning(previous)


_POSITIVE_INT_KWARGS = ("frame_skip", "max_episode_steps")
"""``env.kwargs`` that gymnasium or MuJoCo accept at any int but that only work when >= 1."""


def _check_kwargs(env_id: str, kwargs: dict[str, Any]) -> None:
    for key in _POSITIVE_INT_KWARGS:
        value = kwargs.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise EnvError(f"env.kwargs.{key} for {env_id}: must be an integer, got {value!r}")
        if value is not None and value < 1:
            raise EnvError(f"env.kwargs.{key} for {env_id}: must be >= 1, got {value}")


def check_env(env_id: str, kwargs: dict[str, Any] | None = None) -> tuple[int, int]:
    """Make the env once, reset it and take one step, so that an env id or ``env.kwargs`` the
    env refuses (at construction or only when it runs) fails before any work; returns the
    observation and action sizes.

    Raises:
        EnvError: the env cannot be made, reset or stepped, or yields non-finite values.
    """
    env_id = resolve_env_id(env_id)
    if "render_mode" in (kwargs or {}):
        raise EnvError(
            f"env.kwargs.render_mode for {env_id}: a run renders nothing (a window would need "
            "a display); leave it out and render a trained actor with eval --video"
        )
    env = make_env(env_id, kwargs)
    try:
        dt = getattr(env.unwrapped, "dt", None)
        if dt is not None and not dt > 0:
            raise EnvError(f"{env_id} with env.kwargs {kwargs!r} has time step {dt}; needs > 0")
        space = env.action_space
        try:
            obs, _ = env.reset(seed=0)
            step = env.step(((space.low + space.high) / 2).astype(space.dtype))
        except Exception as e:  # a value of env.kwargs the env only refuses when it runs
            raise EnvError(
                f"{env_id} with env.kwargs {kwargs!r} fails when it runs: {type(e).__name__}: {e}"
            ) from None
        if not (np.all(np.isfinite(obs)) and np.all(np.isfinite(step[0]))):
            raise EnvError(f"{env_id} with env.kwargs {kwargs!r} observes non-finite values")
        return env.observation_space.shape[0], space.shape[0]
    finally:
        env.close()


def make_env(env_id: str, kwargs: dict[str, Any] | None = None) -> gym.Env:
    """Create a single environment with a continuous (Box) action space."""
    env_id = resolve_env_id(env_id)
    _check_kwargs(env_id, kwargs or {})
    try:
        with _without_settotalmass_warning():
            env = gym.make(env_id, **(kwargs or {}))
    except TypeError as e:
        raise EnvError(f"bad env.kwargs {kwargs!r} for {env_id}: {e}") from None
    except (gym.error.Error, ImportError) as e:
        raise EnvError(f"cannot create {env_id}: {e}") from None
    except Exception as e:  # the env's constructor refused a value of env.kwargs
        raise EnvError(
            f"cannot create {env_id} with env.kwargs {kwargs!r}: {type(e).__name__}: {e}"
        ) from None
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
