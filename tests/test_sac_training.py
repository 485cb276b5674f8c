"""SAC inside training runs: the config rules (the other agent's keys, exploration by sampling),
the shipped SAC configs, exact resume and fork of tiny SAC runs in every schedule, the actor
checkpoint and its export (the mean path), bench's TD3 counterpart, and forks of runs saved
before the agent choice existed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from spiking_dreamer.agent import SAC, PopSpikingGaussianActor
from spiking_dreamer.bench import loop_arms, td3_counterpart
from spiking_dreamer.config import ConfigError
from spiking_dreamer.config_loading import config_from_dict, load_config
from spiking_dreamer.training.checkpoint import load_actor, load_state_file, save_state_file
from spiking_dreamer.training.trainer import Trainer

from .helpers import (
    ROOT,
    TINY,
    as_sac,
    assert_same,
    final_state,
    records,
    stopped_and_resumed,
    without_best,
)
from .test_value_gradient_training import VG

SAC_TINY = [*as_sac(TINY), "train.total_steps=300", "train.checkpoint_every=100"]
REGIMES = {
    "real_only_per_env_step": [
        *SAC_TINY,
        "world_model.use=none",
        "sac.schedule=per_env_step",
        "train.updates_per_step=3",
    ],
    "dreams": SAC_TINY,  # the seed's dreaming: dream actions sampled from the policy
    "value_gradient": as_sac([s for s in VG if s != "td3.policy_delay=1"]),
}


def _cfg(regime: str, *extra: str):
    return load_config(ROOT / "configs/halfcheetah.yaml", [*REGIMES[regime], *extra])


# --------------------------------------------------------------------------- config rules


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {"agent": {"kind": "sac"}, "td3": {"batch_size": 8}},
            r"td3\.batch_size: .*agent\.kind is sac",
        ),
        ({"sac": {"alpha": 0.1}}, r"sac\.alpha: .*configures SAC and agent\.kind is td3"),
        (
            {"agent": {"kind": "sac"}, "dreaming": {"exploration_noise": 0.3}},
            r"dreaming\.exploration_noise: .*samples of the stochastic policy",
        ),
        (
            {
                "agent": {"kind": "sac"},
                "world_model": {"use": "value_gradient"},
                "value_gradient": {"action_noise": 0.1},
            },
            r"value_gradient\.action_noise: .*samples the stochastic policy",
        ),
        (
            {
                "agent": {"kind": "sac"},
                "world_model": {"use": "value_gradient"},
                "sac": {"schedule": "per_env_step"},
            },
            r"ignore sac\.schedule",
        ),
        ({"sac": {"log_std_head": "shared", "log_std_hidden_sizes": [8]}}, r"log_std_hidden_sizes"),
        ({"agent": {"kind": "sac"}, "sac": {"batched_targets": False}}, r"per_env_step"),
        ({"agent": {"kind": "ppo"}}, r"agent\.kind"),
    ],
)
def test_settings_that_cannot_apply_are_refused(data: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        config_from_dict(data)


def test_sac_explores_by_sampling_and_stores_no_gaussian_noise() -> None:
    cfg = config_from_dict({"agent": {"kind": "sac"}, "world_model": {"use": "value_gradient"}})
    assert cfg.dreaming.exploration_noise == 0.0
    assert cfg.value_gradient.exploration_noise == 0.0
    assert config_from_dict(cfg.to_dict()) == cfg  # the stored form loads as itself
    assert cfg.agent_settings is cfg.sac
    dreams = config_from_dict({"agent": {"kind": "sac"}})  # value_gradient.* stay at defaults
    assert dreams.value_gradient.exploration_noise == 0.1
    assert dreams.dreaming.exploration_noise == 0.0
    td3 = config_from_dict({})
    assert td3.dreaming.exploration_noise == 0.1
    assert td3.agent_settings is td3.td3


@pytest.mark.parametrize(
    ("td3", "sac"),
    [
        ("halfcheetah", "halfcheetah_sac"),
        ("halfcheetah_mbpo", "halfcheetah_mbpo_sac"),
        ("ant_mbpo", "ant_mbpo_sac"),
        ("halfcheetah_value_gradient", "halfcheetah_value_gradient_sac"),
        ("ant_value_gradient", "ant_value_gradient_sac"),
    ],
)
def test_the_sac_configs_are_their_td3_configs_with_sac(td3: str, sac: str) -> None:
    a = load_config(ROOT / "configs" / f"{td3}.yaml").to_dict()
    b = load_config(ROOT / "configs" / f"{sac}.yaml").to_dict()
    assert b["agent"]["kind"] == "sac"
    for section in a:
        if section in ("agent", "td3", "sac"):
            continue
        for key, value in a[section].items():
            if key == "exploration_noise":  # SAC samples its policy instead
                assert b[section][key] in (value, 0.0)
                continue
            assert b[section][key] == value, f"{section}.{key}"
    schedule = "per_env_step" if a["td3"]["schedule"] == "per_env_step" else "sac"
    assert b["sac"]["schedule"] == schedule
    for key in ("actor_updates_per_step", "batched_targets"):
        assert b["sac"][key] == a["td3"][key]


def test_bench_counts_the_arms_it_times() -> None:
    sac = load_config(ROOT / "configs/halfcheetah_mbpo_sac.yaml")
    td3 = load_config(ROOT / "configs/halfcheetah_mbpo.yaml")
    assert loop_arms(sac) == ("mlp", "baseline", "dreaming", "td3")
    assert loop_arms(td3) == ("mlp", "baseline", "dreaming")


def test_bench_times_td3_at_sacs_batch_size_and_schedule() -> None:
    cfg = load_config(ROOT / "configs/halfcheetah_mbpo_sac.yaml")
    td3 = td3_counterpart(cfg)
    assert td3.agent.kind == "td3"
    assert (td3.td3.batch_size, td3.td3.schedule, td3.td3.batched_targets) == (
        100,
        "per_env_step",
        False,
    )
    assert td3.dreaming.exploration_noise == 0.1
    assert td3.updates_per_step(True) == cfg.updates_per_step(True)
    for section in ("world_model", "train", "env", "actor", "critic"):
        assert getattr(td3, section) == getattr(cfg, section)


# --------------------------------------------------------------------------- training runs


@pytest.mark.mujoco
@pytest.mark.parametrize("regime", list(REGIMES))
def test_a_sac_run_resumes_and_forks_exactly(tmp_path: Path, regime: str) -> None:
    cfg = _cfg(regime)
    straight = Trainer(cfg, tmp_path / "straight")
    assert isinstance(straight.agent, SAC)
    assert isinstance(straight.actor, PopSpikingGaussianActor)
    straight.run()
    stopped_and_resumed(cfg, tmp_path / "stopped", 150)  # 50-step episodes: an episode end
    Trainer.fork(tmp_path / "straight", tmp_path / "fork", [], step=200).run()  # its .prev
    a = final_state(tmp_path / "straight")
    keys = ["counters", "actor", "critic", "critic_target", "actor_optimizer", "critic_optimizer"]
    keys += ["log_alpha", "alpha_optimizer", "entropy", "buffer", "dreaming", "rng"]
    assert "actor_target" not in a  # SAC has no target actor
    assert "policy_noise" in a["rng"]
    for other in ("stopped", "fork"):
        b = final_state(tmp_path / other)
        same = without_best if other == "fork" else (lambda part: part)  # best: afresh
        for key in keys:
            assert_same(same(a[key]), same(b[key]), f"{other}: {key}")
    counters = a["num_actor_updates"], a["num_target_updates"], a["counters"]["num_updates"]
    if regime == "real_only_per_env_step":  # G = 3 critic steps, one actor and target step
        steps = cfg.train.total_steps - cfg.train.update_after + 1
        assert counters == (steps, steps, 3 * steps)
    rows = records(tmp_path / "straight" / "metrics.jsonl")
    assert any("train/alpha" in r and "train/entropy" in r for r in rows)
    if regime == "dreams":
        assert any(r.get("dream/accepted", 0) > 0 for r in rows)
    if regime == "value_gradient":
        assert any("train/vg_objective" in r for r in rows)
        assert a["dreaming"]["value_gradient"]["round"] > 0


@pytest.mark.mujoco
def test_the_actor_checkpoint_is_the_stochastic_actor_and_exports_its_mean_path(
    tmp_path: Path,
) -> None:
    from spiking_dreamer.export import energy_report, export_safetensors

    cfg = _cfg("real_only_per_env_step", "train.total_steps=100")
    trainer = Trainer(cfg, tmp_path / "run")
    trainer.run()
    actor, data = load_actor(tmp_path / "run" / "checkpoints" / "last.pt")
    assert isinstance(actor, PopSpikingGaussianActor)
    assert data["config"]["agent"]["kind"] == "sac"
    obs = torch.randn(8, actor.obs_dim)
    with torch.no_grad():
        torch.testing.assert_close(actor(obs), trainer.actor.eval()(obs))
    report = energy_report(actor, obs)  # the mean path's populations only
    assert [p["name"] for p in report["populations"]] == ["encoder", "hidden-1", "output"]
    pytest.importorskip("safetensors")
    info = export_safetensors(tmp_path / "run" / "checkpoints" / "last.pt", tmp_path / "a.st")
    assert any(t.startswith("log_std_net.") for t in info["tensors"])
    nir = pytest.importorskip("nir")
    from spiking_dreamer.export import export_nir

    out = export_nir(tmp_path / "run" / "checkpoints" / "last.pt", tmp_path / "actor.nir")
    graph = nir.read(out["path"])
    assert sorted(graph.nodes) == ["fc1", "fc2", "input", "lif1", "lif2", "output"]
    assert graph.nodes["fc2"].weight.shape[0] == actor.act_dim * actor.cfg.decoder_pop_dim


@pytest.mark.mujoco
def test_a_run_saved_before_the_agent_choice_forks_unchanged(tmp_path: Path) -> None:
    """A stored config without the ``agent`` and ``sac`` sections (older runs) loads with their
    defaults, and a fork without overrides changes nothing."""
    cfg = load_config(ROOT / "configs/halfcheetah.yaml", [*TINY, "train.total_steps=100"])
    Trainer(cfg, tmp_path / "parent").run()
    path = tmp_path / "parent" / "checkpoints" / "state.pt"
    state, _, _ = load_state_file(path)
    del state["config"]["agent"], state["config"]["sac"]
    save_state_file(state, path)
    Trainer.fork(tmp_path / "parent", tmp_path / "child", ["train.total_steps=150"])
    fork = json.loads((tmp_path / "child" / "fork.json").read_text())
    assert fork["changed"] == ["train.total_steps"]
