"""Environment ids: v2/v3/v4 -> v5 mapping, clear errors, MuJoCo's compiler noise."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import gymnasium as gym
import pytest
import torch

from spiking_dreamer.cli import main
from spiking_dreamer.envs import EnvError, make_env, resolve_env_id

from .helpers import TINY_ARGS


def test_v4_ids_map_to_v5_with_a_warning() -> None:
    with pytest.warns(UserWarning, match="HalfCheetah-v5"):
        assert resolve_env_id("HalfCheetah-v4") == "HalfCheetah-v5"


def test_unknown_id_suggests_the_closest() -> None:
    with pytest.raises(EnvError, match=r"unknown environment id 'HalfCheeta-v5'.*HalfCheetah-v5"):
        resolve_env_id("HalfCheeta-v5")


def test_discrete_action_spaces_are_refused() -> None:
    with pytest.raises(EnvError, match="Discrete"):
        make_env("CartPole-v1")


@pytest.mark.mujoco
def test_bad_kwargs_are_reported() -> None:
    with pytest.raises(EnvError, match=r"bad env\.kwargs"):
        make_env("HalfCheetah-v5", {"no_such_argument": 1})


@pytest.mark.mujoco
def test_ant_27_dim_observation() -> None:
    env = make_env("Ant-v5", {"include_cfrc_ext_in_observation": False})
    assert env.observation_space.shape == (27,)
    assert env.action_space.shape == (8,)


# The v2/v3 ids whose default observation and action layout equal v5's (PopSAN's runs used v3).
_SAME_LAYOUT_AS_V5 = [
    f"{task}-{v}" for task in ("HalfCheetah", "Hopper", "Walker2d", "Swimmer") for v in ("v2", "v3")
] + ["InvertedPendulum-v2", "Pusher-v2"]


@pytest.mark.parametrize("env_id", _SAME_LAYOUT_AS_V5)
def test_v2_v3_ids_with_v5_layout_map_to_v5_with_a_warning(env_id: str) -> None:
    new = env_id.rsplit("-", 1)[0] + "-v5"
    with pytest.warns(UserWarning, match=rf"{env_id} is run as {new}.*label results"):
        assert resolve_env_id(env_id) == new


@pytest.mark.mujoco
def test_halfcheetah_v3_makes_a_v5_env() -> None:
    with pytest.warns(UserWarning, match="HalfCheetah-v5"):
        env = make_env("HalfCheetah-v3")
    assert env.spec is not None
    assert env.spec.id == "HalfCheetah-v5"
    assert env.observation_space.shape == (17,)
    assert env.action_space.shape == (6,)
    env.close()


@pytest.mark.parametrize(
    ("env_id", "use"),
    [
        ("Ant-v3", r"Ant-v5 with env\.kwargs \{include_cfrc_ext_in_observation: false\}"),
        ("Ant-v2", r"Ant-v5"),
        ("Humanoid-v3", r"use Humanoid-v5"),
        ("Humanoid-v2", r"use Humanoid-v5"),
        ("HumanoidStandup-v2", r"use HumanoidStandup-v5"),
        ("Reacher-v2", r"use Reacher-v5"),
        ("InvertedDoublePendulum-v2", r"use InvertedDoublePendulum-v5"),
    ],
)
def test_v2_v3_ids_with_another_layout_are_refused_with_what_to_use(env_id: str, use: str) -> None:
    with pytest.raises(EnvError, match=rf"{env_id} cannot be run.*no v5 equivalent.*{use}"):
        make_env(env_id)


def test_refusals_suggest_only_ids_that_run() -> None:
    for env_id in ("Ant-v3", "Humanoid-v3", "HumanoidStandup-v2", "Reacher-v2"):
        with pytest.raises(EnvError) as info:
            resolve_env_id(env_id)
        for suggested in re.findall(r"\b[A-Z]\w+-v\d+\b", str(info.value)):
            if suggested != env_id:
                assert suggested.endswith("-v5"), suggested
                assert resolve_env_id(suggested) == suggested


@pytest.mark.parametrize("typo", ["HalfCheetah-v6", "HalfCheeta-v3", "Walker2D-v3", "Hoper-v2"])
def test_did_you_mean_never_lists_placeholder_ids(typo: str) -> None:
    with pytest.raises(EnvError, match="did you mean") as info:
        resolve_env_id(typo)
    suggestions = str(info.value).split("did you mean ", 1)[1].rstrip("?").split(", ")
    assert suggestions
    for env_id in suggestions:
        # gymnasium registers v2/v3 MuJoCo ids with a function that only raises ImportError
        assert isinstance(gym.registry[env_id].entry_point, str), str(info.value)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # v4 ids are run as v5
            resolve_env_id(env_id)


@pytest.mark.mujoco
def test_cli_trains_a_v3_id_as_v5_and_refuses_ant_v3(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["train", "--no-dreaming", "--total-steps", "60", *TINY_ARGS]
    with pytest.warns(UserWarning, match="HalfCheetah-v3 is run as HalfCheetah-v5"):
        assert main([*argv, "--env", "HalfCheetah-v3", "--run-dir", str(tmp_path / "a")]) == 0
    best = torch.load(tmp_path / "a" / "checkpoints" / "best.pt", weights_only=True)
    assert best["env"]["id"] == "HalfCheetah-v5"
    capsys.readouterr()
    assert main([*argv, "--env", "Ant-v3", "--run-dir", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert "Ant-v3 cannot be run" in err
    assert "Traceback" not in err


# --------------------------------------------------------------------------- MuJoCo's warnings


@pytest.mark.mujoco
def test_make_env_silences_the_settotalmass_deprecation(
    capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import mujoco

    monkeypatch.chdir(tmp_path)
    before = mujoco.get_mju_user_warning()
    env = make_env("HalfCheetah-v5")  # half_cheetah.xml sets settotalmass
    env.close()
    out, err = capfd.readouterr()
    assert "settotalmass" not in out + err
    assert not (tmp_path / "MUJOCO_LOG.TXT").exists()
    assert mujoco.get_mju_user_warning() is before  # the handler is only swapped while loading


@pytest.mark.mujoco
def test_other_mujoco_warnings_still_reach_stderr_or_the_previous_handler(
    capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import mujoco

    from spiking_dreamer import envs

    monkeypatch.chdir(tmp_path)  # MuJoCo's default handler also appends to ./MUJOCO_LOG.TXT
    with envs._without_settotalmass_warning():
        handler = mujoco.get_mju_user_warning()
        handler("compiler attribute 'settotalmass' is deprecated and will be removed")
        handler("something else went wrong")
    err = capfd.readouterr().err
    assert "settotalmass" not in err
    assert "WARNING: something else went wrong" in err
    assert "something else went wrong" in (tmp_path / "MUJOCO_LOG.TXT").read_text()

    seen: list[str] = []
    mujoco.set_mju_user_warning(seen.append)
    try:
        with envs._without_settotalmass_warning():
            mujoco.get_mju_user_warning()("compiler attribute 'settotalmass' is deprecated")
            mujoco.get_mju_user_warning()("another warning")
        assert mujoco.get_mju_user_warning() is not None
    finally:
        mujoco.set_mju_user_warning(None)
    assert seen == ["another warning"]
    assert "another warning" not in capfd.readouterr().err


@pytest.mark.mujoco
def test_python_warnings_are_left_alone() -> None:
    with pytest.warns(UserWarning, match="HalfCheetah-v5"):
        make_env("HalfCheetah-v4").close()


@pytest.mark.parametrize("env_id", ["Ant-v4", "Humanoid-v4", "Reacher-v4"])
def test_v4_ids_with_another_layout_than_v5_are_refused(env_id: str) -> None:
    """Ant-v4 observes 27 values, Ant-v5 105: running it as v5 would change what the actor
    sees without a word."""
    with pytest.raises(EnvError, match="is not run as v5") as info:
        resolve_env_id(env_id)
    if env_id == "Ant-v4":
        assert "include_cfrc_ext_in_observation: false" in str(info.value)
