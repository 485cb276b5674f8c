"""The training loop.

One :class:`Trainer` owns a run's state (networks, optimisers, buffers, generators, counters,
logger). :meth:`Trainer.advance` is the whole schedule of one env step, in this order:

1. act (uniform random during the warm-up, then the agent's exploring action: TD3's actor plus
   Gaussian noise, or a sample of SAC's policy), step the env, store the transition in the real
   replay buffer;
2. world-model training phase, if due (every ``world_model.train_every`` env steps from
   ``train.update_after`` on);
3. dream phase, if due (every ``dreaming.every`` env steps from ``dreaming.start_step`` on,
   once the model has trained): imagined rollouts from real start states into the dream buffer
   (``world_model.use: dreams``); or, learning through the model (``value_gradient``), a
   distribution rollout into the start-state pool instead (every
   ``value_gradient.distribution_every`` env steps from ``value_gradient.start_step`` on);
4. the agent's updates (from ``train.update_after`` on; how many:
   :meth:`Config.updates_per_step`; the agent's ``train``), on real batches, or real plus dream
   batches once dreams exist; learning through the model, with the value gradient as the
   actor objective once the pool has states;
5. log (every ``log.log_every`` steps), evaluate (every ``train.eval_every`` steps and at the
   last step), save the full training state (every ``train.checkpoint_every`` steps, at the next
   episode end).

Steps 2-3 exist only with a world model (``world_model.use: none``, ``--no-dreaming``, builds
none at all).
"""

from __future__ import annotations

import math
import shutil
import sys
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch

from spiking_dreamer.agent import PopSpikingActor, TwinQCritic, build_agent, build_policy
from spiking_dreamer.buffers import NonFiniteTransitionError, ReplayBuffer
from spiking_dreamer.config import Config, ConfigError
from spiking_dreamer.config_loading import save_config
from spiking_dreamer.dreaming import DreamEngine
from spiking_dreamer.envs import make_env, resolve_env_id
from spiking_dreamer.errors import RunDirError, TrainingDivergedError
from spiking_dreamer.files import atomic_write_json
from spiking_dreamer.provenance import versions
from spiking_dreamer.training.checkpoint import (
    FORMAT_VERSION,
    STATE_FORMAT,
    actor_checkpoint,
    atomic_torch_save,
    has_training_state,
    non_finite_modules,
    save_state_file,
)
from spiking_dreamer.training.evaluate import evaluate, firing_rates
from spiking_dreamer.training.logger import MetricsLogger
from spiking_dreamer.training.progress import RunProgress, run_phases
from spiking_dreamer.training.run_dir import (
    append_session,
    check_state_fits,
    fork_state,
    lock_run_dir,
    prepare_run_dir,
    resume_state,
    set_aside_unusable_state,
    state_path,
    storage_estimate,
)
from spiking_dreamer.training.seeding import restore_rng_state, rng_state, seed_everything
from spiking_dreamer.training.stopping import StopRequest, say

__all__ = ["RunDirError", "RunSummary", "Trainer", "TrainingDivergedError", "resolve_device"]


@dataclass(frozen=True)
class RunSummary:
    run_dir: Path
    steps: int
    final_return: float
    best_return: float
    env_steps_per_s: float
    wall_time_s: float


def _json_value(value: Any) -> Any:
    """A summary value as JSON other readers parse: a path as text, -inf/NaN as null (no best
    evaluation yet)."""
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _due(step: int, every: int, start: int) -> bool:
    """Whether a phase that runs every ``every`` env steps from ``start`` on runs at ``step``."""
    return step >= start and step % every == 0


class Trainer:
    """A PopSAN-TD3 (or PopSAN-SAC, ``agent.kind: sac``) training run, with or without a world
    model.

    Args:
        cfg: the fully resolved config.
        run_dir: where config, metrics, TensorBoard events and checkpoints go; must be new or
            empty.
        resume: a training state to continue from (see :meth:`resume`, :meth:`fork`).
        lock: the run directory's lock (:func:`~spiking_dreamer.training.run_dir.lock_run_dir`)
            when the caller already holds it (:meth:`resume` takes it before it reads the
            state); else it is taken here.
    """

    def __init__(
        self,
        cfg: Config,
        run_dir: Path,
        resume: dict | None = None,
        lock: IO[str] | None = None,
    ) -> None:
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.env_id = resolve_env_id(cfg.env.id)
        self.device = resolve_device(cfg.train.device)
        if cfg.train.threads > 0:
            torch.set_num_threads(cfg.train.threads)

        seed = cfg.train.seed
        self.np_rng = seed_everything(seed)  # the global torch generator initialises networks
        self.sample_generator = torch.Generator(self.device).manual_seed(seed + 1)
        noise_generator = torch.Generator(self.device).manual_seed(seed + 2)  # TD3's, SAC's

        self.env = make_env(self.env_id, cfg.env.kwargs)
        self.eval_envs = [
            make_env(self.env_id, cfg.env.kwargs) for _ in range(cfg.train.eval_episodes)
        ]
        obs_space, act_space = self.env.observation_space, self.env.action_space
        self.obs_dim, self.act_dim = obs_space.shape[0], act_space.shape[0]
        low = torch.as_tensor(act_space.low, dtype=torch.float32)
        high = torch.as_tensor(act_space.high, dtype=torch.float32)

        self.actor = build_policy(self.obs_dim, low, high, cfg).to(self.device)
        self.critic = TwinQCritic(self.obs_dim, self.act_dim, cfg.critic.hidden_sizes).to(
            self.device
        )
        self.agent = build_agent(cfg, self.actor, self.critic, noise_generator)
        if cfg.train.compile:
            self.agent.compile()
        capacity = min(cfg.train.replay_size, cfg.train.total_steps)
        self.buffer = ReplayBuffer(capacity, self.obs_dim, self.act_dim, self.device)
        self.dreaming: DreamEngine | None = None  # --no-dreaming builds no world model at all
        if cfg.uses_model:
            g_dream = torch.Generator(self.device).manual_seed(seed + 3)
            self.dreaming = DreamEngine(
                cfg, self.env_id, self.obs_dim, self.act_dim, self.actor, self.device, g_dream
            )

        self.step = 0
        self.best_return = -math.inf
        self.last_return = math.nan
        self.episode_return, self.episode_length = 0.0, 0
        self._needs_reset = True  # the env is reset lazily, so episode ends are clean boundaries
        self._obs: np.ndarray | None = None
        self._next_checkpoint = cfg.train.checkpoint_every
        self._stop = StopRequest()
        self._saved_step: int | None = None
        self._wall_time_before = 0.0  # of the run's earlier segments (a resumed run)
        self._start_time, self._start_step = time.perf_counter(), 0
        if resume is None:
            dreams = cfg.dreaming.buffer_size if self.dreaming else 0
            need = storage_estimate(self.obs_dim, self.act_dim, capacity + dreams)
            prepare_run_dir(self.run_dir, cfg, need)
        if lock is None:  # before anything in it is cut or rewritten
            lock = lock_run_dir(self.run_dir)
        self._lock = lock
        if resume is not None:
            self.load_state_dict(resume)
            save_config(cfg, self.run_dir / "config.yaml")  # with the settings the resume changed
        self.logger = MetricsLogger(
            self.run_dir, cfg.log, self.run_dir.name, cfg.to_dict(), resume and resume["logger"]
        )

    # ------------------------------------------------------------------------------ the loop

    def run(self) -> RunSummary:
        """Train for ``train.total_steps`` env steps; evaluate at step 0, every
        ``train.eval_every`` steps and at the last step. SIGINT/SIGTERM stop the run at the end
        of the episode, with its training state saved (``summary.steps`` < ``total_steps``)."""
        total, progress = self.cfg.train.total_steps, self.cfg.log.progress
        self.begin()
        desc, phases = f"{self.env_id} s{self.cfg.train.seed}", run_phases(self.cfg)
        bar = RunProgress(total, self.step, phases, desc, enabled=progress)
        try:
            with self._stop.installed():
                while self.step < total:
                    logged = self.advance()
                    bar.update(self.step, self.last_return)  # redraws on a timer
                    if logged and not progress:  # one line per log interval, for log files
                        say(
                            f"step {self.step:,}/{total:,}  eval return "
                            f"{self.last_return:.1f}  {self.env_steps_per_s():.0f} env steps/s",
                            sys.stdout,
                        )
                    if self._stop.requested and self._needs_reset:
                        if self._saved_step != self.step:  # keep the previous state as .prev
                            self.save_state()
                        break
                else:  # the run ends on an episode boundary: a longer resume starts an episode
                    self._needs_reset = True
                    self.episode_return, self.episode_length = 0.0, 0
                    if self._saved_step != self.step:  # keep the previous state as .prev
                        self.save_state()
        finally:
            bar.close()
        wall = self.wall_time_s()
        summary = RunSummary(
            self.run_dir, self.step, self.last_return, self.best_return, self.step / wall, wall
        )
        self.close()
        record = {k: _json_value(v) for k, v in asdict(summary).items()}
        atomic_write_json(self.run_dir / "summary.json", record, allow_nan=False)
        return summary

    def begin(self) -> None:
        """Seed the training env and evaluate the initial policy (step 0); a resumed run just
        continues."""
        self._start_time, self._start_step = time.perf_counter(), self.step
        self._losses: dict[str, torch.Tensor] = {}
        append_session(self.run_dir, self.step)
        if self.step == 0:
            seed = self.cfg.train.seed
            self._obs, _ = self.env.reset(seed=seed)
            self._needs_reset = False
            self.env.action_space.seed(seed)
            self._evaluate_and_checkpoint()

    def advance(self) -> bool:
        """One env step and everything due after it (the schedule in the module docstring);
        returns whether something was logged (for progress display)."""
        cfg, dreaming = self.cfg, self.dreaming
        self._env_step()
        step = self.step
        if dreaming is not None:
            wm, dc = cfg.world_model, cfg.dreaming
            phases: dict[str, float] = {}
            if _due(step, wm.train_every, cfg.train.update_after) and len(self.buffer) > 1:
                phases.update(dreaming.train_model(self.buffer))
            vg, vc = dreaming.value_gradient, cfg.value_gradient  # learning through the model
            if vg is None and _due(step, dc.every, dc.start_step) and dreaming.model_trained:
                phases.update(dreaming.dream(self.buffer, step))
            vg_due = _due(step, vc.distribution_every, vc.start_step)
            if vg is not None and vg_due and dreaming.model_trained:
                phases.update(vg.distribution_phase(self.buffer, self.actor))
            if phases:
                self.logger.log(step, phases)
        if step >= cfg.train.update_after:
            self._losses = self._update_agent()
        log_now = step % cfg.log.log_every == 0
        eval_now = step % cfg.train.eval_every == 0 or step == cfg.train.total_steps
        if log_now:
            self._log_losses()
        if eval_now:
            self._evaluate_and_checkpoint()
        if step >= self._next_checkpoint and self._needs_reset:
            self.save_state()
        return log_now or eval_now

    def _env_step(self) -> None:
        """Act, step the env, store the transition."""
        if self._needs_reset:
            self._obs, _ = self.env.reset()
            self._needs_reset = False
        obs = self._obs
        if self.step < self.cfg.train.start_steps:
            action = self.env.action_space.sample()
        else:
            action = self.agent.explore(obs, self.np_rng)
            if not np.isfinite(action).all():
                raise self._diverged(
                    f"the actor's action is non-finite at env step {self.step + 1}"
                )
        next_obs, reward, terminated, truncated, _ = self.env.step(action)
        try:
            self.buffer.add(obs, action, reward, next_obs, terminated)
        except NonFiniteTransitionError as e:
            raise self._diverged(
                f"non-finite transition at env step {self.step + 1} ({e})"
            ) from None
        self.actor.obs_normalizer.update(torch.as_tensor(obs))
        self.step += 1
        self.episode_return += float(reward)
        self.episode_length += 1
        self._obs = next_obs
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

    def _update_agent(self) -> dict[str, torch.Tensor]:
        """This env step's agent updates (the agent's ``train``), on real batches, or real plus
        dream batches once the dream buffer can fill its share; learning through the model,
        with the value gradient as the actor objective once its pool has states."""
        cfg, g, dreaming = self.cfg, self.sample_generator, self.dreaming
        with_dreams = dreaming is not None and dreaming.active
        size = cfg.agent_settings.batch_size
        if with_dreams:
            sample = lambda: dreaming.sample(self.buffer, size, g)  # noqa: E731
        else:
            sample = lambda: self.buffer.sample(size, g)  # noqa: E731
        vg = dreaming.value_gradient if dreaming is not None else None
        objective = vg if vg is not None and vg.ready else None
        return self.agent.train(cfg.updates_per_step(with_dreams), sample, objective)

    def _log_losses(self) -> None:
        record = {f"train/{k}": v.item() for k, v in self._losses.items()}
        if not all(math.isfinite(v) for v in record.values()):
            agent = self.cfg.agent.kind.upper()
            raise self._diverged(f"non-finite {agent} loss at step {self.step} ({record})")
        record["time/env_steps_per_s"] = self.env_steps_per_s()
        self.logger.log(self.step, record)

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
        # the untrained actor of the random warm-up (or of step 0) never counts (Ant: standing
        # earns reward)
        if self.step >= max(cfg.start_steps, 1) and self.last_return > self.best_return:
            self.best_return = self.last_return
            atomic_torch_save(ckpt, self.run_dir / "checkpoints" / "best.pt")

    def _log_firing_rates(self, n: int = 1000) -> None:
        """Per-population firing rates of a spiking actor on the latest real observations."""
        if not isinstance(self.actor, PopSpikingActor) or len(self.buffer) == 0:
            return
        idx = (self.buffer.pos - 1 - torch.arange(min(n, len(self.buffer)))) % len(self.buffer)
        cfg = self.cfg.train
        g = torch.Generator(self.device).manual_seed(cfg.seed + cfg.eval_seed_offset)
        rates = firing_rates(self.actor, self.buffer.obs[idx.to(self.device)], g)
        self.logger.log(self.step, {f"actor/firing_rate/{k}": v for k, v in rates.items()})

    def env_steps_per_s(self) -> float:
        """Env steps per second since :meth:`begin`, evaluations and model phases included."""
        elapsed = max(time.perf_counter() - self._start_time, 1e-9)
        return (self.step - self._start_step) / elapsed

    def wall_time_s(self) -> float:
        """Seconds the run has trained, over all its segments (a resumed run continues the
        count of its saved state; the time after a state's save is lost with a crash)."""
        return self._wall_time_before + max(time.perf_counter() - self._start_time, 1e-9)

    def _diverged(self, what: str) -> TrainingDivergedError:
        return TrainingDivergedError(
            f"{what}; nothing of it was stored: the last good training state is in "
            f"{self.run_dir / 'checkpoints'} (resume with --resume)"
        )

    def close(self) -> None:
        """Close the logger and the environments, and release the run directory."""
        self.logger.close()
        for env in [self.env, *self.eval_envs]:
            env.close()
        self._lock.close()

    # ------------------------------------------------------------------- saved training state

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
        save_state_file(self.state_dict(), state_path(self.run_dir))
        self._saved_step = self.step
        every = self.cfg.train.checkpoint_every
        self._next_checkpoint = (self.step // every + 1) * every

    def _non_finite_networks(self) -> list[str]:
        """Names of the networks with a NaN or infinite parameter."""
        nets = {"actor": self.actor, "critic": self.critic}
        nets |= self.agent.target_networks
        if self.dreaming is not None:
            nets["world model"] = self.dreaming.model
        return non_finite_modules(nets)

    def _generators(self) -> dict[str, torch.Generator]:
        noise = "policy_noise" if self.cfg.agent.kind == "sac" else "target_noise"
        return {"sample": self.sample_generator, noise: self.agent.generator}

    def state_dict(self) -> dict[str, Any]:
        """Everything a resumed run needs to continue exactly as if never stopped."""
        agent = self.agent.state_dict()
        num_updates = agent.pop("num_updates")
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
                "num_updates": num_updates,
            },
            "timing": {"wall_time_s": self.wall_time_s()},  # not behaviour: kept apart
            **agent,  # actor, critic, targets, optimisers (SAC: the temperature), latest losses
            "buffer": self.buffer.state_dict(),
            "dreaming": self.dreaming.state_dict() if self.dreaming is not None else None,
            "rng": rng_state(self.device, self.np_rng, self._generators(), self.env),
            "logger": self.logger.positions(self.step),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` (the run directory's logs are cut back by the logger)."""
        env = (self.env_id, self.obs_dim, self.act_dim)
        check_state_fits(state, env, self.dreaming is not None, self.device)
        c = state["counters"]
        self.step, self.best_return, self.last_return = (
            c["step"],
            c["best_return"],
            c["last_return"],
        )
        self.episode_return, self.episode_length = c["episode_return"], c["episode_length"]
        self._wall_time_before = state.get("timing", {}).get("wall_time_s", 0.0)
        self._saved_step = c["step"]
        self.agent.load_state_dict({**state, "num_updates": c["num_updates"]})
        self.buffer.load_state_dict(state["buffer"])
        if self.dreaming is not None:
            self.dreaming.load_state_dict(state["dreaming"])
        restore_rng_state(state["rng"], self.np_rng, self._generators(), self.env)
        self._needs_reset = True
        every = self.cfg.train.checkpoint_every
        self._next_checkpoint = (self.step // every + 1) * every

    @classmethod
    def resume(cls, run_dir: str | Path, settings: Mapping[str, Any] | None = None) -> Trainer:
        """Continue the run in ``run_dir`` from its newest verifiable training state, with its
        stored config but for the dotted run ``settings`` given (:data:`RUN_SETTINGS`: logging,
        threads, compile), e.g. ``{"log.wandb": True}``."""
        run_dir = Path(run_dir)
        # locked before the state is read, so that no other trainer saves in between
        lock = lock_run_dir(run_dir) if has_training_state(run_dir) else None
        try:
            cfg, state, used = resume_state(run_dir, settings)
            aside = set_aside_unusable_state(run_dir, used)
            if aside is not None:
                print(f"warning: the unusable newest state is kept as {aside}")
            return cls(cfg, run_dir, resume=state, lock=lock)
        except BaseException:
            if lock is not None:
                lock.close()
            raise

    @classmethod
    def fork(
        cls,
        parent_dir: str | Path,
        run_dir: str | Path,
        overrides: list[str],
        step: int | None = None,
    ) -> Trainer:
        """A new run in ``run_dir`` that continues ``parent_dir``'s training state (the newest,
        or the one saved at env step ``step``) with the settings in ``overrides`` changed (see
        :func:`~spiking_dreamer.training.run_dir.fork_state`). Actor checkpoints
        (``best``/``last``) start afresh."""
        run_dir = Path(run_dir)
        existed = run_dir.is_dir()  # and empty: fork_state refuses any other
        cfg, state = fork_state(Path(parent_dir), run_dir, overrides, step)
        try:
            return cls(cfg, run_dir, resume=state)
        except BaseException:  # e.g. the state cannot continue on this device: leave nothing
            shutil.rmtree(run_dir, ignore_errors=True)
            if existed:
                run_dir.mkdir()
            raise


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cuda`` without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"train.device: {name!r} requested but CUDA is not available")
    return torch.device(name)
