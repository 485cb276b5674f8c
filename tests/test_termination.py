"""Termination functions reproduce gymnasium v5 `terminated` exactly, checked against real envs."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch

from spiking_dreamer.termination import (
    TERMINATION_FNS,
    TerminationError,
    never_terminates,
    termination_fn,
)

INF = math.inf


def _make(env_id: str, kwargs: dict[str, Any]):
    gym = pytest.importorskip("gymnasium")
    pytest.importorskip("mujoco")
    return gym.make(env_id, **kwargs)


def _rollout(
    env_id: str, kwargs: dict[str, Any], steps: int, seed: int = 0
) -> tuple[dict[str, torch.Tensor], int]:
    """Random-action transitions (obs, action, next_obs, terminated) over several episodes.

    An episode also ends after ``min(100, steps // 3)`` steps (a reset, not a termination), so
    tasks that never terminate still give several episodes.
    """
    max_episode_len = min(100, steps // 3)
    env = _make(env_id, kwargs)
    env.action_space.seed(seed)
    obs, _ = env.reset(seed=seed)
    rows: dict[str, list] = {"obs": [], "action": [], "next_obs": [], "terminated": []}
    episodes, length = 1, 0
    for _ in range(steps):
        action = env.action_space.sample()
        next_obs, _, terminated, truncated, _ = env.step(action)
        for key, value in zip(rows, (obs, action, next_obs, terminated), strict=True):
            rows[key].append(value)
        length += 1
        if terminated or truncated or length >= max_episode_len:
            obs, _ = env.reset()
            episodes, length = episodes + 1, 0
        else:
            obs = next_obs
    env.close()
    batch = {k: torch.as_tensor(np.asarray(v)) for k, v in rows.items()}
    return batch, episodes


ROLLOUTS = [
    ("HalfCheetah-v5", {}, 300),
    ("Swimmer-v5", {}, 150),
    ("Reacher-v5", {}, 150),
    ("Pusher-v5", {}, 150),
    ("Hopper-v5", {}, 400),
    ("Walker2d-v5", {}, 400),
    ("Ant-v5", {}, 600),
    ("Ant-v5", {"include_cfrc_ext_in_observation": False}, 600),
    ("Humanoid-v5", {}, 200),
    ("InvertedPendulum-v5", {}, 300),
    # non-default constructor arguments
    ("Hopper-v5", {"healthy_z_range": (0.5, INF)}, 400),
    ("Hopper-v5", {"healthy_z_range": (0.5, INF), "terminate_when_unhealthy": False}, 200),
    ("Hopper-v5", {"healthy_state_range": (-5.0, 5.0), "healthy_angle_range": (-0.4, 0.4)}, 300),
    ("Hopper-v5", {"exclude_current_positions_from_observation": False}, 300),
    (
        "Walker2d-v5",
        {
            "healthy_z_range": (0.9, 1.5),
            "healthy_angle_range": (-0.5, 0.5),
            "exclude_current_positions_from_observation": False,
        },
        300,
    ),
    ("Walker2d-v5", {"terminate_when_unhealthy": False}, 150),
    (
        "Ant-v5",
        {
            "healthy_z_range": (0.3, 0.9),
            "exclude_current_positions_from_observation": False,
            "include_cfrc_ext_in_observation": False,
        },
        300,
    ),
    ("Ant-v5", {"terminate_when_unhealthy": False, "frame_skip": 3}, 150),
    (
        "Humanoid-v5",
        {
            "healthy_z_range": (1.1, 1.9),
            "exclude_current_positions_from_observation": False,
            "include_cinert_in_observation": False,
            "include_cvel_in_observation": False,
        },
        150,
    ),
    ("Humanoid-v5", {"terminate_when_unhealthy": False}, 60),
]


@pytest.mark.mujoco
@pytest.mark.parametrize(
    ("env_id", "kwargs", "steps"), ROLLOUTS, ids=[f"{e}-{k}" for e, k, _ in ROLLOUTS]
)
def test_matches_real_env_on_random_rollouts(
    env_id: str, kwargs: dict[str, Any], steps: int
) -> None:
    batch, episodes = _rollout(env_id, kwargs, steps)
    fn = termination_fn(env_id, kwargs)
    pred = fn(batch["obs"], batch["action"], batch["next_obs"])
    real = batch["terminated"]
    assert pred.dtype == torch.bool
    assert pred.shape == real.shape == (steps,)
    assert episodes >= 2
    wrong = torch.nonzero(pred != real).flatten().tolist()
    assert not wrong, f"{env_id} {kwargs}: mismatch at steps {wrong[:10]}"
    if fn is never_terminates:
        assert not real.any()
    else:  # both branches are exercised by the real data
        assert real.any()
        assert not real.all()


# --------------------------------------------------------------------------- perturbed states


def _near(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    """A value on, just inside/outside, or around the range (both sides)."""
    lo, hi = bounds
    finite = [b for b in (lo, hi) if math.isfinite(b)]
    cands: list[float] = []
    for b in finite:
        cands += [b, np.nextafter(b, -INF), np.nextafter(b, INF), b - 1e-3, b + 1e-3]
    a = lo if math.isfinite(lo) else hi - 1.0
    z = hi if math.isfinite(hi) else lo + 1.0
    if rng.random() < 0.5:
        return float(rng.choice(cands))
    return float(rng.uniform(a - 0.3 * (z - a) - 0.1, z + 0.3 * (z - a) + 0.1))


def _perturbed_truth(env_id: str, kwargs: dict[str, Any], n: int, seed: int = 1):
    """Perturb real states around the healthy bounds and with NaN/inf entries; the ground truth is
    the `terminated` of the real env's own `step` with the simulation itself switched off."""
    env = _make(env_id, kwargs)
    u = env.unwrapped
    env.action_space.seed(seed)
    env.reset(seed=seed)
    bases = []
    for _ in range(30):  # some generic states
        env.step(env.action_space.sample())
        bases.append((u.data.qpos.copy(), u.data.qvel.copy()))
    u.do_simulation = lambda ctrl, n_frames: None  # step() then only evaluates the state

    exclude = getattr(u, "_exclude_current_positions_from_observation", False)
    n_hidden = {"Ant-v5": 2, "Humanoid-v5": 2}.get(env_id, 1) if exclude else 0
    bounded: list[tuple[int, tuple[float, float]]] = []  # (qpos index, range)
    if env_id in ("Hopper-v5", "Walker2d-v5"):
        bounded = [(1, u._healthy_z_range), (2, u._healthy_angle_range)]
    elif env_id in ("Ant-v5", "Humanoid-v5"):
        bounded = [(2, u._healthy_z_range)]
    elif env_id == "InvertedPendulum-v5":
        bounded = [(1, (-0.2, 0.2))]
    if env_id == "Hopper-v5":  # healthy_state_range covers qpos[2:] and (unclipped) qvel
        bounded += [(i, u._healthy_state_range) for i in range(3, u.model.nq)]

    rng = np.random.default_rng(seed)
    rows: dict[str, list] = {"obs": [], "action": [], "next_obs": [], "terminated": []}
    for _ in range(n):
        qpos, qvel = (x.copy() for x in bases[rng.integers(len(bases))])
        for _ in range(rng.integers(1, 3)):
            kind = rng.random()
            if kind < 0.6:
                i, bounds = bounded[rng.integers(len(bounded))]
                qpos[i] = _near(rng, bounds)
            elif kind < 0.75 and env_id == "Hopper-v5":
                # velocities only within the observation's clip [-10, 10] (see the next test)
                lo, hi = u._healthy_state_range
                within_clip = (max(lo, -10.0), min(hi, 10.0))
                qvel[rng.integers(u.model.nv)] = _near(rng, within_clip)
            elif kind < 0.9:
                qpos[rng.integers(n_hidden, u.model.nq)] = rng.choice([np.nan, INF, -INF])
            else:
                # Hopper clips qvel: inf would read as 10 (see next test), NaN stays NaN
                bad = [np.nan] if env_id == "Hopper-v5" else [np.nan, INF, -INF]
                qvel[rng.integers(u.model.nv)] = rng.choice(bad)
        u.data.qpos[:], u.data.qvel[:] = qpos, qvel
        action = env.action_space.sample()
        with np.errstate(invalid="ignore"):  # NaN positions in the reward terms
            next_obs, _, terminated, _, _ = u.step(action)
        rows["obs"].append(next_obs)  # obs is unused by the functions
        rows["action"].append(action)
        rows["next_obs"].append(next_obs)
        rows["terminated"].append(terminated)
    env.close()
    return {k: torch.as_tensor(np.asarray(v)) for k, v in rows.items()}


PERTURBED = [
    ("Hopper-v5", {}),
    ("Hopper-v5", {"healthy_state_range": (-5.0, 5.0), "healthy_z_range": (0.5, 1.5)}),
    ("Hopper-v5", {"exclude_current_positions_from_observation": False}),
    ("Hopper-v5", {"terminate_when_unhealthy": False}),
    ("Walker2d-v5", {}),
    ("Walker2d-v5", {"healthy_angle_range": (-0.3, 0.5), "healthy_z_range": (0.5, INF)}),
    ("Ant-v5", {}),
    ("Ant-v5", {"include_cfrc_ext_in_observation": False}),
    ("Ant-v5", {"exclude_current_positions_from_observation": False, "healthy_z_range": (0, 2)}),
    ("Humanoid-v5", {}),
    ("Humanoid-v5", {"exclude_current_positions_from_observation": False}),
    ("InvertedPendulum-v5", {}),
]


@pytest.mark.mujoco
@pytest.mark.parametrize(("env_id", "kwargs"), PERTURBED, ids=[f"{e}-{k}" for e, k in PERTURBED])
def test_matches_real_env_on_perturbed_states(env_id: str, kwargs: dict[str, Any]) -> None:
    """Bounds exactly (strict vs non-strict), just inside/outside, far outside, NaN and inf."""
    batch = _perturbed_truth(env_id, kwargs, n=300)
    fn = termination_fn(env_id, kwargs)
    for dtype in (torch.float64, torch.float32):
        pred = fn(batch["obs"].to(dtype), batch["action"], batch["next_obs"].to(dtype))
        if dtype == torch.float64:  # float32 rounding may move values exactly at a bound
            wrong = torch.nonzero(pred != batch["terminated"]).flatten().tolist()
            assert not wrong, f"{env_id} {kwargs}: mismatch at {wrong[:10]}"
        assert pred.shape == batch["terminated"].shape
    if not kwargs and env_id in TERMINATION_FNS:  # the exported default function, too
        pred = TERMINATION_FNS[env_id](batch["obs"], batch["action"], batch["next_obs"])
        assert torch.equal(pred, batch["terminated"]), env_id
    if kwargs.get("terminate_when_unhealthy", True):
        assert batch["terminated"].any()
        assert not batch["terminated"].all()
    else:
        assert not batch["terminated"].any()


@pytest.mark.mujoco
@pytest.mark.parametrize("angle", [0.05, 0.15])
def test_hoppers_state_range_covers_its_torso_angle(angle: float) -> None:
    """gymnasium checks ``healthy_state_range`` on ``state_vector()[2:]``, which starts with
    the torso angle (observation index 1): with the state range (-0.1, 0.1) and the angle range
    (-0.5, 0.5), an angle of 0.15 terminates and 0.05 does not, in the env and here."""
    kwargs = {"healthy_state_range": (-0.1, 0.1), "healthy_angle_range": (-0.5, 0.5)}
    env = _make("Hopper-v5", kwargs)
    u = env.unwrapped
    env.reset(seed=0)
    u.do_simulation = lambda ctrl, n_frames: None
    qpos, qvel = np.zeros(u.model.nq), np.zeros(u.model.nv)
    qpos[1], qpos[2] = 1.25, angle  # z, torso angle
    u.set_state(qpos, qvel)
    obs, _, terminated, _, _ = u.step(np.zeros(3))
    env.close()
    assert terminated == (angle > 0.1)
    o = torch.as_tensor(obs)[None]
    assert termination_fn("Hopper-v5", kwargs)(o, torch.zeros(1, 3), o).item() == terminated


@pytest.mark.mujoco
def test_hopper_velocity_beyond_the_observation_clip_is_invisible() -> None:
    """The one documented Hopper limit: |qvel| >= 100 is unhealthy but observed as 10."""
    env = _make("Hopper-v5", {})
    u = env.unwrapped
    env.reset(seed=0)
    u.do_simulation = lambda ctrl, n_frames: None
    action = np.zeros(3)
    u.data.qvel[4] = 10.0
    obs_10, _, term_10, _, _ = u.step(action)
    u.data.qvel[4] = 150.0
    obs_150, _, term_150, _, _ = u.step(action)
    env.close()
    assert np.array_equal(obs_10, obs_150)  # same observation ...
    assert (term_10, term_150) == (False, True)  # ... different answers: no obs-based fn can tell
    o = torch.as_tensor(obs_10)[None]
    assert not termination_fn("Hopper-v5")(o, torch.zeros(1, 3), o).item()


@pytest.mark.mujoco
def test_inverted_double_pendulum_depends_on_hidden_state() -> None:
    """Why it is unsupported: the tip height used for `terminated` is not the observed state's."""
    mujoco = pytest.importorskip("mujoco")
    env = _make("InvertedDoublePendulum-v5", {})
    u = env.unwrapped
    env.action_space.seed(0)
    env.reset(seed=0)
    scratch = mujoco.MjData(u.model)
    diffs = []
    for _ in range(20):
        env.step(env.action_space.sample())
        scratch.qpos[:], scratch.qvel[:] = u.data.qpos, u.data.qvel
        mujoco.mj_kinematics(u.model, scratch)
        diffs.append(abs(scratch.site_xpos[0][2] - u.data.site_xpos[0][2]))
    env.close()
    assert max(diffs) > 1e-9
    with pytest.raises(TerminationError, match=r"InvertedDoublePendulum-v5.*hidden"):
        termination_fn("InvertedDoublePendulum-v5")
    assert termination_fn("InvertedDoublePendulum-v5", allow_never=True) is never_terminates


# --------------------------------------------------------------------------- errors and kwargs


@pytest.mark.parametrize("env_id", ["Pendulum-v1", "CartPole-v1", "MyRobot-v0"])
def test_unknown_env_raises_with_a_helpful_message(env_id: str) -> None:
    with pytest.raises(TerminationError, match=env_id) as info:
        termination_fn(env_id)
    msg = str(info.value)
    assert "allow_never=True" in msg
    assert "world_model.assume_never_terminates: true" in msg
    assert "Hopper-v5" in msg  # lists what is supported
    fn = termination_fn(env_id, allow_never=True)
    out = fn(torch.zeros(5, 3), torch.zeros(5, 1), torch.randn(5, 3))
    assert out.dtype == torch.bool
    assert out.shape == (5,)
    assert not out.any()


def test_v4_id_points_to_v5() -> None:
    with pytest.raises(TerminationError, match=r"Hopper-v5"):
        termination_fn("Hopper-v4")


def test_termination_error_is_a_value_error() -> None:
    assert issubclass(TerminationError, ValueError)


def test_custom_model_and_unknown_kwargs_are_refused_unless_allow_never() -> None:
    with pytest.raises(TerminationError, match=r"xml_file"):
        termination_fn("Hopper-v5", {"xml_file": "/tmp/my_hopper.xml"})
    with pytest.raises(TerminationError, match=r"no_such_kwarg"):
        termination_fn("Walker2d-v5", {"no_such_kwarg": 1})
    assert termination_fn("Ant-v5", {"xml_file": "x.xml"}, allow_never=True) is never_terminates
    # the default model file is fine, and so are reward / rendering / make options
    fn = termination_fn(
        "Hopper-v5",
        {"xml_file": "hopper.xml", "frame_skip": 2, "ctrl_cost_weight": 0.1, "render_mode": None},
    )
    assert fn is not never_terminates
    # never-terminating tasks accept anything
    assert termination_fn("HalfCheetah-v5", {"xml_file": "x.xml"}) is never_terminates


def test_malformed_values_raise_even_with_allow_never() -> None:
    with pytest.raises(TerminationError, match=r"healthy_z_range"):
        termination_fn("Hopper-v5", {"healthy_z_range": "0.5"}, allow_never=True)
    with pytest.raises(TerminationError, match=r"terminate_when_unhealthy"):
        termination_fn("Ant-v5", {"terminate_when_unhealthy": "no"})


@pytest.mark.parametrize("env_id", ["Hopper-v5", "Walker2d-v5", "Ant-v5", "Humanoid-v5"])
def test_terminate_when_unhealthy_false_never_terminates(env_id: str) -> None:
    assert termination_fn(env_id, {"terminate_when_unhealthy": False}) is never_terminates


def test_custom_ranges_are_used() -> None:
    nxt = torch.zeros(3, 11, dtype=torch.float64)
    nxt[:, 0] = torch.tensor([0.6, 0.45, 2.0])  # z
    default, custom = (
        termination_fn("Hopper-v5"),
        termination_fn(
            "Hopper-v5",
            {"healthy_z_range": [0.5, 1.5]},  # a YAML list works too
        ),
    )
    assert default(nxt, nxt, nxt).tolist() == [True, True, False]
    assert custom(nxt, nxt, nxt).tolist() == [False, True, True]


def test_supported_ids_are_registered_and_idp_is_not_supported() -> None:
    gym = pytest.importorskip("gymnasium")
    assert set(TERMINATION_FNS) <= set(gym.registry)
    assert "InvertedDoublePendulum-v5" not in TERMINATION_FNS


# --------------------------------------------------------------------------- shapes


WIDTHS = [
    ("HalfCheetah-v5", {}, 17),
    ("Swimmer-v5", {}, 8),
    ("Reacher-v5", {}, 10),
    ("Pusher-v5", {}, 23),
    ("HumanoidStandup-v5", {}, 348),
    ("Hopper-v5", {}, 11),
    ("Hopper-v5", {"exclude_current_positions_from_observation": False}, 12),
    ("Walker2d-v5", {}, 17),
    ("Ant-v5", {}, 105),
    ("Ant-v5", {}, 27),
    ("Ant-v5", {"include_cfrc_ext_in_observation": False}, 27),
    ("Humanoid-v5", {}, 348),
    ("Humanoid-v5", {"include_cinert_in_observation": False}, 218),
    ("InvertedPendulum-v5", {}, 4),
]


@pytest.mark.parametrize(("env_id", "kwargs", "width"), WIDTHS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_batched_shapes_and_dtypes(
    env_id: str, kwargs: dict[str, Any], width: int, dtype: torch.dtype
) -> None:
    fn = termination_fn(env_id, kwargs)
    g = torch.Generator().manual_seed(0)
    nxt = torch.randn(64, width, generator=g).to(dtype)
    nxt[:, :3] = nxt[:, :3] * 0.3 + 1.0  # z-like entries around the healthy ranges
    out = fn(torch.zeros_like(nxt), torch.zeros(64, 2, dtype=dtype), nxt)
    assert out.shape == (64,)
    assert out.dtype == torch.bool
    assert torch.equal(out, fn(nxt, None, nxt.double()))  # same answer as float64
    out3 = fn(None, None, nxt.reshape(4, 16, width))  # extra leading batch dims
    assert torch.equal(out3, out.reshape(4, 16))
    if fn is TERMINATION_FNS.get(env_id):
        assert torch.equal(out, TERMINATION_FNS[env_id](nxt, None, nxt))


@pytest.mark.parametrize(
    ("env_id", "kwargs", "width"),
    [
        ("Hopper-v5", {}, 12),
        ("Walker2d-v5", {}, 11),
        ("Ant-v5", {"include_cfrc_ext_in_observation": False}, 106),
        ("Humanoid-v5", {}, 47),
        ("InvertedPendulum-v5", {}, 9),
    ],
)
def test_wrong_width_is_reported(env_id: str, kwargs: dict[str, Any], width: int) -> None:
    with pytest.raises(ValueError, match=rf"{env_id}.*shape"):
        termination_fn(env_id, kwargs)(None, None, torch.zeros(2, width))


def test_float32_values_are_compared_exactly_like_gymnasium() -> None:
    """float32(0.2) is slightly above 0.2 and float32(0.3) slightly above 0.3: gymnasium's float64
    comparison against the true thresholds must decide, not the thresholds rounded to float32."""
    ip = torch.tensor([[0.0, 0.2, 0.0, 0.0]], dtype=torch.float32)
    assert termination_fn("InvertedPendulum-v5")(ip, None, ip).tolist() == [True]
    hop = torch.zeros(1, 11, dtype=torch.float32)
    hop[0, 0] = 0.3
    fn = termination_fn("Hopper-v5", {"healthy_z_range": (0.3, INF)})
    assert fn(hop, None, hop).tolist() == [False]


@pytest.mark.parametrize(
    ("env_id", "kwargs"),
    [
        ("Pendulum-v1", {}),
        ("InvertedDoublePendulum-v5", {}),
        ("Hopper-v5", {"xml_file": "/tmp/my_hopper.xml"}),
        ("Hopper-v5", {"no_such_kwarg": 1}),
    ],
)
def test_refusals_lead_with_the_config_key(env_id: str, kwargs: dict[str, Any]) -> None:
    with pytest.raises(TerminationError) as info:
        termination_fn(env_id, kwargs)
    msg = str(info.value)
    key = msg.find("world_model.assume_never_terminates: true")
    assert key != -1
    assert "--set world_model.assume_never_terminates=true" in msg
    api = msg.find("allow_never=True")
    assert api == -1 or key < api, msg
