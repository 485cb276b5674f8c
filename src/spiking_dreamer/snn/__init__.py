"""Spiking building blocks: surrogate gradients, neurons, population coding.

This package knows nothing about reinforcement learning. Tensors are time-major: spikes and
membrane traces have shape ``[T, B, F]`` (time steps, batch, features).
"""

from spiking_dreamer.snn.decoding import PopulationDecoder
from spiking_dreamer.snn.encoding import PopulationEncoder
from spiking_dreamer.snn.neuron import (
    AdaptiveLIFParams,
    AdaptiveLIFState,
    CurrentLIFParams,
    CurrentLIFState,
    adaptive_lif_scan,
    adaptive_lif_scan_fused,
    adaptive_lif_step,
    current_lif_scan,
    current_lif_scan_fused,
    current_lif_step,
    leaky_integrate,
)
from spiking_dreamer.snn.surrogate import SURROGATES, SurrogateSpike, make_surrogate

__all__ = [
    "SURROGATES",
    "AdaptiveLIFParams",
    "AdaptiveLIFState",
    "CurrentLIFParams",
    "CurrentLIFState",
    "PopulationDecoder",
    "PopulationEncoder",
    "SurrogateSpike",
    "adaptive_lif_scan",
    "adaptive_lif_scan_fused",
    "adaptive_lif_step",
    "current_lif_scan",
    "current_lif_scan_fused",
    "current_lif_step",
    "leaky_integrate",
    "make_surrogate",
]
