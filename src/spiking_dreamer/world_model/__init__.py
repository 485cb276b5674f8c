"""Ensemble dynamics models (spiking, and MBPO's ANN ensemble), their builder and trainer."""

from spiking_dreamer.config import WorldModelConfig
from spiking_dreamer.world_model.ann import GaussianMLPEnsemble
from spiking_dreamer.world_model.base import EnsembleDynamicsModel, Prediction
from spiking_dreamer.world_model.spiking import SpikingEnsembleModel
from spiking_dreamer.world_model.training import ModelTrainer


def build_world_model(obs_dim: int, act_dim: int, cfg: WorldModelConfig) -> EnsembleDynamicsModel:
    """The ensemble named by ``cfg.kind``: ``spiking`` or ``mlp`` (MBPO's Gaussian MLPs)."""
    if cfg.kind == "mlp":
        return GaussianMLPEnsemble(
            obs_dim,
            act_dim,
            cfg.ensemble_size,
            cfg.num_elites,
            cfg.mlp_hidden_sizes,
            gaussian=cfg.head == "gaussian",
            reward_weight=cfg.reward_weight,
        )
    return SpikingEnsembleModel(obs_dim, act_dim, cfg)


__all__ = [
    "EnsembleDynamicsModel",
    "GaussianMLPEnsemble",
    "ModelTrainer",
    "Prediction",
    "SpikingEnsembleModel",
    "build_world_model",
]
