"""Population-coded spiking actor network (PopSAN; Tang et al., CoRL 2020).

raw observation ``[B, O]``
  -> running z-score, clipped to ``±obs_clip`` (PopSAN normalises and clips at 3)
  -> population encoder: ``O * P_in`` Gaussian receptive fields, spikes ``[T, B, O * P_in]``
  -> current-based LIF hidden layers ``[T, B, H]`` (layer-major: one matmul over ``T * B``)
  -> current-based LIF output population ``[T, B, A * P_out]``
  -> firing rate (mean over ``T``) -> population decoder ``[B, A]`` -> tanh
  -> scaled to the action bounds ``[low, high]``.

The normaliser is part of the actor, so every caller (acting, TD3 targets, dreaming) feeds raw
observations through exactly the same pipeline.

:class:`PopSpikingGaussianActor` is PopSAN-SAC's stochastic actor (the authors'
``SquashedGaussianPopSpikeActor``): the population decoder gives the mean of a tanh-squashed
Gaussian, and the log-std comes from a separate ReLU MLP on the normalised observation, or,
fully spiking, from a second output population with its own decoder.
"""

from __future__ import annotations

import itertools

import torch
from torch import Tensor, nn

from spiking_dreamer.agent.base import BoundedActor
from spiking_dreamer.agent.gaussian import Gaussian, SquashedGaussian
from spiking_dreamer.config import ActorConfig, SACConfig
from spiking_dreamer.snn import (
    CurrentLIFParams,
    PopulationDecoder,
    PopulationEncoder,
    current_lif_scan_fused,
    make_surrogate,
)


class PopSpikingActor(BoundedActor):
    """PopSAN deterministic actor.

    Args:
        obs_dim: observation size ``O``.
        action_low, action_high: action bounds, each ``[A]``.
        cfg: architecture and neuron constants.
    """

    def __init__(
        self, obs_dim: int, action_low: Tensor, action_high: Tensor, cfg: ActorConfig
    ) -> None:
        super().__init__(obs_dim, action_low, action_high, cfg.obs_clip)
        self.cfg, act_dim = cfg, self.act_dim
        self.encoder = PopulationEncoder(
            obs_dim, cfg.encoder_pop_dim, cfg.mean_range, cfg.encoder_std, cfg.encoding
        )
        sizes = [self.encoder.out_dim, *cfg.hidden_sizes, act_dim * cfg.decoder_pop_dim]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(sizes))
        self.decoder = PopulationDecoder(act_dim, cfg.decoder_pop_dim)
        self.neuron = CurrentLIFParams(cfg.c_decay, cfg.v_decay, cfg.v_threshold)
        self.spike_fn = make_surrogate(cfg.surrogate, cfg.surrogate_scale)

    def spike_trains(self, obs: Tensor, generator: torch.Generator | None = None) -> list[Tensor]:
        """Spikes of every population: encoder, hidden layers, output; each ``[T, B, F]``."""
        spikes = self.encoder(self.obs_normalizer(obs), self.cfg.spike_ts, generator)
        trains = [spikes]
        for layer in self.layers:
            spikes = current_lif_scan_fused(layer(spikes), self.neuron, self.spike_fn)
            trains.append(spikes)
        return trains

    def decode(self, output_spikes: Tensor) -> Tensor:
        """Output spikes ``[T, B, A * P_out]`` -> actions ``[B, A]`` within the bounds."""
        return self.scale_action(torch.tanh(self.decoder(output_spikes.mean(0))))

    def forward(self, obs: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Raw observations ``[B, O]`` -> actions ``[B, A]``."""
        return self.decode(self.spike_trains(obs, generator)[-1])


class PopSpikingGaussianActor(SquashedGaussian, PopSpikingActor):
    """PopSAN-SAC's stochastic actor (Tang et al., CoRL 2020; SAC: Haarnoja et al., 2018).

    ``forward`` is the deterministic action ``tanh(mean)`` within the bounds (PopSAN's pipeline
    unchanged: evaluation, NIR export and energy accounting see the mean path);
    :meth:`gaussian` adds the log-std:

    * ``sac.log_std_head: ann`` (the authors'): a separate ReLU MLP on the normalised
      observation, ``O -> log_std_hidden_sizes -> A``: the stochastic part is an ANN;
    * ``shared``: a second current-based LIF output population (``A * P_out`` neurons) driven by
      the last hidden layer's spikes, decoded by its own population decoder: fully spiking.

    Args:
        obs_dim: observation size ``O``.
        action_low, action_high: action bounds, each ``[A]``.
        cfg: architecture and neuron constants.
        sac: the log-std head and its clamp.
    """

    def __init__(
        self,
        obs_dim: int,
        action_low: Tensor,
        action_high: Tensor,
        cfg: ActorConfig,
        sac: SACConfig,
    ) -> None:
        super().__init__(obs_dim, action_low, action_high, cfg)
        if self.init_log_std_head(obs_dim, self.act_dim, sac):
            out = self.act_dim * cfg.decoder_pop_dim
            self.log_std_layer = nn.Linear(cfg.hidden_sizes[-1], out)
            self.log_std_decoder = PopulationDecoder(self.act_dim, cfg.decoder_pop_dim)

    def log_std_parameters(self) -> list[nn.Parameter]:
        if self.log_std_head == "ann":
            return list(self.log_std_net.parameters())
        return [*self.log_std_layer.parameters(), *self.log_std_decoder.parameters()]

    def gaussian(self, obs: Tensor, generator: torch.Generator | None = None) -> Gaussian:
        """Raw observations ``[N, O]`` -> mean and clamped log-std ``[N, A]`` and the spike trains
        (encoder, hidden layers, mean population, and with ``shared`` the log-std population)."""
        trains = self.spike_trains(obs, generator)
        mean = self.decoder(trains[-1].mean(0))
        if self.log_std_head == "ann":
            log_std = self.log_std_net(self.obs_normalizer(obs))
        else:
            drive = self.log_std_layer(trains[-2])  # the last hidden layer's spikes
            spikes = current_lif_scan_fused(drive, self.neuron, self.spike_fn)
            log_std = self.log_std_decoder(spikes.mean(0))
            trains = [*trains, spikes]
        return Gaussian(mean, self.clamp_log_std(log_std), trains)
