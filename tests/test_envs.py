"""Environment ids: v4 -> v5 mapping and clear errors."""

from __future__ import annotations

import pytest

from spiking_dreamer.envs import EnvError, make_env, resolve_env_id


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
