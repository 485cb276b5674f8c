"""Activity regularisers for the spiking actor.

Sparser spiking means fewer synaptic operations (see :func:`spiking_dreamer.export.energy_report`).
The penalty below is a pure function of the spike trains; it is meant to be *added to the actor
loss with a coefficient*, e.g. in TD3's actor update::

    trains = actor.spike_trains(obs)
    actions = actor.decode(trains[-1])
    actor_loss = -critic.q1(obs, actions).mean() + coef * firing_rate_penalty(trains)

TD3 adds it when ``td3.firing_rate_penalty > 0``, SAC when ``sac.firing_rate_penalty > 0`` (off
by default).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def firing_rate_penalty(spike_trains: Sequence[Tensor]) -> Tensor:
    """Mean firing rate of the hidden and output populations, a scalar in [0, 1].

    Args:
        spike_trains: the populations as returned by
            :meth:`spiking_dreamer.agent.PopSpikingActor.spike_trains`: encoder first, then every
            hidden layer, then the output population; each ``[T, B, F]``. The encoder's spikes
            (index 0) are skipped: they carry the observation and are not produced by the
            actor's synapses.

    Returns:
        ``sum of hidden and output spikes / (T * B * number of hidden and output neurons)``,
        i.e. the rate averaged over every hidden and output neuron (each neuron weighs the
        same, so large populations dominate), time step and sample. Differentiable: the
        gradient reaches the weights through the neurons' surrogate gradient.
    """
    if len(spike_trains) < 2:
        raise ValueError("need the encoder spikes and at least one spiking layer")
    populations = spike_trains[1:]
    total = sum(s.sum() for s in populations)
    count = sum(s.numel() for s in populations)
    return torch.as_tensor(total) / count
