"""Typed, frozen experiment configuration: the schema.

The dataclasses below are the config's sections; every key is declared with its default, its
type and, through :func:`setting`, what it may do besides configuring a new run
(:class:`KeyRule`, collected in :data:`KEY_RULES`, :data:`RUN_SETTINGS` and :data:`FORK_KEYS`).
Value constraints are checked in each section's ``__post_init__``.

Loading lives in :mod:`spiking_dreamer.config_loading` (YAML files with their ``base:`` chain,
``--set`` overrides, the keys of older configs); the key and type checks and coercion in
:mod:`spiking_dreamer.config_types` (an unknown key, a value of the wrong type or an impossible
value raises :class:`ConfigError` naming the key, its source and, for unknown keys, the
closest valid key). Imports go one way: ``config_loading`` -> ``config`` -> ``config_types``.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from spiking_dreamer.config_types import build, deep_merge, plain
from spiking_dreamer.errors import ConfigError

__all__ = [
    "FORK_KEYS",
    "KEY_RULES",
    "MAX_EVAL_EPISODES",
    "MAX_SEED",
    "MIN_REPLAY_SIZE",
    "RUN_SETTINGS",
    "ActorConfig",
    "AgentConfig",
    "Config",
    "ConfigError",
    "CriticConfig",
    "DreamingConfig",
    "EnvConfig",
    "KeyRule",
    "LogConfig",
    "SACConfig",
    "TD3Config",
    "TrainConfig",
    "ValueGradientConfig",
    "WorldModelConfig",
    "device_problem",
    "setting",
]


def _check(cond: bool, key: str, msg: str) -> None:
    if not cond:
        raise ConfigError(f"{key}: {msg}")


MAX_SEED = 2**32 - 1
"""The largest seed: NumPy's global generator takes seeds in [0, 2**32 - 1]."""

MAX_THREADS = 1024
"""The most torch threads a run (or a bench) may ask for."""
MIN_REPLAY_SIZE = 1_000
"""The smallest ``train.replay_size`` (a MuJoCo episode is up to 1,000 steps)."""
MAX_EVAL_EPISODES = 1_000
"""The most ``train.eval_episodes`` (a run keeps one env per evaluation episode)."""


def device_problem(device: str) -> str | None:
    """Why ``device`` is not a device name (``auto``, ``cpu``, ``cuda`` or ``cuda:N``), or None."""
    ok = device in ("auto", "cpu", "cuda") or (device.startswith("cuda:") and device[5:].isdigit())
    return None if ok else f"must be auto, cpu, cuda or cuda:N, got {device!r}"


def setting(
    default: Any = dataclasses.MISSING,
    *,
    fork: bool = False,
    resume: bool = False,
    bench: str | None = None,
    experiment: bool = True,
) -> Any:
    """A config field with what the key may do, declared next to it (see :class:`KeyRule`)."""
    rule = KeyRule(fork=fork, resume=resume, bench=bench, experiment=experiment)
    if isinstance(default, list | dict):
        return field(default_factory=lambda: type(default)(default), metadata={"rule": rule})
    return field(default=default, metadata={"rule": rule})


@dataclass(frozen=True)
class KeyRule:
    """What one config key may do besides configuring a new run.

    Attributes:
        fork: may change when a run is forked (it shapes no saved tensor).
        resume: may change when a run is resumed (how a run executes and logs, and its
            length; a ``train.compile`` change alters floating-point rounding, so such a resume
            equals an uninterrupted run within float tolerance only).
        bench: the ``spiking-dreamer bench`` flag that sets the key (``--set`` of it is refused).
        experiment: part of what defines an experiment (a sweep refuses a run directory whose
            stored value differs); ``False`` for run settings and the device.
    """

    fork: bool = False
    resume: bool = False
    bench: str | None = None
    experiment: bool = True


@dataclass(frozen=True)
class EnvConfig:
    id: str = setting("HalfCheetah-v5", bench="--env")
    """Gymnasium environment id (v5 MuJoCo ids; v2-v4 ids with v5's layout are run as v5)."""
    kwargs: dict[str, Any] = field(default_factory=dict)
    """Extra keyword arguments for ``gymnasium.make``."""


@dataclass(frozen=True)
class ActorConfig:
    """PopSAN actor (Tang et al., CoRL 2020)."""

    kind: Literal["popsan", "mlp"] = setting("popsan", bench="nothing (it times both actors)")
    """``mlp``: the ANN reference actor (same normaliser, hidden sizes and loop)."""
    encoder_pop_dim: int = 10
    decoder_pop_dim: int = 10
    hidden_sizes: tuple[int, ...] = (256, 256)
    mean_range: tuple[float, float] = (-3.0, 3.0)
    encoder_std: float = math.sqrt(0.15)
    encoding: Literal["deterministic", "bernoulli"] = "deterministic"
    spike_ts: int = 5
    c_decay: float = 0.5
    v_decay: float = 0.75
    v_threshold: float = 0.5
    surrogate: Literal["rect", "superspike", "atan"] = "rect"
    surrogate_scale: float = 0.5
    obs_clip: float = 3.0

    def __post_init__(self) -> None:
        for k in ("encoder_pop_dim", "decoder_pop_dim"):
            _check(getattr(self, k) >= 2, f"actor.{k}", "must be >= 2")
        _check(len(self.hidden_sizes) >= 1, "actor.hidden_sizes", "needs at least one layer")
        _check(all(h > 0 for h in self.hidden_sizes), "actor.hidden_sizes", "sizes must be > 0")
        _check(self.mean_range[0] < self.mean_range[1], "actor.mean_range", "needs low < high")
        _check(self.encoder_std > 0, "actor.encoder_std", "must be > 0")
        _check(self.spike_ts >= 1, "actor.spike_ts", "must be >= 1")
        _check(0 <= self.c_decay <= 1, "actor.c_decay", "must lie in [0, 1]")
        _check(0 <= self.v_decay <= 1, "actor.v_decay", "must lie in [0, 1]")
        _check(self.v_threshold > 0, "actor.v_threshold", "must be > 0")
        _check(self.surrogate_scale > 0, "actor.surrogate_scale", "must be > 0")
        _check(self.obs_clip > 0, "actor.obs_clip", "must be > 0")


@dataclass(frozen=True)
class CriticConfig:
    hidden_sizes: tuple[int, ...] = (256, 256)

    def __post_init__(self) -> None:
        _check(len(self.hidden_sizes) >= 1, "critic.hidden_sizes", "needs at least one layer")
        _check(all(h > 0 for h in self.hidden_sizes), "critic.hidden_sizes", "sizes must be > 0")


@dataclass(frozen=True)
class TD3Config:
    """TD3 (Fujimoto et al., ICML 2018); defaults are PopSAN's TD3 settings."""

    actor_lr: float = 1e-4
    critic_lr: float = 1e-3
    batch_size: int = setting(100, fork=True)
    gamma: float = setting(0.99, fork=True)
    tau: float = setting(0.005, fork=True)
    policy_delay: int = setting(2, fork=True)
    exploration_noise: float = setting(0.1, fork=True)
    target_noise: float = setting(0.2, fork=True)
    noise_clip: float = setting(0.5, fork=True)
    firing_rate_penalty: float = setting(0.0, fork=True)
    """Coefficient of the spiking actor's mean firing rate in the actor loss (0: off)."""
    schedule: Literal["td3", "per_env_step"] = setting("td3", fork=True)
    """How one env step's G updates (``train.updates_per_step``) are arranged. ``td3``: G TD3
    steps (a critic step each, an actor step and Polyak update of both targets every
    ``policy_delay``-th). ``per_env_step`` (REDQ, Chen et al., ICLR 2021): G critic steps with
    the actor and both targets fixed, then ``actor_updates_per_step`` actor steps, then one
    Polyak update of both targets (see ``target_tau_per``)."""
    actor_updates_per_step: int = setting(1, fork=True)
    """``per_env_step``: actor steps per env step, on the last batches of the env step."""
    batched_targets: bool = setting(True, fork=True)
    """``per_env_step``: the G TD targets in one forward of the target actor and critic over
    all G * B next states (the same targets as G forwards: the targets are fixed meanwhile);
    fewer launches for a GPU; on a CPU the larger activations may leave the cache
    (docs/regimes.md)."""
    target_tau_per: Literal["critic_update", "actor_update"] = setting("critic_update", fork=True)
    """``per_env_step``: the one Polyak step per env step uses ``1 - (1 - tau)^n`` with ``n`` this
    env step's critic updates (the averaging horizon of REDQ/MBPO, which move the targets
    every critic update) or actor updates (TD3, which moves them with every actor update)."""

    def __post_init__(self) -> None:
        _check(self.actor_lr > 0, "td3.actor_lr", "must be > 0")
        _check(self.firing_rate_penalty >= 0, "td3.firing_rate_penalty", "must be >= 0")
        _check(self.critic_lr > 0, "td3.critic_lr", "must be > 0")
        _check(self.batch_size >= 1, "td3.batch_size", "must be >= 1")
        _check(0 <= self.gamma < 1, "td3.gamma", "must lie in [0, 1)")
        _check(0 < self.tau <= 1, "td3.tau", "must lie in (0, 1]")
        _check(self.policy_delay >= 1, "td3.policy_delay", "must be >= 1")
        for k in ("exploration_noise", "target_noise", "noise_clip"):
            _check(getattr(self, k) >= 0, f"td3.{k}", "must be >= 0")
        _check(
            self.schedule in ("td3", "per_env_step"),
            "td3.schedule",
            f"must be td3 or per_env_step, got {self.schedule!r}",
        )
        _check(self.actor_updates_per_step >= 1, "td3.actor_updates_per_step", "must be >= 1")
        defaults = {f.name: f.default for f in dataclasses.fields(self)}
        if self.schedule == "td3":
            own = ("actor_updates_per_step", "batched_targets", "target_tau_per")
            why = "applies only with td3.schedule: per_env_step"
        else:
            own = ("policy_delay",)
            why = (
                "would never apply with td3.schedule: per_env_step (the actor steps "
                "td3.actor_updates_per_step times per env step)"
            )
        for k in own:
            value = getattr(self, k)
            _check(
                value == defaults[k], f"td3.{k}", f"{value!r} {why}; leave it at {defaults[k]!r}"
            )


@dataclass(frozen=True)
class AgentConfig:
    """Which agent learns: the actor-critic update that owns the actor's and the critic's
    training (:func:`spiking_dreamer.agent.build_agent`)."""

    kind: Literal["td3", "sac"] = "td3"
    """``td3``: TD3 with a deterministic actor (``td3.*``); ``sac``: SAC, a maximum-entropy
    agent with a stochastic (squashed-Gaussian) actor (``sac.*``), the agent of MBPO, MACURA and
    DHMBPO. The other agent's section must stay at its defaults."""

    def __post_init__(self) -> None:
        _check(self.kind in ("td3", "sac"), "agent.kind", f"must be td3 or sac, got {self.kind!r}")


@dataclass(frozen=True)
class SACConfig:
    """SAC (Haarnoja et al., "Soft Actor-Critic Algorithms and Applications", 2018, v2): clipped
    double-Q with a target critic, a tanh-squashed Gaussian policy, the temperature tuned
    towards a target entropy. The actor is PopSAN-SAC's (Tang et al., CoRL 2020): the mean from
    the actor's network, the log-std from ``log_std_head``. Defaults are PopSAN's SAC settings
    (actor lr 1e-4, log-std network and critic lr 1e-3, batch 100, tau 0.005, alpha 0.2), with
    the temperature tuned automatically from 0.2 (PopSAN's SAC keeps it fixed:
    ``auto_alpha: false``)."""

    actor_lr: float = 1e-4
    """The actor's mean path (PopSAN-SAC's ``popsan_lr``)."""
    log_std_lr: float = 1e-3
    """The log-std head's own weights (PopSAN-SAC trains its log-std network at the critic's
    rate)."""
    critic_lr: float = 1e-3
    alpha_lr: float = 3e-4
    """The temperature's (``log alpha``) Adam step size (Haarnoja et al. 2018: 3e-4)."""
    batch_size: int = setting(100, fork=True)
    gamma: float = setting(0.99, fork=True)
    tau: float = setting(0.005, fork=True)
    alpha: float = 0.2
    """Entropy temperature: its initial value, or its value throughout with ``auto_alpha:
    false`` (PopSAN's SAC: 0.2, fixed)."""
    auto_alpha: bool = True
    """Tune ``log alpha`` by gradient descent on ``-log alpha * (log pi + target_entropy)``
    (Haarnoja et al. 2018 v2, eq. 18)."""
    target_entropy: float | None = setting(None, fork=True)
    """The entropy the temperature steers towards; ``null``: ``-|A|`` (minus the action size)."""
    log_std_min: float = setting(-20.0, fork=True)
    log_std_max: float = setting(2.0, fork=True)
    """The log-std is clamped to ``[log_std_min, log_std_max]`` (PopSAN-SAC, SpinningUp)."""
    log_std_head: Literal["ann", "shared"] = "ann"
    """Where the log-std comes from. ``ann``: a separate ReLU MLP (``log_std_hidden_sizes``) on
    the normalised observation (PopSAN-SAC: the stochastic part is not spiking); ``shared``:
    the actor's own network, i.e. for ``actor.kind: popsan`` a second output population of the
    last spiking layer with its own population decoder (fully spiking), for ``mlp`` a second
    linear head on the last hidden layer (the SAC actor of Haarnoja et al. / SpinningUp)."""
    log_std_hidden_sizes: tuple[int, ...] = (256, 256)
    """``log_std_head: ann``: hidden layers of the log-std network (PopSAN-SAC: the actor's)."""
    firing_rate_penalty: float = setting(0.0, fork=True)
    """Coefficient of the spiking actor's mean firing rate in the actor loss (0: off)."""
    schedule: Literal["sac", "per_env_step"] = setting("sac", fork=True)
    """How one env step's G updates are arranged. ``sac``: G SAC steps (a critic step, an actor
    and temperature step and a Polyak update of the target critic each); ``per_env_step``
    (REDQ): G critic steps with the actor, the temperature and the target critic fixed, then
    ``actor_updates_per_step`` actor and temperature steps, then one Polyak update."""
    actor_updates_per_step: int = setting(1, fork=True)
    """``per_env_step``: actor (and temperature) steps per env step, on the last batches."""
    batched_targets: bool = setting(True, fork=True)
    """``per_env_step``: the G TD targets in one forward of the actor and the target critic
    over all G * B next states (the same targets as G forwards)."""
    target_tau_per: Literal["critic_update", "actor_update"] = setting("critic_update", fork=True)
    """``per_env_step``: the one Polyak step per env step uses ``1 - (1 - tau)^n``, ``n`` this
    env step's critic updates (REDQ/MBPO) or actor updates."""

    def __post_init__(self) -> None:
        k = "sac."
        for name in ("actor_lr", "log_std_lr", "critic_lr", "alpha_lr", "alpha"):
            _check(getattr(self, name) > 0, k + name, "must be > 0")
        _check(self.batch_size >= 1, k + "batch_size", "must be >= 1")
        _check(0 <= self.gamma < 1, k + "gamma", "must lie in [0, 1)")
        _check(0 < self.tau <= 1, k + "tau", "must lie in (0, 1]")
        _check(
            self.log_std_min < self.log_std_max,
            k + "log_std_min",
            f"must be below sac.log_std_max={self.log_std_max}",
        )
        _check(self.log_std_head in ("ann", "shared"), k + "log_std_head", "must be ann or shared")
        _check(len(self.log_std_hidden_sizes) >= 1, k + "log_std_hidden_sizes", "needs a layer")
        _check(
            all(h > 0 for h in self.log_std_hidden_sizes),
            k + "log_std_hidden_sizes",
            "sizes must be > 0",
        )
        _check(self.firing_rate_penalty >= 0, k + "firing_rate_penalty", "must be >= 0")
        _check(
            self.schedule in ("sac", "per_env_step"),
            k + "schedule",
            f"must be sac or per_env_step, got {self.schedule!r}",
        )
        _check(self.actor_updates_per_step >= 1, k + "actor_updates_per_step", "must be >= 1")
        defaults = {f.name: f.default for f in dataclasses.fields(self)}
        own = ["actor_updates_per_step", "batched_targets", "target_tau_per"]
        if self.schedule == "sac":
            for name in own:
                value = getattr(self, name)
                _check(
                    value == defaults[name],
                    k + name,
                    f"{value!r} applies only with sac.schedule: per_env_step; leave it at "
                    f"{defaults[name]!r}",
                )
        if self.log_std_head == "shared":
            value = self.log_std_hidden_sizes
            _check(
                value == defaults["log_std_hidden_sizes"],
                k + "log_std_hidden_sizes",
                f"{list(value)!r} shapes the separate log-std network of log_std_head: ann "
                f"only; leave it at {list(defaults['log_std_hidden_sizes'])!r}",
            )


@dataclass(frozen=True)
class TrainConfig:
    seed: int = 0
    total_steps: int = setting(1_000_000, fork=True, resume=True)
    """Environment steps, random warm-up included."""
    start_steps: int = setting(10_000, bench="--warmup")
    """Uniform random actions before the policy acts."""
    update_after: int = setting(1_000, bench="--warmup")
    """Env steps before the agent's updates start (PopSAN/Spinning Up: 1,000)."""
    updates_per_step: int = setting(1, fork=True)
    """Agent updates per env step (the update-to-data ratio); with dreaming, until its batches
    include dreams, or throughout unless ``dreaming.updates_per_step`` is set."""
    replay_size: int = 1_000_000
    eval_every: int = setting(5_000, fork=True, bench="nothing (no evaluation while timing)")
    eval_episodes: int = 10
    eval_seed_offset: int = 10_000
    """The evaluation env is seeded with ``seed + eval_seed_offset`` at every evaluation."""
    checkpoint_every: int = setting(25_000, fork=True)
    """Env steps between full training-state checkpoints (taken at the next episode end)."""
    device: str = setting("auto", experiment=False, bench="--device")
    """``auto`` (CUDA when available), ``cpu`` or ``cuda[:N]``."""
    threads: int = setting(1, fork=True, resume=True, experiment=False, bench="--threads")
    """torch intra-op threads; 1 suits the small networks here (0 keeps torch's default)."""
    compile: bool = setting(
        False, fork=True, resume=True, experiment=False, bench="--compile (it times both)"
    )
    """``torch.compile`` acting and the agent update's network forwards (spiking backward
    included); same maths, fewer kernel launches; compiling takes a while once."""

    def __post_init__(self) -> None:
        _check(0 <= self.seed <= MAX_SEED, "train.seed", f"must lie in [0, {MAX_SEED}]")
        _check(self.total_steps >= 1, "train.total_steps", "must be >= 1")
        _check(self.start_steps >= 0, "train.start_steps", "must be >= 0")
        _check(self.update_after >= 1, "train.update_after", "must be >= 1")
        _check(self.updates_per_step >= 0, "train.updates_per_step", "must be >= 0")
        _check(
            self.replay_size >= MIN_REPLAY_SIZE,
            "train.replay_size",
            f"must be >= {MIN_REPLAY_SIZE:,} (a MuJoCo episode is up to 1,000 steps)",
        )
        _check(self.eval_every >= 1, "train.eval_every", "must be >= 1")
        _check(
            1 <= self.eval_episodes <= MAX_EVAL_EPISODES,
            "train.eval_episodes",
            f"must lie in [1, {MAX_EVAL_EPISODES}] (one env is kept per evaluation episode)",
        )
        _check(
            0 <= self.eval_seed_offset <= MAX_SEED,
            "train.eval_seed_offset",
            f"must lie in [0, {MAX_SEED}] (seed + offset + episode seeds the evaluation envs)",
        )
        _check(0 <= self.threads <= MAX_THREADS, "train.threads", f"must lie in [0, {MAX_THREADS}]")
        _check(self.checkpoint_every >= 1, "train.checkpoint_every", "must be >= 1")
        problem = device_problem(self.device)
        _check(problem is None, "train.device", problem or "")


KIND_DEFAULTS: dict[str, dict[str, Any]] = {
    "spiking": {"ensemble_size": 5, "num_elites": 3, "head": "deterministic"},
    "mlp": {"ensemble_size": 7, "num_elites": 5, "head": "gaussian"},
}
"""World-model keys whose default (``null``) depends on ``world_model.kind``."""
SPIKING_ONLY_KEYS = (
    "hidden_size",
    "num_blocks",
    "num_scales",
    "tau_range",
    "adapt_tau",
    "adapt_step",
    "c_decay",
    "v_threshold",
    "spike_ts",
    "pop_dim",
    "input_coding",
    "readout",
    "surrogate",
    "surrogate_scale",
)
"""World-model keys that shape the spiking model only (refused, when set, under ``mlp``)."""


@dataclass(frozen=True)
class WorldModelConfig:
    """The world-model ensemble: ``kind: spiking`` (adaptive LIF, multi-scale blocks, hybrid
    readout) or ``kind: mlp`` (MBPO's probabilistic ANN ensemble, Janner et al., NeurIPS 2019).
    Keys from ``hidden_size`` to ``surrogate_scale`` shape the spiking model only, ``mlp_*``
    keys the MLP only; the rest (ensemble, head, training) apply to both."""

    use: Literal["none", "dreams", "value_gradient"] = setting(
        "dreams", bench="nothing (it times both arms)"
    )
    """How the run uses a world model: ``none``, no model at all (the model-free baseline,
    ``--no-dreaming``); ``dreams``, imagined transitions mixed into the agent's batches
    (``dreaming.*``); ``value_gradient``, the actor learns through the model's differentiable
    rollouts (``value_gradient.*``)."""
    kind: Literal["spiking", "mlp"] = "spiking"
    """``spiking``: the spiking ensemble; ``mlp``: MBPO's ensemble of ``mlp_hidden_sizes``
    swish MLPs (the ANN control: the same loop with an ANN model)."""
    ensemble_size: int | None = None
    """Members; ``null``: the kind's default (spiking 5, mlp 7 as in MBPO)."""
    num_elites: int | None = None
    """Members with the lowest hold-out loss; dreams sample among them. ``null``: the kind's
    default (spiking 3, mlp 5 as in MBPO), at most ``ensemble_size``."""
    head: Literal["deterministic", "gaussian"] | None = None
    """``gaussian``: mean and soft-bounded log-variance trained with Gaussian NLL;
    ``deterministic``: the mean, trained with MSE. ``null``: the kind's default (spiking
    deterministic, mlp gaussian as in MBPO)."""
    reward_weight: float = setting(1.0, fork=True)
    """Weight of the reward output in the training loss, each state output weighing 1 (the
    weights rescaled to mean 1): with MSE the reward is otherwise 1 of ``obs_dim + 1`` equal
    outputs, where a Gaussian head's NLL weighs each output by its learned inverse variance.
    Hold-out scores (early stopping, elites) stay unweighted."""
    mlp_hidden_sizes: tuple[int, ...] = (200, 200, 200, 200)
    """``kind: mlp``: hidden layers of each member (MBPO: 4 x 200, swish)."""
    hidden_size: int = 128
    num_blocks: int = 2
    num_scales: int = 4
    """Groups of neurons per block with membrane time constants spread over ``tau_range``."""
    tau_range: tuple[float, float] = (2.0, 16.0)
    adapt_tau: float = 20.0
    adapt_step: float = 0.1
    c_decay: float = 0.5
    v_threshold: float = 0.5
    spike_ts: int = 5
    pop_dim: int = 8
    """Gaussian receptive fields per normalised input dimension (fixed centres over [-3, 3])."""
    input_coding: Literal["current", "spikes"] = "current"
    """``current``: receptive-field activations drive the first layer as input current;
    ``spikes``: they are turned into regular spike trains first (PopSAN encoder)."""
    readout: Literal["last", "all_voltages"] = "last"
    """What the heads read, averaged over the time steps: ``last``, the last block's spike
    rates and membrane voltages; ``all_voltages``, also every earlier block's voltages. Behind
    binary spikes the last block's output is piecewise constant in the input; the first block's
    voltages follow the receptive fields continuously."""
    surrogate: Literal["rect", "superspike", "atan"] = "superspike"
    surrogate_scale: float = 10.0
    lr: float = 1e-3
    weight_decay: float = 1e-5
    batch_size: int = setting(256, fork=True)
    grad_clip: float = setting(1.0, fork=True)
    train_every: int = setting(250, fork=True)
    """Env steps between training phases."""
    train_steps: int = setting(20, fork=True)
    """Upper bound on gradient steps per training phase (bounds the cost per env step)."""
    holdout_ratio: float = 0.2
    max_holdout: int = setting(1000, fork=True)
    holdout_every: int = setting(20, fork=True)
    """Gradient steps between hold-out evaluations (early stopping and elite selection)."""
    patience: int = setting(5, fork=True)
    """Stop a phase after this many hold-out checks in which no member beat its best by over 1%
    (a best moves only by such gains, so small ones add up: MBPO's rule).
    With the defaults (``train_steps`` = ``holdout_every``) a phase makes one check, so early
    stopping only acts in MBPO-like long phases (large ``train_steps``)."""
    keep_best: bool = setting(False, fork=True)
    """End a phase with the weights of its last hold-out check at which a member beat its best
    by over 1%, and pick the elites by that check's scores (mbrl-lib's ``keep_best`` keeps the
    same weights but ranks by each member's best; MBPO keeps each member's own best weights);
    ``false``: the weights of its last step."""
    assume_never_terminates: bool = False
    """Treat an env without a known termination function as never terminating."""

    def __post_init__(self) -> None:
        k = "world_model."
        _check(self.kind in KIND_DEFAULTS, k + "kind", f"must be spiking or mlp, got {self.kind!r}")
        for name, value in KIND_DEFAULTS[self.kind].items():
            if getattr(self, name) is None:  # resolved once, so a stored config names it
                if name == "num_elites" and isinstance(self.ensemble_size, int):
                    value = min(value, self.ensemble_size)
                object.__setattr__(self, name, value)
        defaults = {f.name: f.default for f in dataclasses.fields(self)}
        other = SPIKING_ONLY_KEYS if self.kind == "mlp" else ("mlp_hidden_sizes",)
        for name in other:
            value = getattr(self, name)
            _check(
                value == defaults[name],
                k + name,
                f"{value!r} shapes the {'spiking' if self.kind == 'mlp' else 'MLP'} model only "
                f"and world_model.kind is {self.kind}; leave it at {defaults[name]!r}",
            )
        _check(self.ensemble_size >= 1, k + "ensemble_size", "must be >= 1")
        _check(
            1 <= self.num_elites <= self.ensemble_size,
            k + "num_elites",
            f"must lie in [1, ensemble_size={self.ensemble_size}]",
        )
        for name in ("hidden_size", "num_blocks", "spike_ts", "batch_size", "train_every"):
            _check(getattr(self, name) >= 1, k + name, "must be >= 1")
        _check(self.num_scales >= 1, k + "num_scales", "must be >= 1")
        _check(
            self.hidden_size % self.num_scales == 0,
            k + "hidden_size",
            f"must be divisible by num_scales={self.num_scales}",
        )
        _check(1 <= self.tau_range[0] <= self.tau_range[1], k + "tau_range", "needs 1 <= lo <= hi")
        _check(self.adapt_tau >= 1, k + "adapt_tau", "must be >= 1")
        _check(self.adapt_step >= 0, k + "adapt_step", "must be >= 0")
        _check(0 <= self.c_decay <= 1, k + "c_decay", "must lie in [0, 1]")
        for name in ("v_threshold", "surrogate_scale", "lr", "grad_clip", "reward_weight"):
            _check(getattr(self, name) > 0, k + name, "must be > 0")
        _check(self.pop_dim >= 2, k + "pop_dim", "must be >= 2")
        _check(len(self.mlp_hidden_sizes) >= 1, k + "mlp_hidden_sizes", "needs a layer")
        _check(all(h > 0 for h in self.mlp_hidden_sizes), k + "mlp_hidden_sizes", "sizes > 0")
        _check(self.weight_decay >= 0, k + "weight_decay", "must be >= 0")
        _check(self.train_steps >= 0, k + "train_steps", "must be >= 0")
        _check(0 < self.holdout_ratio < 1, k + "holdout_ratio", "must lie in (0, 1)")
        _check(self.max_holdout >= 1, k + "max_holdout", "must be >= 1")
        _check(self.holdout_every >= 1, k + "holdout_every", "must be >= 1")
        _check(self.patience >= 1, k + "patience", "must be >= 1")


@dataclass(frozen=True)
class DreamingConfig:
    """Uncertainty-guided imagined rollouts (MBPO/MOPO style); defaults are the seed's values."""

    start_step: int = setting(50_000, fork=True, bench="--warmup")
    """First env step with a dream phase (the world model trains from ``train.update_after``)."""
    every: int = setting(250, fork=True)
    """Env steps between dream phases."""
    rollout_batch: int = setting(1024, fork=True)
    """Start states per dream phase."""
    horizon: int = setting(5, fork=True)
    """Imagined steps per branch (without ``horizon_schedule``)."""
    horizon_schedule: tuple[int, ...] = setting((), fork=True)
    """MBPO's rollout-length schedule ``[start_step, end_step, h_start, h_end]`` (env steps):
    the horizon is ``h_start`` up to ``start_step``, ``h_end`` from ``end_step`` on and
    linear in between, floored; it replaces ``horizon``. Empty: the fixed ``horizon``."""
    threshold: float = setting(0.5, fork=True)
    """Initial uncertainty threshold at rollout step 0."""
    threshold_decay: float = setting(0.85, fork=True)
    """Threshold at rollout step h is ``threshold * threshold_decay**h`` (tightens with h)."""
    adaptive_threshold: bool = setting(True, fork=True)
    target_acceptance: float = setting(0.6, fork=True)
    adapt_rate: float = setting(0.05, fork=True)
    """Multiplicative threshold change per phase when acceptance is off target by > 0.1."""
    min_accept_quantile: float = setting(0.1, fork=True)
    """The step-0 threshold never drops below this quantile of step-0 uncertainties, so a
    phase always accepts some transitions. With 0 and ``adaptive_threshold: false`` the
    threshold is fixed and a phase may accept nothing."""
    calibrate_threshold: bool = setting(False, fork=True)
    """At the first dream phase, set the step-0 threshold to the ``target_acceptance``
    quantile of that phase's step-0 uncertainties instead of starting from the absolute
    ``threshold`` (whose scale depends on the model and the metric); adaptation goes on from
    there. Off: the seed's behaviour."""
    uncertainty: Literal["variance", "max_deviation", "max_std"] = setting("variance", fork=True)
    """``variance``: mean over state dims of the across-member variance of predicted normalised
    state changes (the seed's metric); ``max_deviation``: max over members of the L2 distance of
    a member's mean from the members' mean; ``max_std``: MOPO's max over members of the L2 norm
    of the predicted std (needs ``world_model.head: gaussian``)."""
    uncertainty_members: Literal["all", "elites"] = setting("all", fork=True)
    """Members the uncertainty is computed over: ``all`` (MOPO's convention; ranks errors better
    in the world-model benchmark) or only the ``elites`` that supply the transitions."""
    member: Literal["random_elite", "elite_mean"] = setting("random_elite", fork=True)
    """Where a dream transition comes from: ``random_elite``, one random elite per transition,
    sampling its Gaussian for a Gaussian head (MBPO's TS1; the seed's); ``elite_mean``, the
    mean of the elites' predicted means (no sampling: smaller TD-target error in
    ``benchmarks/dream_fidelity.py``, but no model noise in the dreams)."""
    penalty: float = setting(1.0, fork=True)
    """MOPO penalty: stored reward is ``r - penalty * u``."""
    exploration_noise: float = setting(0.1, fork=True)
    """Gaussian noise on dreamed actions, relative to the action half-range (TD3). Under
    ``agent.kind: sac`` dream actions are policy samples: stored as 0."""
    buffer_size: int = 100_000
    real_ratio: float = setting(0.5, fork=True)
    """Share of real transitions in each agent batch once dreams exist."""
    updates_per_step: int = setting(0, fork=True)
    """Agent updates per env step once its batches include dreams; 0: ``train.updates_per_step``
    throughout (see :meth:`Config.updates_per_step`)."""
    recent_fraction: float = setting(0.0, fork=True)
    """Share of start states drawn from the newest ``recent_window`` real transitions."""
    recent_window: int = setting(20_000, fork=True)
    predict_chunk: int = setting(0, fork=True, resume=True, experiment=False)
    """At most this many rows per actor and world-model forward in a dream phase (balanced
    pieces); 0: all start states at once. The same values up to float rounding (bitwise for
    the spiking model's mean in pieces of >= 64 rows at the default size, tested; a Gaussian
    log-variance or a SAC actor's squashing to about one unit in the last place). On a CPU,
    chunks keep the activations in cache (docs/regimes.md has the measurement); on a GPU one
    forward is best."""

    def __post_init__(self) -> None:
        k = "dreaming."
        _check(self.predict_chunk >= 0, k + "predict_chunk", "must be >= 0 (0: no chunking)")
        for name in ("every", "rollout_batch", "horizon", "buffer_size", "recent_window"):
            _check(getattr(self, name) >= 1, k + name, "must be >= 1")
        _check(self.start_step >= 0, k + "start_step", "must be >= 0")
        if self.horizon_schedule:
            sched = k + "horizon_schedule"
            _check(
                len(self.horizon_schedule) == 4,
                sched,
                "needs [start_step, end_step, h_start, h_end]",
            )
            a, b, h0, h1 = self.horizon_schedule
            _check(0 <= a <= b, sched, f"needs 0 <= start_step <= end_step, got {a}, {b}")
            _check(min(h0, h1) >= 1, sched, f"horizons must be >= 1, got {h0}, {h1}")
        _check(self.threshold > 0, k + "threshold", "must be > 0")
        _check(0 < self.threshold_decay <= 1, k + "threshold_decay", "must lie in (0, 1]")
        _check(0 < self.target_acceptance < 1, k + "target_acceptance", "must lie in (0, 1)")
        _check(0 < self.adapt_rate < 1, k + "adapt_rate", "must lie in (0, 1)")
        _check(0 <= self.min_accept_quantile < 1, k + "min_accept_quantile", "must lie in [0, 1)")
        _check(self.penalty >= 0, k + "penalty", "must be >= 0")
        _check(self.exploration_noise >= 0, k + "exploration_noise", "must be >= 0")
        _check(0 <= self.real_ratio <= 1, k + "real_ratio", "must lie in [0, 1]")
        _check(self.updates_per_step >= 0, k + "updates_per_step", "must be >= 0")
        _check(0 <= self.recent_fraction <= 1, k + "recent_fraction", "must lie in [0, 1]")


@dataclass(frozen=True)
class ValueGradientConfig:
    """Value-gradient learning through the world model (DHMBPO: Kubo, Parmas, Ishii, TMLR 2025;
    defaults: its ``dhmbpo.yaml`` / ``svg.yaml`` where it has the setting). The actor follows
    the SVG(H) gradient through short differentiable rollouts of the world model instead of
    learning from dreams as data (no dream phases run); see
    :mod:`spiking_dreamer.dreaming.value_gradient`. Used with ``world_model.use:
    value_gradient`` (the world model trains as usual)."""

    start_step: int = setting(50_000, fork=True, bench="--warmup")
    """First env step with a distribution rollout; value-gradient updates start once the
    start-state pool has states (before, the agent's own updates run)."""
    horizon: int = setting(5, fork=True)
    """``H``: steps of the differentiable training rollout (DHMBPO ``training_rollout_horizon``
    5); also the value-expansion horizon of the MVE critic (DHMBPO's code regresses the first
    pair only: docs/regimes.md)."""
    distribution_horizon: int = setting(20, fork=True)
    """``D``: steps of a distribution rollout (DHMBPO ``distribution_rollout_horizon`` 20)."""
    distribution_every: int = setting(20, fork=True)
    """Env steps between distribution rollouts (DHMBPO ``rollout_freq`` 20); one rollout is
    one pool round."""
    pool_rounds: int = setting(10, fork=True)
    """A distribution rollout's states stay in the start-state pool for this many rounds
    (DHMBPO ``retain_model_buffer_iter`` 10)."""
    distribution_starts: int = setting(256, fork=True)
    """Real start states per distribution rollout."""
    batch_size: int = setting(256, fork=True)
    """Start states ``B`` of one training rollout (one actor / MVE critic update)."""
    member: Literal["random_elite", "elite_mean"] = setting("random_elite", fork=True)
    """Transition of both rollouts: ``random_elite``, one random elite per transition and step
    (sampling its Gaussian, reparameterised, for a Gaussian head: MBPO's TS1); ``elite_mean``,
    the mean of the elites' predicted means (deterministic)."""
    critic_target: Literal["mve", "td3"] = setting("mve", fork=True)
    """Critic update: ``mve``, H-step value-expansion targets on the training rollouts
    (:func:`mve_critic_loss`); ``td3``, the agent's own one-step targets (TD3's or SAC's) on
    the usual (real) batches."""
    exploration_noise: float = setting(0.1, fork=True)
    """Gaussian action noise of distribution rollouts, relative to the action half-range
    (clipped to the bounds, as in the real env and the dreamer). Under ``agent.kind: sac`` the
    rollouts sample the policy: stored as 0."""
    action_noise: float = setting(0.0, fork=True)
    """Optional Gaussian smoothing noise on the actions *inside* the differentiable rollout
    (relative to the half-range, clipped to ``±2.5`` times itself and to the bounds).
    0: the deterministic policy's value gradient (see :func:`imagine`)."""
    uncertainty: Literal["variance", "max_deviation", "max_std"] = setting("variance", fork=True)
    """Uncertainty of a distribution-rollout transition, over all members (see
    :func:`~spiking_dreamer.dreaming.model_env.uncertainty`)."""
    uncertainty_quantile: float = setting(0.95, fork=True)
    """The pool filter's threshold is ``uncertainty_scale`` times this quantile of the
    rollout's step-0 uncertainties (MACURA, Frauenknecht et al. ICML 2024: ``zeta`` = 95th
    percentile); scale-free, so it needs no tuning per model or metric."""
    uncertainty_scale: float = setting(2.0, fork=True)
    """Multiplier ``xi`` of that quantile (MACURA: 2 on HalfCheetah, 5 on Ant). A branch stops
    at its first transition above the threshold, which is not kept."""

    def __post_init__(self) -> None:
        k = "value_gradient."
        _check(self.start_step >= 0, k + "start_step", "must be >= 0")
        for name in (
            "horizon",
            "distribution_horizon",
            "distribution_every",
            "pool_rounds",
            "distribution_starts",
            "batch_size",
        ):
            _check(getattr(self, name) >= 1, k + name, "must be >= 1")
        _check(self.member in ("random_elite", "elite_mean"), k + "member", "unknown member")
        _check(self.critic_target in ("mve", "td3"), k + "critic_target", "must be mve or td3")
        _check(self.exploration_noise >= 0, k + "exploration_noise", "must be >= 0")
        _check(self.action_noise >= 0, k + "action_noise", "must be >= 0")
        _check(0 < self.uncertainty_quantile <= 1, k + "uncertainty_quantile", "must lie in (0, 1]")
        _check(self.uncertainty_scale > 0, k + "uncertainty_scale", "must be > 0")


@dataclass(frozen=True)
class LogConfig:
    run_root: str = "runs"
    """Parent directory of run directories (when --run-dir is not given)."""
    tensorboard: bool = True
    wandb: bool = False
    wandb_project: str = "spiking-dreamer"
    wandb_mode: Literal["online", "offline"] = "online"
    progress: bool = True
    log_every: int = 1_000
    """Env steps between training-loss records."""

    def __post_init__(self) -> None:
        _check(self.log_every >= 1, "log.log_every", "must be >= 1")


@dataclass(frozen=True)
class Config:
    env: EnvConfig = field(default_factory=EnvConfig)
    actor: ActorConfig = field(default_factory=ActorConfig)
    critic: CriticConfig = field(default_factory=CriticConfig)
    agent: AgentConfig = field(default_factory=AgentConfig)
    td3: TD3Config = field(default_factory=TD3Config)
    sac: SACConfig = field(default_factory=SACConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    world_model: WorldModelConfig = field(default_factory=WorldModelConfig)
    dreaming: DreamingConfig = field(default_factory=DreamingConfig)
    value_gradient: ValueGradientConfig = field(default_factory=ValueGradientConfig)
    log: LogConfig = field(
        default_factory=LogConfig,
        metadata={"rule": KeyRule(fork=True, resume=True, experiment=False)},
    )

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (tuples become lists), suitable for YAML, JSON and checkpoints."""
        return plain(dataclasses.asdict(self))

    def updates_per_step(self, dreams_in_batch: bool) -> int:
        """Agent updates per env step, the one rule: ``train.updates_per_step``, except once
        the agent's batches include dreams (``dreams_in_batch``) and
        ``dreaming.updates_per_step`` is set (> 0): then that."""
        if dreams_in_batch and self.dreaming.updates_per_step > 0:
            return self.dreaming.updates_per_step
        return self.train.updates_per_step

    @property
    def agent_settings(self) -> TD3Config | SACConfig:
        """The section of the agent ``agent.kind`` names (``td3`` or ``sac``): its batch size,
        discount and update schedule are the run's."""
        return self.sac if self.agent.kind == "sac" else self.td3

    @property
    def uses_model(self) -> bool:
        """Whether the run builds a world model (``world_model.use`` is not ``none``)."""
        return self.world_model.use != "none"

    def __post_init__(self) -> None:
        self._check_agent_sections()
        batch_size, kind = self.agent_settings.batch_size, self.agent.kind
        _check(
            batch_size <= self.train.replay_size,
            f"{kind}.batch_size",
            f"{batch_size} is larger than train.replay_size ({self.train.replay_size}): "
            "every batch would repeat transitions",
        )
        d, vg, use = self.dreaming, self.value_gradient, self.world_model.use
        if use == "dreams":  # value-gradient keys would be silently ignored
            for f in dataclasses.fields(ValueGradientConfig):
                value = getattr(vg, f.name)
                if value != f.default:
                    raise ConfigError(
                        f"value_gradient.{f.name} would change nothing with world_model.use: "
                        f"dreams (it is {value!r}): leave it at {f.default!r}, or write "
                        "world_model.use: value_gradient"
                    )
        if (
            use == "dreams"
            and d.real_ratio == 1
            and d.updates_per_step
            not in (
                0,
                self.train.updates_per_step,
            )
        ):
            raise ConfigError(
                f"dreaming.updates_per_step: {d.updates_per_step} would never apply: with "
                "dreaming.real_ratio: 1 no agent batch includes dreams; set "
                "dreaming.updates_per_step: 0 and the updates per env step with "
                "train.updates_per_step"
            )
        if use == "value_gradient":
            _check(
                self.td3.schedule == "td3",
                "world_model.use",
                "value_gradient's updates ignore td3.schedule: leave td3.schedule at td3",
            )
            _check(
                self.sac.schedule == "sac",
                "world_model.use",
                "value_gradient's updates ignore sac.schedule: leave sac.schedule at sac",
            )
        if self.agent.kind == "sac":
            self._sampled_actions_only(use)
        uncertainty = {"dreams": d.uncertainty, "value_gradient": vg.uncertainty}.get(use)
        if uncertainty == "max_std":
            _check(
                self.world_model.head == "gaussian",
                f"{'dreaming' if use == 'dreams' else 'value_gradient'}.uncertainty",
                "max_std needs world_model.head: gaussian",
            )

    def _check_agent_sections(self) -> None:
        """The section of the agent not in use stays at its defaults (its keys would be
        silently ignored)."""
        kind = self.agent.kind
        other = "td3" if kind == "sac" else "sac"
        section = getattr(self, other)
        for f in dataclasses.fields(section):
            value = getattr(section, f.name)
            if value != f.default:
                raise ConfigError(
                    f"{other}.{f.name}: {plain(value)!r} configures {other.upper()} and "
                    f"agent.kind is {kind}; leave it at {plain(f.default)!r} ({kind}'s "
                    f"settings are under {kind}.*)"
                )

    def _sampled_actions_only(self, use: str) -> None:
        """SAC explores by sampling its policy, in the real env, in dreams and in distribution
        rollouts: TD3's Gaussian action noise does not apply. The noise keys at their (TD3)
        default are stored as 0; another nonzero value is refused, as is smoothing noise in the
        value-gradient rollouts (SAC's rollouts sample the policy)."""
        sections = [("dreaming", self.dreaming)]
        if use == "value_gradient":  # under dreams, value_gradient.* stay at their defaults
            sections.append(("value_gradient", self.value_gradient))
        for name, section in sections:
            value = section.exploration_noise
            default = type(section)().exploration_noise
            if value == default:
                object.__setattr__(self, name, dataclasses.replace(section, exploration_noise=0.0))
            else:
                _check(
                    value == 0,
                    f"{name}.exploration_noise",
                    f"{value!r}: with agent.kind: sac imagined actions are samples of the "
                    "stochastic policy, with no Gaussian noise on top; leave it out (stored as "
                    "0.0) or write 0",
                )
        _check(
            self.value_gradient.action_noise == 0,
            "value_gradient.action_noise",
            "with agent.kind: sac the training rollout samples the stochastic policy "
            "(reparameterised); no smoothing noise on top: leave it at 0.0",
        )

    def replace(self, **sections: Mapping[str, Any]) -> Config:
        """Copy with some keys of some sections changed, e.g. ``cfg.replace(train={"seed": 1})``."""
        return build(Config, deep_merge(self.to_dict(), sections, "replace()"), "", "replace()")


def _key_rules(cls: type, prefix: str = "", inherited: KeyRule | None = None) -> dict:
    out: dict[str, KeyRule] = {}
    for f in dataclasses.fields(cls):
        rule = f.metadata.get("rule", inherited or KeyRule())
        tp = typing.get_type_hints(cls)[f.name]
        if dataclasses.is_dataclass(tp):
            out.update(_key_rules(tp, f"{prefix}{f.name}.", f.metadata.get("rule")))
        else:
            out[f"{prefix}{f.name}"] = rule
    return out


KEY_RULES: dict[str, KeyRule] = _key_rules(Config)
"""Every dotted config key and what it may do (declared with :func:`setting` next to the key;
a section's rule applies to its keys without their own)."""
RUN_SETTINGS = tuple(k for k, r in KEY_RULES.items() if r.resume)
"""Keys a resumed run may change: how it executes and logs, and ``train.total_steps`` (a run
may grow). Not the device: the random generators' states cannot move between a CPU and a
GPU."""
FORK_KEYS = tuple(k for k, r in KEY_RULES.items() if r.fork)
"""Keys a fork may change; the rest shape the saved state."""
