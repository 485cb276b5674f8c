"""Uncertainty-guided imagined rollouts from real states into a separate dream buffer."""

from spiking_dreamer.dreaming.buffer import DreamBuffer
from spiking_dreamer.dreaming.dreamer import Dreamer, uncertainty
from spiking_dreamer.dreaming.engine import DreamEngine

__all__ = ["DreamBuffer", "DreamEngine", "Dreamer", "uncertainty"]
