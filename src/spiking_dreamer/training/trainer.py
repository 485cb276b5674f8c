"""The training loop: random warm-up, then one TD3 update per env step, periodic evaluation.

One :class:`Trainer` owns every piece of run state (networks, optimisers, buffer, RNGs, counters,
logger), so a run is a plain object that can be inspected, stepped and checkpointed.
"""

from __future__ import annotations

import json
import math
import random
import shutil
import signal
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from spiking_dreamer.agent import TD3, PopSpikingActor, TwinQCritic, build_actor
from spiking_dreamer.buffers import NonFiniteTransitionError, ReplayBuffer, Source
from spiking_dreamer.config import (
    Config,
    ConfigError,
    apply_overrides,
    config_from_dict,
    flatten_keys,
    save_config,
    with_run_settings,
)
from spiking_dreamer.dreaming import DreamEngine
from spiking_dreamer.envs import make_env, resolve_env_id
from spiking_dreamer.errors import RunDirError, TrainingDivergedError
from spiking_dreamer.provenance import versions
from spiking_dreamer.training.checkpoint import (
    FORMAT_VERSION,
    STATE_FORMAT,
    CheckpointError,
    actor_checkpoint,
    atomic_torch_save,
    load_state_file,
    read_state,
    save_state_file,
)
from spiking_dreamer.training.evaluate import evaluate
from spiking_dreamer.training.logger import MetricsLogger


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cuda`` without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"train.device: {name!r} requested but CUDA is not available")
    return torch.device(name)


FORK_KEYS = (
    "train.total_steps",
    "train.eval_every",
    "train.checkpoint_every",
    "train.updates_per_step",
    "train.compile",
    "train.threads",
    "td3.batch_size",
    "td3.gamma",
    "td3.tau",
    "td3.policy_delay",
    "td3.exploration_noise",
    "td3.target_noise",
    "td3.noise_clip",
    "td3.firing_rate_penalty",
    "world_model.batch_size",
    "world_model.grad_clip",
    "world_model.train_every",
    "world_model.train_steps",
    "world_model.holdout_every",
    "world_model.max_holdout",
    "world_model.patience",
    "dreaming.start_step",
    "dreaming.every",
    "dreaming.rollout_batch",
    "dreaming.horizon",
    "dreaming.horizon_schedule",
    "dreaming.threshold",
    "dreaming.threshold_decay",
    "dreaming.adaptive_threshold",
    "dreaming.target_acceptance",
    "dreaming.adapt_rate",
    "dreaming.min_accept_quantile",
    "dreaming.calibrate_threshold",
    "dreaming.uncertainty",
    "dreaming.uncertainty_members",
    "dreaming.transition",
    "dreaming.penalty",
    "dreaming.exploration_noise",
    "dreaming.real_ratio",
    "dreaming.updates_per_step",
    "dreaming.recent_fraction",
    "dreaming.recent_window",
    "log.*",
)
"""Settings a :meth:`Trainer.fork` may change (``section.*``: all of it); the rest shape the
saved state."""


def _forkable(key: str) -> bool:
    return key in FORK_KEYS or f"{key.split('.')[0]}.*" in FORK_KEYS


def _state_at(path: Path, step: int | None) -> tuple[dict, Path]:
    """The newest verifiable training state at ``path`` (or its ``.prev``), or the one saved at
    env step ``step``."""
    if step is None:
        state, used, _ = load_state_file(path)
        return state, used
    seen = []
    for candidate in (path, path.with_name(path.name + ".prev")):
        if candidate.exists():
            try:
                state = read_state(candidate)
            except CheckpointError as e:
                seen.append(str(e))
                continue
            if state["counters"]["step"] == step:
                return state, candidate
            seen.append(f"{candidate.name}: step {state['counters']['step']}")
    raise CheckpointError(f"no training state at step {step} in {path.parent} ({'; '.join(seen)})")


def default_run_dir(cfg: Config) -> Path:
    arm = "dreaming" if cfg.dreaming.enabled else "baseline"
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path(cfg.log.run_root) / f"{cfg.env.id}__{arm}__s{cfg.train.seed}__{stamp}"


@dataclass(frozen=True)
class RunSummary:
    run_dir: Path
    steps: int
    final_return: float
    best_return: float
    env_steps_per_s: float
    wall_time_s: float


class Trainer:
    """A PopSAN-TD3 training run.

    Args:
        cfg: the fully resolved config.
        run_dir: where config, metrics, TensorBoard events and checkpoints go; must be new or
            empty.
    """

    def __init__(self, cfg: Config, run_dir: Path, resume: dict | None = None) -> None:
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.env_id = resolve_env_id(cfg.env.id)
        self.device = resolve_device(cfg.train.device)
        if cfg.train.threads > 0:
            torch.set_num_threads(cfg.train.threads)

        seed = cfg.train.seed
        random.seed(seed)
        np.random.seed(seed)  # noqa: NPY002 (third-party code may draw from it)
        torch.manual_seed(seed)  # network initialisation
        self.np_rng = np.random.default_rng(seed)
        self.sample_generator = torch.Generator(self.device).manual_seed(seed + 1)
        noise_generator = torch.Generator(self.device).manual_seed(seed + 2)

        self.env = make_env(self.env_id, cfg.env.kwargs)
        self.eval_envs = [
            make_env(self.env_id, cfg.env.kwargs) for _ in range(cfg.train.eval_episodes)
        ]
        obs_space, act_space = self.env.observation_space, self.env.action_space
        self.obs_dim, self.act_dim = obs_space.shape[0], act_space.shape[0]
        low = torch.as_tensor(act_space.low, dtype=torch.float32)
        high = torch.as_tensor(act_space.high, dtype=torch.float32)

        self.actor = build_actor(self.obs_dim, low, high, cfg.actor).to(self.device)
        self.critic = TwinQCritic(self.obs_dim, self.act_dim, cfg.critic.hidden_sizes).to(
            self.device
        )
        self.agent = TD3(self.actor, self.critic, cfg.td3, noise_generator)
        if cfg.train.compile:
            self.agent.compile()
        capacity = min(cfg.train.replay_size, cfg.train.total_steps)
        self.buffer = ReplayBuffer(capacity, self.obs_dim, self.act_dim, self.device)
        self.dreaming: DreamEngine | None = None  # --no-dreaming builds no world model at all
        if cfg.dreaming.enabled:
            dream_generator = torch.Generator(self.device).manual_seed(seed + 3)
            self.dreaming = DreamEngine(
                cfg,
                self.env_id,
                self.obs_dim,
                self.act_dim,
                self.actor,
                self.device,
                dream_generator,
            )

        self.step = 0
        self.best_return = -math.inf
        self.last_return = math.nan
        self.episode_return, self.episode_length = 0.0, 0
        self._needs_reset = True  # the env is reset lazily, so episode ends are clean boundaries
        self._obs: np.ndarray | None = None
        self._next_checkpoint = cfg.train.checkpoint_every
        self._stop_requested = False
        self._saved_step: int | None = None
        if resume is None:
            self._prepare_run_dir()
        else:
            self.load_state_dict(resume)
        self.logger = MetricsLogger(
            self.run_dir, cfg.log, self.run_dir.name, cfg.to_dict(), resume and resume["logger"]
        )

    @classmethod
    def resume(cls, run_dir: str | Path, settings: Mapping[str, Any] | None = None) -> Trainer:
        """Continue the run in ``run_dir`` from its newest verifiable training state, with its
        stored config but for the dotted run ``settings`` given (:data:`RUN_SETTINGS`: logging,
        threads, compile), e.g. ``{"log.wandb": True}``."""
        run_dir = Path(run_dir)
        path = run_dir / "checkpoints" / "state.pt"
        if not run_dir.is_dir():
            raise RunDirError(f"no run directory {run_dir} to resume")
        state, used, problems = load_state_file(path)
        for problem in problems:
            print(f"warning: {problem}; using {used}")
        stored = with_run_settings(state["config"], settings or {})
        cfg = config_from_dict(stored, f"{used} (stored config)")
        return cls(cfg, run_dir, resume=state)

    @classmethod
    def fork(
        cls,
        parent_dir: str | Path,
        run_dir: str | Path,
        overrides: list[str],
        step: int | None = None,
    ) -> Trainer:
        """A new run in ``run_dir`` that continues ``parent_dir``'s training state (the newest,
        or the one saved at env step ``step``) with the settings in ``overrides`` changed.

        Only settings that do not shape saved tensors may change (:data:`FORK_KEYS`); the
        parent's logs up to the fork step are copied, so the fork's curves start at step 0.
        Actor checkpoints (``best``/``last``) start afresh; the fork gets its own W&B run.
        Changing ``dreaming.threshold`` also resets the adaptive threshold to it.
        """
        parent_dir, run_dir = Path(parent_dir), Path(run_dir)
        state, used = _state_at(parent_dir / "checkpoints" / "state.pt", step)
        old = state["config"]
        new = config_from_dict(apply_overrides(old, overrides), "--set overrides of the fork")
        changed = sorted(
            k for k, v in flatten_keys(new.to_dict()).items() if flatten_keys(old).get(k) != v
        )
        if state["dreaming"] is None:
            idle = [k for k in changed if k.startswith(("dreaming.", "world_model."))]
            if idle:
                raise ConfigError(
                    f"{parent_dir} is a --no-dreaming run: {', '.join(idle)} would change nothing"
                )
        if "train.device" in changed:
            raise ConfigError(
                "a fork keeps its parent's train.device: the random generators' states cannot "
                "move between a CPU and a GPU"
            )
        frozen = [k for k in changed if not _forkable(k)]
        if frozen:
            raise ConfigError(
                f"a fork cannot change {', '.join(frozen)}: it shapes the saved networks, "
                f"buffers or optimisers; changeable: {', '.join(FORK_KEYS)}"
            )
        cap = min(new.train.replay_size, new.train.total_steps)
        if cap != state["buffer"]["capacity"]:
            raise ConfigError(
                f"train.total_steps={new.train.total_steps} gives a replay buffer of {cap}, but "
                f"the parent's holds {state['buffer']['capacity']} (the capacity is "
                "min(train.replay_size, train.total_steps))"
            )
        if run_dir.exists() and any(run_dir.iterdir()):
            raise RunDirError(f"run directory {run_dir} is not empty; choose another --run-dir")
        (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
        for name in ("metrics.jsonl", "eval.jsonl"):
            if (parent_dir / name).exists():
                shutil.copy2(parent_dir / name, run_dir / name)
        if (parent_dir / "tb").is_dir():
            shutil.copytree(parent_dir / "tb", run_dir / "tb")
        state["config"] = new.to_dict()
        state["logger"]["wandb_id"] = None
        if "dreaming.threshold" in changed and state["dreaming"] is not None:
            state["dreaming"]["threshold"] = new.dreaming.threshold
        save_config(new, run_dir / "config.yaml")
        record = {"parent": str(parent_dir), "state": str(used), "step": state["counters"]["step"]}
        (run_dir / "fork.json").write_text(json.dumps({**record, "changed": changed}) + "\n")
        save_state_file(state, run_dir / "checkpoints" / "state.pt")
        return cls(new, run_dir, resume=state)

    def _prepare_run_dir(self) -> None:
        d = self.run_dir
        if d.exists() and any(d.iterdir()):
            raise RunDirError(f"run directory {d} is not empty; choose another --run-dir")
        try:
            d.mkdir(parents=True, exist_ok=True)
            (d / "checkpoints").mkdir(exist_ok=True)
            save_config(self.cfg, d / "config.yaml")
        except OSError as e:
            raise RunDirError(f"cannot write to run directory {d}: {e}") from None
        need = self._storage_estimate()
        free = shutil.disk_usage(d).free
        if free < need:
            raise RunDirError(
                f"{d}: {free / 2**30:.2f} GiB free, but the replay buffer and its checkpoints "
                f"need about {need / 2**30:.2f} GiB"
            )

    def _storage_estimate(self) -> int:
        """Bytes a full training-state checkpoint and its previous copy take, at most."""
        per_transition = 4 * (2 * self.obs_dim + self.act_dim + 2) + 1
        n = self.buffer.capacity + (self.cfg.dreaming.buffer_size if self.dreaming else 0)
        return 2 * n * per_transition

    def _evaluate_and_checkpoint(self) -> None:
        cfg = self.cfg.train
        self.actor.eval()
        returns, lengths = evaluate(self.actor, self.eval_envs, cfg.seed + cfg.eval_seed_offset)
        self.actor.train()
        self.logger.log_eval(self.step, returns, lengths)
        self._log_firing_rates()
        self.last_return = float(np.mean(returns))
        ckpt = actor_checkpoint(self.actor, self.cfg, self.env_id, self.step, self.last_return)
        atomic_torch_save(ckpt, self.run_dir / "checkpoints" / "last.pt")
        if self.last_return > self.best_return:
            self.best_return = self.last_return
            atomic_torch_save(ckpt, self.run_dir / "checkpoints" / "best.pt")

    @torch.no_grad()
    def _log_firing_rates(self, n: int = 1000) -> None:
        """Per-population firing rates of the spiking actor on the latest real observations."""
        if not isinstance(self.actor, PopSpikingActor) or len(self.buffer) == 0:
            return
        idx = (self.buffer.pos - 1 - torch.arange(min(n, len(self.buffer)))) % len(self.buffer)
        trains = self.actor.spike_trains(self.buffer.obs[idx.to(self.device)])
        names = ["encoder", *[f"hidden{i}" for i in range(1, len(trains) - 1)], "output"]
        rates = {
            f"actor/firing_rate/{k}": t.mean().item() for k, t in zip(names, trains, strict=True)
        }
        self.logger.log(self.step, rates)

    def begin(self) -> None:
        """Seed the training env and evaluate the initial policy (step 0); a resumed run just
        continues."""
        self._start_time, self._start_step = time.perf_counter(), self.step
        self._losses: dict[str, torch.Tensor] = {}
        if self.step == 0:
            seed = self.cfg.train.seed
            self._obs, _ = self.env.reset(seed=seed)
            self._needs_reset = False
            self.env.action_space.seed(seed)
            self._evaluate_and_checkpoint()

    def env_steps_per_s(self) -> float:
        """Env steps per second since :meth:`begin`, evaluations and model phases included."""
        elapsed = max(time.perf_counter() - self._start_time, 1e-9)
        return (self.step - self._start_step) / elapsed

    def advance(self) -> bool:
        """One env step plus the TD3 updates, model/dream phases, logging and evaluation due
        after it; returns whether something was logged (for progress display)."""
        cfg = self.cfg.train
        self._obs = self._env_step(self._obs)
        if self.dreaming is not None:
            dream_metrics = self.dreaming.on_env_step(self.step, self.buffer)
            if dream_metrics:
                self.logger.log(self.step, dream_metrics)
        if self.step >= cfg.update_after:
            self._losses = self._update_agent()
        log_now = self.step % self.cfg.log.log_every == 0
        eval_now = self.step % cfg.eval_every == 0 or self.step == cfg.total_steps
        if log_now:
            record = {f"train/{k}": v.item() for k, v in self._losses.items()}
            if not all(math.isfinite(v) for v in record.values()):
                raise self._diverged(f"non-finite TD3 loss at step {self.step} ({record})")
            record["time/env_steps_per_s"] = self.env_steps_per_s()
            self.logger.log(self.step, record)
        if eval_now:
            self._evaluate_and_checkpoint()
        if self.step >= self._next_checkpoint and self._needs_reset:
            self.save_state()
        return log_now or eval_now

    def _diverged(self, what: str) -> TrainingDivergedError:
        return TrainingDivergedError(
            f"{what}; nothing of it was stored: the last good training state is in "
            f"{self.run_dir / 'checkpoints'} (resume with --resume)"
        )

    def save_state(self) -> None:
        """Write the full training state (only at an episode boundary, so the env needs no
        mid-episode physics state)."""
        if not self._needs_reset:
            raise RuntimeError("training state is saved at episode boundaries only")
        broken = self._non_finite_networks()
        if broken:  # never replace a good state with a diverged one
            raise TrainingDivergedError(
                f"non-finite parameters in {', '.join(broken)} at step {self.step}; not saved: "
                f"the last good training state (step {self._saved_step}) is in "
                f"{self.run_dir / 'checkpoints'} (resume with --resume)"
            )
        save_state_file(self.state_dict(), self.run_dir / "checkpoints" / "state.pt")
        self._saved_step = self.step
        every = self.cfg.train.checkpoint_every
        self._next_checkpoint = (self.step // every + 1) * every

    def _non_finite_networks(self) -> list[str]:
        """Names of the networks with a NaN or infinite parameter (one device sync)."""
        nets = {
            "actor": self.actor,
            "critic": self.critic,
            "target actor": self.agent.actor_target,
            "target critic": self.agent.critic_target,
        }
        if self.dreaming is not None:
            nets["world model"] = self.dreaming.model
        finite = torch.stack(
            [torch.stack([p.isfinite().all() for p in n.parameters()]).all() for n in nets.values()]
        ).tolist()
        return [name for name, ok in zip(nets, finite, strict=True) if not ok]

    def state_dict(self) -> dict:
        """Everything a resumed run needs to continue exactly as if never stopped."""
        agent = self.agent
        cuda = torch.cuda.get_rng_state_all() if self.device.type == "cuda" else []
        return {
            "format": STATE_FORMAT,
            "format_version": FORMAT_VERSION,
            "versions": versions(),
            "config": self.cfg.to_dict(),
            "env": {"id": self.env_id, "obs_dim": self.obs_dim, "act_dim": self.act_dim},
            "counters": {
                "step": self.step,
                "best_return": self.best_return,
                "last_return": self.last_return,
                "episode_return": self.episode_return,
                "episode_length": self.episode_length,
                "num_updates": agent.num_updates,
            },
            "actor": self.actor.state_dict(),
            "critic": self.critic.state_dict(),
            "actor_target": agent.actor_target.state_dict(),
            "critic_target": agent.critic_target.state_dict(),
            "actor_optimizer": agent.actor_optimizer.state_dict(),
            "critic_optimizer": agent.critic_optimizer.state_dict(),
            "actor_loss": agent._actor_loss,
            "buffer": self.buffer.state_dict(),
            "dreaming": self.dreaming.state_dict() if self.dreaming is not None else None,
            "rng": {
                "python": random.getstate(),
                "numpy": self.np_rng.bit_generator.state,
                "torch": torch.get_rng_state(),
                "cuda": cuda,
                "sample": self.sample_generator.get_state(),
                "target_noise": agent.generator.get_state(),
                "env": self.env.unwrapped.np_random.bit_generator.state,
                "action_space": self.env.action_space.np_random.bit_generator.state,
            },
            "logger": self.logger.positions(self.step),
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict` (the run directory's logs are cut back by the logger)."""
        env = state["env"]
        if (env["id"], env["obs_dim"], env["act_dim"]) != (self.env_id, self.obs_dim, self.act_dim):
            raise CheckpointError(
                f"training state is for {env['id']} (obs {env['obs_dim']}, act {env['act_dim']}), "
                f"this run is {self.env_id} (obs {self.obs_dim}, act {self.act_dim})"
            )
        if (state["dreaming"] is None) != (self.dreaming is None):
            raise CheckpointError("training state and config disagree on dreaming")
        saved_on = "cuda" if state["rng"]["cuda"] else "cpu"
        if saved_on != self.device.type:
            raise CheckpointError(
                f"training state was saved on {saved_on} and this run is on {self.device} "
                f"(train.device: {self.cfg.train.device}): its random generators cannot continue "
                f"on another kind of device; continue it on {saved_on}"
            )
        agent, c = self.agent, state["counters"]
        self.step, self.best_return, self.last_return = (
            c["step"],
            c["best_return"],
            c["last_return"],
        )
        self.episode_return, self.episode_length = c["episode_return"], c["episode_length"]
        agent.num_updates = c["num_updates"]
        self._saved_step = c["step"]
        self.actor.load_state_dict(state["actor"])
        self.critic.load_state_dict(state["critic"])
        agent.actor_target.load_state_dict(state["actor_target"])
        agent.critic_target.load_state_dict(state["critic_target"])
        agent.actor_optimizer.load_state_dict(state["actor_optimizer"])
        agent.critic_optimizer.load_state_dict(state["critic_optimizer"])
        agent._actor_loss = state["actor_loss"]
        self.buffer.load_state_dict(state["buffer"])
        if self.dreaming is not None:
            self.dreaming.load_state_dict(state["dreaming"])
        rng = state["rng"]
        random.setstate(rng["python"])
        self.np_rng.bit_generator.state = rng["numpy"]
        torch.set_rng_state(rng["torch"])
        if rng["cuda"]:
            torch.cuda.set_rng_state_all(rng["cuda"])
        self.sample_generator.set_state(rng["sample"])
        agent.generator.set_state(rng["target_noise"])
        self.env.unwrapped.np_random.bit_generator.state = rng["env"]
        self.env.action_space.np_random.bit_generator.state = rng["action_space"]
        self._needs_reset = True
        every = self.cfg.train.checkpoint_every
        self._next_checkpoint = (self.step // every + 1) * every

    @contextmanager
    def _stop_on_signals(self) -> Iterator[None]:
        """SIGINT/SIGTERM: finish the current episode, save the training state, stop. A second
        signal stops at once (the last saved state stays valid)."""

        def handler(signum: int, frame: object) -> None:
            if self._stop_requested:
                raise KeyboardInterrupt
            self._stop_requested = True
            print(
                f"\n{signal.Signals(signum).name}: saving the training state at the end of this "
                "episode (send again to stop at once)",
                file=sys.stderr,
            )

        previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for s, h in previous.items():
                signal.signal(s, h)

    def run(self) -> RunSummary:
        """Train for ``train.total_steps`` env steps; evaluate at step 0, every
        ``train.eval_every`` steps and at the last step."""
        total = self.cfg.train.total_steps
        self.begin()
        bar = tqdm(
            total=total,
            initial=self.step,
            disable=not self.cfg.log.progress,
            unit="step",
            dynamic_ncols=True,
            desc=f"{self.env_id} s{self.cfg.train.seed}",
        )
        try:
            with self._stop_on_signals():
                while self.step < total:
                    if self.advance():
                        bar.update(self.step - bar.n)
                        sps = self.env_steps_per_s()
                        bar.set_postfix(sps=f"{sps:.0f}", eval=f"{self.last_return:.0f}")
                    if self._stop_requested and self._needs_reset:
                        self.save_state()
                        break
                else:
                    self._needs_reset = True  # the run ends on an episode boundary
                    if self._saved_step != self.step:  # keep the previous state as .prev
                        self.save_state()
        finally:
            bar.close()
        if self.step < total:
            print(f"stopped at step {self.step}; continue with --resume {self.run_dir}")
        summary = RunSummary(
            self.run_dir,
            self.step,
            self.last_return,
            self.best_return,
            self.env_steps_per_s(),
            time.perf_counter() - self._start_time,
        )
        self.close()
        record = {k: str(v) if isinstance(v, Path) else v for k, v in asdict(summary).items()}
        (self.run_dir / "summary.json").write_text(json.dumps(record))
        return summary

    def close(self) -> None:
        """Close the logger and the environments."""
        self.logger.close()
        for env in [self.env, *self.eval_envs]:
            env.close()

    def _update_agent(self) -> dict[str, torch.Tensor]:
        """TD3 updates for this env step (with dream transitions mixed in once available)."""
        cfg, losses = self.cfg, {}
        if self.dreaming is not None and self.dreaming.active:
            for _ in range(cfg.dreaming.updates_per_step):
                batch = self.dreaming.sample(self.buffer, cfg.td3.batch_size, self.sample_generator)
                losses = self.agent.update(batch)
        else:
            for _ in range(cfg.train.updates_per_step):
                batch = self.buffer.sample(cfg.td3.batch_size, self.sample_generator)
                losses = self.agent.update(batch)
        return losses

    def _env_step(self, obs: np.ndarray | None) -> np.ndarray:
        """Act, step the env, store the transition; returns the observation reached."""
        if self._needs_reset:
            obs, _ = self.env.reset()
            self._needs_reset = False
        if self.step < self.cfg.train.start_steps:
            action = self.env.action_space.sample()
        else:
            action = self.agent.act(obs, self.np_rng, self.cfg.td3.exploration_noise)
            if not np.isfinite(action).all():
                raise self._diverged(
                    f"the actor's action is non-finite at env step {self.step + 1}"
                )
        next_obs, reward, terminated, truncated, _ = self.env.step(action)
        try:
            self.buffer.add(obs, action, reward, next_obs, terminated, Source.REAL)
        except NonFiniteTransitionError as e:
            raise self._diverged(
                f"non-finite transition at env step {self.step + 1} ({e})"
            ) from None
        self.actor.obs_normalizer.update(torch.as_tensor(obs))
        self.step += 1
        self.episode_return += float(reward)
        self.episode_length += 1
        if terminated or truncated:
            self.logger.log(
                self.step,
                {
                    "train/episode_return": self.episode_return,
                    "train/episode_length": self.episode_length,
                },
            )
            self.episode_return, self.episode_length = 0.0, 0
            self._needs_reset = True
        return next_obs
