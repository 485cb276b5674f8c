"""The model-based half of a run: the world model, its trainer, the dream buffer and the dreamer,
and how dreams are mixed into the agent's batches. The training loop decides when each phase
runs."""

from __future__ import annotations

import math

import torch

from spiking_dreamer.agent import Actor
from spiking_dreamer.buffers import Batch, ReplayBuffer
from spiking_dreamer.config import Config
from spiking_dreamer.dreaming.buffer import DreamBuffer
from spiking_dreamer.dreaming.dreamer import Dreamer
from spiking_dreamer.dreaming.value_gradient_learner import ValueGradientLearner
from spiking_dreamer.termination import termination_fn
from spiking_dreamer.world_model import ModelTrainer, build_world_model


class DreamEngine:
    """World model (the kind ``world_model.kind`` names), its trainer, the dream buffer and the
    dreamer of one run; with ``world_model.use: value_gradient``, also the
    :class:`ValueGradientLearner` (learning through the model instead of from its dreams).

    The phases run when the training loop calls them (:meth:`train_model`, :meth:`dream`;
    see :meth:`~spiking_dreamer.training.trainer.Trainer.advance`). Each phase's cost is bounded
    (``world_model.train_steps`` gradient steps, ``dreaming.rollout_batch x horizon`` model
    steps).
    """

    def __init__(
        self,
        cfg: Config,
        env_id: str,
        obs_dim: int,
        act_dim: int,
        actor: Actor,
        device: torch.device,
        generator: torch.Generator,
    ) -> None:
        self.cfg = cfg
        term = termination_fn(
            env_id, cfg.env.kwargs, allow_never=cfg.world_model.assume_never_terminates
        )
        # Initialised from the global CPU generator like the agent's networks, but without
        # advancing it: a Bernoulli actor encoder draws from it, and a dreaming run must draw
        # the same numbers as its --no-dreaming baseline until its first dream phase.
        with torch.random.fork_rng(devices=[]):
            self.model = build_world_model(obs_dim, act_dim, cfg.world_model).to(device)
        self.model_trainer = ModelTrainer(self.model, cfg.world_model, generator)
        self.buffer = DreamBuffer(cfg.dreaming.buffer_size, obs_dim, act_dim, device)
        self.dreamer = Dreamer(self.model, actor, term, cfg.dreaming, generator)
        self.generator = generator
        self.value_gradient: ValueGradientLearner | None = None  # learning through the model
        if cfg.world_model.use == "value_gradient":
            self.value_gradient = ValueGradientLearner(
                cfg.value_gradient, self.model, term, obs_dim, generator
            )

    @property
    def model_trained(self) -> bool:
        """Whether the world model has had a training phase (dreams need one)."""
        return self.model_trainer.version > 0

    def train_model(self, real: ReplayBuffer) -> dict[str, float]:
        """A world-model training phase on the real transitions; returns its metrics and the
        model's diagnostics over the phase's forwards (``model/<name>``, e.g. the spiking
        model's per-block firing rates)."""
        self.model.reset_diagnostics()
        metrics = self.model_trainer.train_phase(real)
        metrics.update({f"model/{k}": v for k, v in self.model.diagnostics().items()})
        return metrics

    def dream(self, real: ReplayBuffer, step: int) -> dict[str, float]:
        """A dream phase from real start states at env step ``step``; returns its statistics,
        the model's latest hold-out MSE and its diagnostics over the phase's forwards
        (``dream/<name>``)."""
        self.model.reset_diagnostics()
        metrics = self.dreamer.phase(real, self.buffer, step, self.model_trainer.version)
        metrics["dream/model_holdout_mse"] = self.model_trainer.last_holdout_mse
        metrics.update({f"dream/{k}": v for k, v in self.model.diagnostics().items()})
        return metrics

    def sample(self, real: ReplayBuffer, batch_size: int, generator: torch.Generator) -> Batch:
        """An agent's batch: ``real_ratio`` real and the rest dream transitions once enough
        dreams exist, all real before."""
        n_dream = batch_size - round(self.cfg.dreaming.real_ratio * batch_size)
        if n_dream == 0 or len(self.buffer) < n_dream:
            return real.sample(batch_size, generator)
        r = real.sample(batch_size - n_dream, generator)
        d = self.buffer.sample(n_dream, generator)
        return Batch(*(torch.cat([a, b]) for a, b in zip(r, d, strict=True)))

    def state_dict(self) -> dict[str, object]:
        """Everything needed to continue exactly: model (with normalisers and elites), its
        optimiser and version, the dream buffer, the adaptive threshold and the generator."""
        return {
            "model": self.model.state_dict(),
            "optimizer": self.model_trainer.optimizer.state_dict(),
            "version": self.model_trainer.version,
            "skipped_steps": self.model_trainer.skipped_steps,
            "holdout_mse": self.model_trainer.last_holdout_mse,
            "buffer": self.buffer.state_dict(),
            "threshold": self.dreamer.threshold,
            "threshold_calibrated": self.dreamer.calibrated,
            "generator": self.generator.get_state(),
            "value_gradient": (
                self.value_gradient.state_dict() if self.value_gradient is not None else None
            ),
        }

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.model_trainer.optimizer.load_state_dict(state["optimizer"])
        self.model_trainer.version = state["version"]
        self.model_trainer.skipped_steps = state["skipped_steps"]
        self.model_trainer.last_holdout_mse = state.get("holdout_mse", math.nan)
        self.buffer.load_state_dict(state["buffer"])
        self.dreamer.threshold = state["threshold"]
        self.dreamer.calibrated = state.get("threshold_calibrated", False)
        self.generator.set_state(state["generator"])
        if self.value_gradient is not None:
            self.value_gradient.load_state_dict(state["value_gradient"])

    @property
    def active(self) -> bool:
        """Whether the agent's batches now include dreams."""
        batch_size = self.cfg.agent_settings.batch_size
        n_dream = batch_size - round(self.cfg.dreaming.real_ratio * batch_size)
        return n_dream > 0 and len(self.buffer) >= n_dream
