"""Termination functions for imagined (model-based) rollouts of gymnasium MuJoCo v5 tasks.

Contract
--------
A termination function has the signature ``fn(obs, action, next_obs) -> terminated`` with

* ``obs``: ``[N, O]`` observation before the step,
* ``action``: ``[N, A]`` action taken,
* ``next_obs``: ``[N, O]`` observation after the step,
* return value: ``[N]`` ``torch.bool`` tensor on the device of ``next_obs``.

Any number of leading batch dimensions works (``[..., O] -> [...]``); float32 and float64 inputs
are accepted (threshold comparisons are done in float64, so the result is gymnasium's answer for a
state with exactly the given values).

``terminated`` means the episode ended by the task's own condition (the agent became
"unhealthy", the pole fell over). It never includes time-limit truncation: the ``TimeLimit``
wrapper's ``truncated`` flag is not a termination and must not be predicted here.

In gymnasium v5 ``terminated`` is computed from the simulator state *after* the step, so only
``next_obs`` is used; ``obs`` and ``action`` are accepted to keep the common signature (as in
mbrl-lib's ``termination_fns``). Every function reproduces gymnasium 1.x's v5 ``terminated``
(same observation entries, same default ranges, same strict ``<`` or non-strict ``<=``
comparisons, same finiteness checks, NaN counts as unhealthy wherever gymnasium's comparison
would fail on it) and ``tests/test_termination.py`` checks each one step by step against real
environments, including perturbed states near and beyond the healthy bounds.

Supported ids (:data:`TERMINATION_FNS`): HalfCheetah-v5, Swimmer-v5, Reacher-v5, Pusher-v5 and
HumanoidStandup-v5 never terminate; Hopper-v5, Walker2d-v5, Ant-v5 (27-dim observation with
``include_cfrc_ext_in_observation=False`` and the default 105-dim one), Humanoid-v5 and
InvertedPendulum-v5 have exact functions. :func:`termination_fn` also honours the constructor
keyword arguments that change termination (``terminate_when_unhealthy``, ``healthy_z_range``,
``healthy_angle_range``, ``healthy_state_range``, ``exclude_current_positions_from_observation``;
the ``include_*_in_observation`` flags only change the observation width, and all widths they
can produce are accepted).

Not supported, deliberately:

* **InvertedDoublePendulum-v5** terminates when the pole tip's height ``data.site_xpos[0][2]``
  is ``<= 1``. The model integrates with RK4 and ``site_xpos`` is left over from inside the last
  RK4 step, not recomputed for the final state the observation describes, so the condition depends
  on hidden simulator state (measured differences from the observed state's tip height up to
  ~5e-5), and the observation also clips the joint velocities. It cannot be reproduced exactly
  from ``next_obs`` and :func:`termination_fn` raises :class:`TerminationError` for it.
* A custom ``xml_file`` for a terminating task may change the ``qpos`` layout, so it raises
  :class:`TerminationError`.

Known limit of Hopper-v5: its health check ``healthy_state_range`` (default ``(-100, 100)``)
applies to the *unclipped* joint velocities, while the observation clips them to ``[-10, 10]``.
A velocity of magnitude >= 100 is therefore invisible in the observation (the observation is
identical to one with velocity 10). This is the only case where the function can disagree with
the environment; it is exact whenever both bounds of ``healthy_state_range`` lie within
``[-10, 10]``, or no joint speed reaches the bound (random-action rollouts stay below ~8). No
function of the observation can do better.

Ant-v5 also checks that the x, y positions are finite, and those are not in the default
observation. That never matters for a real env (MuJoCo bounds ``qpos``/``qvel``/``qacc`` in every
``mj_step``, so the state after a step is always finite); for model predictions only the observed
entries can be checked.

Unknown env ids raise :class:`TerminationError` unless ``allow_never=True`` (config key
``world_model.assume_never_terminates: true``), which treats them as never terminating.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from spiking_dreamer.errors import TerminationError

__all__ = [
    "TERMINATION_FNS",
    "TerminationError",
    "TerminationFn",
    "ant_v5",
    "hopper_v5",
    "humanoid_v5",
    "inverted_pendulum_v5",
    "never_terminates",
    "termination_fn",
    "walker2d_v5",
]

TerminationFn = Callable[[Tensor, Tensor, Tensor], Tensor]
"""``(obs [N, O], action [N, A], next_obs [N, O]) -> terminated bool [N]``."""

Range = tuple[float, float]


class _Unsupported(TerminationError):
    """A TerminationError that ``allow_never=True`` turns into :func:`never_terminates`."""


# --------------------------------------------------------------------------- helpers


def _obs(next_obs: Tensor, env_id: str, widths: Iterable[int]) -> Tensor:
    t = torch.as_tensor(next_obs)
    widths = sorted(set(widths))
    if t.ndim < 1 or t.shape[-1] not in widths:
        raise ValueError(
            f"{env_id} termination expects next_obs of shape [N, O] with O in {widths}, "
            f"got shape {tuple(t.shape)}"
        )
    return t


def _exact(x: Tensor) -> Tensor:
    """Compare in float64 like gymnasium (numpy float64); MPS has no float64."""
    if x.dtype == torch.float64 or x.device.type == "mps":
        return x
    return x.to(torch.float64)


def _inside(x: Tensor, bounds: Range, *, strict: bool) -> Tensor:
    """``lo < x < hi`` (strict) or ``lo <= x <= hi``; False for NaN, as in Python/numpy."""
    lo, hi = bounds
    if strict:
        return (x > lo) & (x < hi)
    return (x >= lo) & (x <= hi)


# --------------------------------------------------------------------------- env cores
# Each core maps next_obs [..., O] -> terminated [...] for one parameterisation.

_HOPPER_NQ, _WALKER_NQ, _ANT_NQ, _HUMANOID_NQ = 6, 9, 15, 24
_HOPPER_NV, _WALKER_NV, _ANT_NV, _HUMANOID_NV = 6, 9, 14, 23
_ANT_CFRC = 13 * 6  # cfrc_ext[1:] of the 13 non-world bodies
# Optional Humanoid-v5 observation parts: cinert[1:], cvel[1:], qfrc_actuator[6:], cfrc_ext[1:].
_HUMANOID_EXTRAS = {
    "include_cinert_in_observation": 13 * 10,
    "include_cvel_in_observation": 13 * 6,
    "include_qfrc_actuator_in_observation": _HUMANOID_NV - 6,
    "include_cfrc_ext_in_observation": 13 * 6,
}


def _hopper_core(
    next_obs: Tensor,
    *,
    healthy_state_range: Range = (-100.0, 100.0),
    healthy_z_range: Range = (0.7, math.inf),
    healthy_angle_range: Range = (-0.2, 0.2),
    exclude_current_positions: bool = True,
) -> Tensor:
    # gymnasium: z, angle = qpos[1:3]; state = concat(qpos, qvel)[2:]; all strict.
    # obs = qpos[1:] (or qpos) + clip(qvel, -10, 10).
    off = 0 if exclude_current_positions else 1
    o = _obs(next_obs, "Hopper-v5", [_HOPPER_NQ + _HOPPER_NV - 1 + off])
    z, angle, state = _exact(o[..., off]), _exact(o[..., off + 1]), _exact(o[..., off + 1 :])
    healthy = (
        _inside(state, healthy_state_range, strict=True).all(dim=-1)
        & _inside(z, healthy_z_range, strict=True)
        & _inside(angle, healthy_angle_range, strict=True)
    )
    return ~healthy


def _walker2d_core(
    next_obs: Tensor,
    *,
    healthy_z_range: Range = (0.8, 2.0),
    healthy_angle_range: Range = (-1.0, 1.0),
    exclude_current_positions: bool = True,
) -> Tensor:
    # gymnasium: z, angle = qpos[1:3]; both strict; no finiteness or state check.
    off = 0 if exclude_current_positions else 1
    o = _obs(next_obs, "Walker2d-v5", [_WALKER_NQ + _WALKER_NV - 1 + off])
    healthy = _inside(_exact(o[..., off]), healthy_z_range, strict=True) & _inside(
        _exact(o[..., off + 1]), healthy_angle_range, strict=True
    )
    return ~healthy


def _ant_core(
    next_obs: Tensor,
    *,
    healthy_z_range: Range = (0.2, 1.0),
    exclude_current_positions: bool = True,
) -> Tensor:
    # gymnasium: isfinite(concat(qpos, qvel)).all() and min_z <= qpos[2] <= max_z (non-strict).
    # obs = qpos[2:] (or qpos) + qvel [+ clipped cfrc_ext[1:], not part of the check].
    # With x, y excluded their finiteness is not observable, but MuJoCo's own checks keep
    # qpos/qvel finite after every mj_step, so x, y are always finite in a real env.
    n_state = _ANT_NQ + _ANT_NV - (2 if exclude_current_positions else 0)
    o = _obs(next_obs, "Ant-v5", (n_state, n_state + _ANT_CFRC))
    z = _exact(o[..., 0 if exclude_current_positions else 2])
    healthy = torch.isfinite(o[..., :n_state]).all(dim=-1) & _inside(
        z, healthy_z_range, strict=False
    )
    return ~healthy


def _humanoid_widths(exclude_current_positions: bool) -> set[int]:
    """Observation widths for every combination of the ``include_*_in_observation`` flags."""
    base = _HUMANOID_NQ + _HUMANOID_NV - (2 if exclude_current_positions else 0)
    widths = {base}
    for n in _HUMANOID_EXTRAS.values():
        widths |= {w + n for w in widths}
    return widths


def _humanoid_core(
    next_obs: Tensor,
    *,
    healthy_z_range: Range = (1.0, 2.0),
    exclude_current_positions: bool = True,
) -> Tensor:
    # gymnasium: min_z < qpos[2] < max_z (strict); obs starts with qpos[2:] (or qpos).
    o = _obs(next_obs, "Humanoid-v5", _humanoid_widths(exclude_current_positions))
    z = _exact(o[..., 0 if exclude_current_positions else 2])
    return ~_inside(z, healthy_z_range, strict=True)


def _inverted_pendulum_core(next_obs: Tensor) -> Tensor:
    # gymnasium: not isfinite(obs).all() or abs(obs[1]) > 0.2; obs = qpos (2) + qvel (2).
    o = _obs(next_obs, "InvertedPendulum-v5", [4])
    return ~torch.isfinite(o).all(dim=-1) | (_exact(o[..., 1]).abs() > 0.2)


# --------------------------------------------------------------------------- public functions


def never_terminates(obs: Tensor, action: Tensor, next_obs: Tensor) -> Tensor:
    """All False: for tasks whose ``terminated`` is always False (only time-limit truncation)."""
    next_obs = torch.as_tensor(next_obs)
    return torch.zeros(next_obs.shape[:-1], dtype=torch.bool, device=next_obs.device)


def hopper_v5(obs: Tensor, action: Tensor, next_obs: Tensor) -> Tensor:
    """Hopper-v5 with default arguments (11-dim observation).

    Terminated unless ``0.7 < z``, ``-0.2 < angle < 0.2`` and every entry of
    ``next_obs[:, 1:]`` (joint angles and clipped velocities) lies strictly in ``(-100, 100)``.
    """
    return _hopper_core(next_obs)


def walker2d_v5(obs: Tensor, action: Tensor, next_obs: Tensor) -> Tensor:
    """Walker2d-v5 with default arguments (17-dim observation).

    Terminated unless ``0.8 < z < 2.0`` and ``-1 < angle < 1`` (``next_obs[:, 0]``, ``[:, 1]``).
    """
    return _walker2d_core(next_obs)


def ant_v5(obs: Tensor, action: Tensor, next_obs: Tensor) -> Tensor:
    """Ant-v5 with default arguments; 105-dim observation or 27-dim without contact forces.

    Terminated unless the 27 ``qpos[2:]``/``qvel`` entries are finite and
    ``0.2 <= z <= 1.0`` (``z = next_obs[:, 0]``, inclusive bounds).
    """
    return _ant_core(next_obs)


def humanoid_v5(obs: Tensor, action: Tensor, next_obs: Tensor) -> Tensor:
    """Humanoid-v5 with default arguments (348-dim, or narrower with ``include_*=False``).

    Terminated unless ``1.0 < z < 2.0`` (``z = next_obs[:, 0]``).
    """
    return _humanoid_core(next_obs)


def inverted_pendulum_v5(obs: Tensor, action: Tensor, next_obs: Tensor) -> Tensor:
    """InvertedPendulum-v5: terminated if any entry is non-finite or ``|pole angle| > 0.2``."""
    return _inverted_pendulum_core(next_obs)


TERMINATION_FNS: dict[str, TerminationFn] = {
    "HalfCheetah-v5": never_terminates,
    "Swimmer-v5": never_terminates,
    "Reacher-v5": never_terminates,
    "Pusher-v5": never_terminates,
    "HumanoidStandup-v5": never_terminates,
    "Hopper-v5": hopper_v5,
    "Walker2d-v5": walker2d_v5,
    "Ant-v5": ant_v5,
    "Humanoid-v5": humanoid_v5,
    "InvertedPendulum-v5": inverted_pendulum_v5,
}
"""Termination function per gymnasium env id, for the env's default constructor arguments.
Use :func:`termination_fn` to take non-default ``env_kwargs`` into account."""

_NOT_REPRODUCIBLE = {
    "InvertedDoublePendulum-v5": (
        "it terminates when the pole tip's height data.site_xpos[0][2] <= 1, and that site "
        "position is left over from inside the last RK4 step (hidden simulator state), not from "
        "the state the observation describes, whose joint velocities are also clipped"
    ),
}


# --------------------------------------------------------------------------- kwargs handling

# Keyword arguments that never change `terminated`: MujocoEnv rendering options, gymnasium.make
# options, reward weights and reset noise.
_NEUTRAL = frozenset(
    {
        "render_mode",
        "width",
        "height",
        "camera_id",
        "camera_name",
        "default_camera_config",
        "max_geom",
        "visual_options",
        "max_episode_steps",
        "disable_env_checker",
        "order_enforce",
        "autoreset",
        "frame_skip",
        "reset_noise_scale",
        "forward_reward_weight",
        "ctrl_cost_weight",
        "healthy_reward",
    }
)


def _flag(kwargs: Mapping[str, Any], key: str, default: bool, env_id: str) -> bool:
    value = kwargs.get(key, default)
    if isinstance(value, bool) or (isinstance(value, int) and value in (0, 1)):
        return bool(value)
    raise TerminationError(f"{env_id}: {key} must be a bool, got {value!r}")


def _range(kwargs: Mapping[str, Any], key: str, default: Range, env_id: str) -> Range:
    value = kwargs.get(key, default)
    try:
        if isinstance(value, str | bytes):
            raise TypeError
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise TerminationError(
            f"{env_id}: {key} must be a pair of numbers (low, high), got {value!r}"
        ) from None
    return lo, hi


@dataclass(frozen=True)
class _Spec:
    xml_file: str
    extra_neutral: frozenset[str]
    handled: frozenset[str]
    build: Callable[[Mapping[str, Any], str], TerminationFn]


def _bind(core: Callable[..., Tensor], name: str, **params: Any) -> TerminationFn:
    def fn(obs: Tensor, action: Tensor, next_obs: Tensor) -> Tensor:
        return core(next_obs, **params)

    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = f"{name} termination with {params}."
    return fn


def _build_hopper(kw: Mapping[str, Any], env_id: str) -> TerminationFn:
    return _bind(
        _hopper_core,
        "hopper_v5",
        healthy_state_range=_range(kw, "healthy_state_range", (-100.0, 100.0), env_id),
        healthy_z_range=_range(kw, "healthy_z_range", (0.7, math.inf), env_id),
        healthy_angle_range=_range(kw, "healthy_angle_range", (-0.2, 0.2), env_id),
        exclude_current_positions=_flag(
            kw, "exclude_current_positions_from_observation", True, env_id
        ),
    )


def _build_walker2d(kw: Mapping[str, Any], env_id: str) -> TerminationFn:
    return _bind(
        _walker2d_core,
        "walker2d_v5",
        healthy_z_range=_range(kw, "healthy_z_range", (0.8, 2.0), env_id),
        healthy_angle_range=_range(kw, "healthy_angle_range", (-1.0, 1.0), env_id),
        exclude_current_positions=_flag(
            kw, "exclude_current_positions_from_observation", True, env_id
        ),
    )


def _build_ant(kw: Mapping[str, Any], env_id: str) -> TerminationFn:
    _flag(kw, "include_cfrc_ext_in_observation", True, env_id)  # width only; both accepted
    return _bind(
        _ant_core,
        "ant_v5",
        healthy_z_range=_range(kw, "healthy_z_range", (0.2, 1.0), env_id),
        exclude_current_positions=_flag(
            kw, "exclude_current_positions_from_observation", True, env_id
        ),
    )


def _build_humanoid(kw: Mapping[str, Any], env_id: str) -> TerminationFn:
    for key in _HUMANOID_EXTRAS:  # width only; every combination is accepted
        _flag(kw, key, True, env_id)
    return _bind(
        _humanoid_core,
        "humanoid_v5",
        healthy_z_range=_range(kw, "healthy_z_range", (1.0, 2.0), env_id),
        exclude_current_positions=_flag(
            kw, "exclude_current_positions_from_observation", True, env_id
        ),
    )


def _build_inverted_pendulum(kw: Mapping[str, Any], env_id: str) -> TerminationFn:
    return inverted_pendulum_v5


_LOCOMOTION = frozenset(
    {"terminate_when_unhealthy", "healthy_z_range", "exclude_current_positions_from_observation"}
)
_SPECS: dict[str, _Spec] = {
    "Hopper-v5": _Spec(
        "hopper.xml",
        frozenset(),
        _LOCOMOTION | {"healthy_angle_range", "healthy_state_range"},
        _build_hopper,
    ),
    "Walker2d-v5": _Spec(
        "walker2d_v5.xml", frozenset(), _LOCOMOTION | {"healthy_angle_range"}, _build_walker2d
    ),
    "Ant-v5": _Spec(
        "ant.xml",
        frozenset({"contact_cost_weight", "contact_force_range", "main_body"}),
        _LOCOMOTION | {"include_cfrc_ext_in_observation"},
        _build_ant,
    ),
    "Humanoid-v5": _Spec(
        "humanoid.xml",
        frozenset({"contact_cost_weight", "contact_cost_range"}),
        _LOCOMOTION | set(_HUMANOID_EXTRAS),
        _build_humanoid,
    ),
    "InvertedPendulum-v5": _Spec(
        "inverted_pendulum.xml", frozenset(), frozenset(), _build_inverted_pendulum
    ),
}

_HINT = (  # short: a sweep manifest holds the message and its whole traceback in 2,000 chars
    "To treat it as never terminating in imagined rollouts, set "
    "`world_model.assume_never_terminates: true` (--set world_model.assume_never_terminates=true;"
    " Python: allow_never=True)."
)


def _unknown_message(env_id: str) -> str:
    if env_id in _NOT_REPRODUCIBLE:
        return (
            f"no exact termination function for {env_id!r}: {_NOT_REPRODUCIBLE[env_id]}, so "
            f"it cannot be computed exactly from the observation. {_HINT}"
        )
    msg = (
        f"no termination function known for env id {env_id!r} "
        f"(supported: {', '.join(sorted(TERMINATION_FNS))})."
    )
    m = re.fullmatch(r"(.+)-v4", env_id)
    if m and f"{m.group(1)}-v5" in TERMINATION_FNS:
        msg += f" Use the v5 id {m.group(1)}-v5 (spiking_dreamer.envs runs v4 ids as v5)."
    return f"{msg} {_HINT}"


def termination_fn(
    env_id: str, env_kwargs: Mapping[str, Any] | None = None, allow_never: bool = False
) -> TerminationFn:
    """Return the exact termination function for ``env_id`` built with ``env_kwargs``.

    ``env_kwargs`` are the keyword arguments given to ``gymnasium.make(env_id, **env_kwargs)``.
    Those that change termination are honoured: ``terminate_when_unhealthy=False`` gives
    :func:`never_terminates`; custom ``healthy_z_range``, ``healthy_angle_range`` and
    ``healthy_state_range`` are used; ``exclude_current_positions_from_observation=False``
    shifts the observation indices; ``include_*_in_observation`` only change the observation
    width (Ant: 27 or 105, Humanoid: 45 to 348), and every such width is accepted.
    Reward weights, reset noise, ``frame_skip`` and rendering options are ignored.

    Raises :class:`TerminationError` for an unknown or not exactly reproducible env id, a custom
    ``xml_file`` or an unrecognised keyword for a terminating task; with ``allow_never=True``
    these cases return :func:`never_terminates` instead. Malformed values (a range that is not
    a pair of numbers) always raise.
    """
    kwargs = dict(env_kwargs or {})
    spec = _SPECS.get(env_id)
    if spec is None:
        fn = TERMINATION_FNS.get(env_id)
        if fn is not None:
            return fn  # never-terminating tasks: no keyword argument makes them terminate
        if allow_never:
            return never_terminates
        raise TerminationError(_unknown_message(env_id))

    try:
        if "xml_file" in kwargs and kwargs["xml_file"] != spec.xml_file:
            raise _Unsupported(
                f"{env_id} with xml_file={kwargs['xml_file']!r} is not supported: a custom model "
                f"may change the qpos layout the termination condition reads. {_HINT}"
            )
        unknown = sorted(set(kwargs) - _NEUTRAL - spec.extra_neutral - spec.handled - {"xml_file"})
        if unknown:
            raise _Unsupported(
                f"{env_id}: unrecognised env kwargs {unknown}; cannot tell whether they change "
                f"the termination condition. {_HINT}"
            )
    except _Unsupported:
        if allow_never:
            return never_terminates
        raise
    if "terminate_when_unhealthy" in spec.handled and not _flag(
        kwargs, "terminate_when_unhealthy", True, env_id
    ):
        return never_terminates
    return spec.build(kwargs, env_id)
