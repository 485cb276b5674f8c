"""spiking-dreamer: spiking actors and spiking world models for continuous control."""

__version__ = "0.1.0"
