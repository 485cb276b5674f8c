"""What a run is checked for before anything is created or trained.

A value can pass the config's own checks and still fail once the run has started: an
``env.kwargs`` value the env refuses only when it steps, a batch or buffer too large for the
machine's memory, a run directory that cannot be written.
:func:`~spiking_dreamer.training.run_dir.check_new_run` checks them all for a new run, before its
directory exists, with :func:`check_memory`, which alone serves forks, resumes and the
benchmark.

The memory figure is an estimate (the stored buffers, and the batches and activations one
update keeps at once): it is there to refuse sizes that cannot fit, not to predict a run's peak.
"""

from __future__ import annotations

import itertools
import os

import torch

from spiking_dreamer.config import Config, ConfigError, LogConfig
from spiking_dreamer.errors import import_extra

FLOAT = 4
"""Bytes per stored value (float32)."""


def check_wandb(log: LogConfig) -> None:
    """With ``log.wandb`` logging online, W&B must have an API key (``wandb login`` or
    ``WANDB_API_KEY``): else ``wandb.init`` fails once the run directory exists
    (:class:`ConfigError`; the package missing: :class:`MissingExtraError`)."""
    if not log.wandb:
        return
    wandb = import_extra("wandb", "--wandb (log.wandb)", "wandb")
    offline = os.environ.get("WANDB_MODE", "").lower() in ("offline", "disabled", "dryrun")
    if log.wandb_mode == "online" and not offline and not wandb.login(prompt=False):
        raise ConfigError(
            "--wandb (log.wandb): W&B has no API key here; run `wandb login` or set "
            "WANDB_API_KEY, or log offline with --set log.wandb_mode=offline"
        )


def check_device(name: str) -> torch.device:
    """The device of ``train.device`` (``auto``: CUDA when available); a CUDA device where
    CUDA is not available is a :class:`ConfigError`."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"train.device: {name!r} requested but CUDA is not available")
    return torch.device(name)


def available_memory(device: torch.device) -> int | None:
    """Bytes of memory free for a run on ``device`` (host: ``MemAvailable``), or None where
    it cannot be read."""
    if device.type == "cuda":
        if not torch.cuda.is_available():
            return None
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _actor_floats(cfg: Config, obs_dim: int, act_dim: int) -> int:
    """Activations of one actor forward per batch row, as kept for its backward."""
    a = cfg.actor
    if a.kind == "mlp":
        return 2 * sum(a.hidden_sizes) + act_dim
    encoder = obs_dim * a.encoder_pop_dim
    return a.spike_ts * (2 * encoder + 4 * sum(a.hidden_sizes) + 4 * act_dim * a.decoder_pop_dim)


def _model_floats(cfg: Config, obs_dim: int, act_dim: int) -> int:
    """Activations of one world-model member's forward per row, as kept for its backward."""
    wm = cfg.world_model
    inputs = obs_dim + act_dim
    if getattr(wm, "kind", "spiking") == "mlp":
        return inputs + 3 * sum(getattr(wm, "mlp_hidden_sizes", (200,) * 4)) + 2 * (obs_dim + 1)
    per_step = inputs * wm.pop_dim + 4 * wm.hidden_size * wm.num_blocks
    return wm.spike_ts * per_step + 2 * (obs_dim + 1)


def _layers(sizes: list[int]) -> int:
    """Weights and biases of the linear layers between consecutive ``sizes``."""
    return sum(a * b + b for a, b in itertools.pairwise(sizes))


def _parameters(cfg: Config, obs_dim: int, act_dim: int) -> dict[str, int]:
    """Parameters of the actor, the twin critic and the world model ensemble, by the key that
    sizes each (the log-std network of SAC and the neurons' own constants left out)."""
    a = cfg.actor
    if a.kind == "mlp":
        actor = _layers([obs_dim, *a.hidden_sizes, act_dim])
    else:
        sizes = [obs_dim * a.encoder_pop_dim, *a.hidden_sizes, act_dim * a.decoder_pop_dim]
        actor = _layers(sizes) + 2 * obs_dim * a.encoder_pop_dim + act_dim * (a.decoder_pop_dim + 1)
    out = {
        "actor.hidden_sizes": actor,
        "critic.hidden_sizes": 2 * _layers([obs_dim + act_dim, *cfg.critic.hidden_sizes, 1]),
    }
    if cfg.uses_model:
        wm = cfg.world_model
        heads = 2 if wm.head == "gaussian" else 1  # mean (and log-variance)
        inputs, outputs = obs_dim + act_dim, heads * (obs_dim + 1)
        if wm.kind == "mlp":
            out["world_model.mlp_hidden_sizes"] = wm.ensemble_size * _layers(
                [inputs, *wm.mlp_hidden_sizes, outputs]
            )
        else:
            h = wm.hidden_size
            blocks = _layers([inputs * wm.pop_dim, h]) + (wm.num_blocks - 1) * _layers([h, h])
            read = 2 * h + (h * (wm.num_blocks - 1) if wm.readout == "all_voltages" else 0)
            readout = _layers([read, outputs])
            out["world_model.hidden_size"] = wm.ensemble_size * (blocks + readout)
    return out


def memory_estimate(cfg: Config, obs_dim: int, act_dim: int) -> dict[str, int]:
    """Bytes a run of ``cfg`` needs, by the config key that sets each part: the replay buffer
    (``train.replay_size``), the dream buffer (``dreaming.buffer_size``), one env step's agent
    batches with an update's activations (``td3.batch_size`` or ``sac.batch_size``), a
    world-model training batch (``world_model.batch_size``), a dream phase's model forward
    (``dreaming.rollout_batch``), a value-gradient rollout (``value_gradient.batch_size``) and
    its start-state pool (``value_gradient.distribution_starts``), and the networks' parameters
    with their gradients, two Adam moments and (actor, critic) target copies
    (``actor.hidden_sizes``, ``critic.hidden_sizes``, ``world_model.hidden_size`` or
    ``world_model.mlp_hidden_sizes``)."""
    row = 2 * obs_dim + act_dim + 2  # obs, next obs, action, reward, done
    capacity = min(cfg.train.replay_size, cfg.train.total_steps)
    parts = {"train.replay_size": capacity * row * FLOAT}
    for key, n in _parameters(cfg, obs_dim, act_dim).items():
        parts[key] = (4 if key.startswith("world_model.") else 5) * n * FLOAT
    g = max(cfg.train.updates_per_step, 1)
    if cfg.uses_model:
        g = max(g, cfg.dreaming.updates_per_step)
    actor = _actor_floats(cfg, obs_dim, act_dim)
    critic = 2 * 3 * (obs_dim + act_dim + sum(cfg.critic.hidden_sizes))
    update = 2 * actor + 3 * critic
    agent = cfg.agent_settings  # td3.* or sac.*
    batched = agent.schedule == "per_env_step" and agent.batched_targets
    batch = agent.batch_size
    parts[f"{cfg.agent.kind}.batch_size"] = (
        batch * (g * row + (g if batched else 1) * update) * FLOAT
    )
    if cfg.uses_model:
        d, wm = cfg.dreaming, cfg.world_model
        members = wm.ensemble_size
        model = _model_floats(cfg, obs_dim, act_dim)
        parts["dreaming.buffer_size"] = d.buffer_size * (row + 3) * FLOAT
        parts["world_model.batch_size"] = wm.batch_size * members * 2 * model * FLOAT
        rows = min(d.predict_chunk or d.rollout_batch, d.rollout_batch)
        stored = d.rollout_batch * max(d.horizon, *(d.horizon_schedule[2:] or (1,))) * row
        parts["dreaming.rollout_batch"] = (rows * members * (model + actor) + stored) * FLOAT
        vg = cfg.value_gradient
        if wm.use == "value_gradient":
            per = members * model + 2 * actor + 3 * critic
            parts["value_gradient.batch_size"] = vg.batch_size * vg.horizon * per * FLOAT
            pool = vg.distribution_starts * vg.distribution_horizon * vg.pool_rounds
            parts["value_gradient.distribution_starts"] = pool * (obs_dim + 2) * FLOAT
    return parts


def _gib(n: float) -> str:
    return f"{n / 2**30:.2f} GiB"


def check_memory(cfg: Config, obs_dim: int, act_dim: int) -> None:
    """Refuse (:class:`ConfigError`, naming the largest part's key) a config whose buffers and
    batches cannot fit in the memory free on its device."""
    device = check_device(cfg.train.device)
    free = available_memory(device)
    if free is None:
        return
    parts = memory_estimate(cfg, obs_dim, act_dim)
    need = sum(parts.values())
    if need <= free:
        return
    biggest = sorted(parts.items(), key=lambda kv: -kv[1])
    key = biggest[0][0]
    section, name = key.split(".")
    value = getattr(getattr(cfg, section), name)
    listed = ", ".join(f"{k} {_gib(v)}" for k, v in biggest[:3])
    raise ConfigError(
        f"{key}={value}: this run needs about {_gib(need)} of memory ({listed}), but only "
        f"{_gib(free)} is free on {device}; lower {key}"
    )
