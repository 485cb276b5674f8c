"""What each config key may do is declared once, next to the key; the lists the CLI, forks,
resumes, sweeps and bench use are derived from it and equal the lists written out before."""

from __future__ import annotations

from spiking_dreamer.bench import BENCH_KEYS
from spiking_dreamer.config import FORK_KEYS, KEY_RULES, RUN_SETTINGS, Config
from spiking_dreamer.config_loading import flatten_keys
from spiking_dreamer.sweep.runs import _IGNORED_KEYS

LOG = [f"log.{k}" for k in Config().log.__dataclass_fields__]

OLD_FORK_KEYS = {
    *("train.total_steps", "train.eval_every", "train.checkpoint_every"),
    *("train.updates_per_step", "train.compile", "train.threads"),
    *(f"td3.{k}" for k in ("batch_size", "gamma", "tau", "policy_delay", "exploration_noise")),
    *("td3.target_noise", "td3.noise_clip", "td3.firing_rate_penalty"),
    *(f"world_model.{k}" for k in ("batch_size", "grad_clip", "train_every", "train_steps")),
    *("world_model.holdout_every", "world_model.max_holdout", "world_model.patience"),
    *(
        f"dreaming.{k}"
        for k in [
            "start_step",
            "every",
            "rollout_batch",
            "horizon",
            "horizon_schedule",
            "threshold",
            "threshold_decay",
            "adaptive_threshold",
            "target_acceptance",
            "adapt_rate",
            "min_accept_quantile",
            "calibrate_threshold",
            "uncertainty",
            "uncertainty_members",
            "member",
            "penalty",
            "exploration_noise",
            "real_ratio",
            "updates_per_step",
            "recent_fraction",
            "recent_window",
        ]
    ),
    *LOG,
}
"""``FORK_KEYS`` as ``training/trainer.py`` wrote it out before the keys declared it."""
NEW_FORK_KEYS = {
    *("td3.schedule", "td3.actor_updates_per_step", "td3.batched_targets", "td3.target_tau_per"),
    *(k for k in KEY_RULES if k.startswith("value_gradient.")),
    "dreaming.predict_chunk",
    *(f"sac.{k}" for k in ("batch_size", "gamma", "tau", "target_entropy", "log_std_min")),
    *(f"sac.{k}" for k in ("log_std_max", "firing_rate_penalty", "schedule")),
    *(f"sac.{k}" for k in ("actor_updates_per_step", "batched_targets", "target_tau_per")),
    *("world_model.reward_weight", "world_model.keep_best"),
}


def test_every_key_has_a_rule() -> None:
    assert set(KEY_RULES) == set(flatten_keys(Config().to_dict()))


def test_the_fork_keys_are_the_old_list_plus_the_new_settings() -> None:
    assert set(FORK_KEYS) == OLD_FORK_KEYS | NEW_FORK_KEYS
    assert "world_model.use" not in FORK_KEYS  # it shapes the saved state


def test_run_settings_are_logging_threads_compile_the_run_length_and_the_predict_chunk() -> None:
    assert set(RUN_SETTINGS) == {
        *LOG,
        *("train.threads", "train.compile", "train.total_steps", "dreaming.predict_chunk"),
    }


def test_bench_keys_are_the_old_table() -> None:
    assert BENCH_KEYS == {
        "train.threads": "--threads",
        "env.id": "--env",
        "train.device": "--device",
        "train.compile": "--compile (it times both)",
        "train.start_steps": "--warmup",
        "train.update_after": "--warmup",
        "dreaming.start_step": "--warmup",
        "train.eval_every": "nothing (no evaluation while timing)",
        "actor.kind": "nothing (it times both actors)",
        "world_model.use": "nothing (it times both arms)",
        "value_gradient.start_step": "--warmup",
    }


def test_a_sweep_ignores_run_settings_and_the_device_only() -> None:
    assert set(_IGNORED_KEYS) == {
        *LOG,
        *("train.threads", "train.compile", "train.device", "dreaming.predict_chunk"),
    }
