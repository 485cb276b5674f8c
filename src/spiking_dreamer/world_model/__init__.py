"""Ensemble dynamics models (spiking, and an ANN reference) and their trainer."""

from spiking_dreamer.world_model.ann import GaussianMLPEnsemble
from spiking_dreamer.world_model.base import EnsembleDynamicsModel, Prediction
from spiking_dreamer.world_model.spiking import SpikingEnsembleModel
from spiking_dreamer.world_model.training import ModelTrainer

__all__ = [
    "EnsembleDynamicsModel",
    "GaussianMLPEnsemble",
    "ModelTrainer",
    "Prediction",
    "SpikingEnsembleModel",
]
