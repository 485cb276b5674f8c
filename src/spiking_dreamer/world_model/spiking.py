"""Spiking world-model ensemble.

normalised (s, a) ``[E, B, D]``
  -> fixed Gaussian receptive fields (``pop_dim`` centres over [-3, 3] per dimension)
  -> input current (``input_coding: current``) or regular spike trains (``spikes``)
  -> ``num_blocks`` multi-scale adaptive-LIF blocks ``[T, E, B, H]`` (spikes between blocks)
  -> hybrid readout: firing rate and mean membrane potential of the last block ``[E, B, 2H]``
  -> ensemble-linear heads: normalised (state change, reward) mean (and log-variance).

A multi-scale block splits its ``H`` neurons into ``num_scales`` groups whose membrane time
constants start log-spaced over ``tau_range`` (fast to slow); time constants of membrane and
threshold adaptation are learnable per member and neuron (``decay = exp(-1 / tau)``). The
adaptive threshold follows Bellec et al. (NeurIPS 2018); the neuron equations are in
:mod:`spiking_dreamer.snn.neuron`.
Every member has its own weights and time constants; all members run in one batched pass.
"""

from __future__ import annotations

import itertools
import math

import torch
from torch import Tensor, nn

from spiking_dreamer.config import WorldModelConfig
from spiking_dreamer.layers import EnsembleLinear
from spiking_dreamer.snn import AdaptiveLIFParams, adaptive_lif_scan_fused, make_surrogate
from spiking_dreamer.snn.encoding import regular_spikes
from spiking_dreamer.world_model.base import EnsembleDynamicsModel


class MultiScaleALIFBlock(nn.Module):
    """Ensemble-batched linear synapses feeding adaptive LIF neurons at several time scales.

    Shapes: input ``[T, E, B, in]`` (or ``[E, B, in]`` / ``[B, in]``, constant over time) ->
    spikes and pre-reset membrane potentials, each ``[T, E, B, out]``.
    """

    def __init__(
        self, ensemble_size: int, in_features: int, out_features: int, cfg: WorldModelConfig
    ) -> None:
        super().__init__()
        self.linear = EnsembleLinear(ensemble_size, in_features, out_features)
        lo, hi = cfg.tau_range
        taus = torch.logspace(math.log10(lo), math.log10(hi), cfg.num_scales)
        taus = taus.repeat_interleave(out_features // cfg.num_scales)
        self.log_tau_mem = nn.Parameter(taus.log().expand(ensemble_size, 1, -1).clone())
        self.log_tau_adapt = nn.Parameter(
            torch.full((ensemble_size, 1, out_features), math.log(cfg.adapt_tau))
        )
        self.c_decay, self.v_threshold, self.adapt_step = (
            cfg.c_decay,
            cfg.v_threshold,
            cfg.adapt_step,
        )
        self.time_steps = cfg.spike_ts
        self.spike_fn = make_surrogate(cfg.surrogate, cfg.surrogate_scale)

    def neuron_params(self, members: Tensor | None = None) -> AdaptiveLIFParams:
        log_tau_mem, log_tau_adapt = self.log_tau_mem, self.log_tau_adapt
        if members is not None:
            log_tau_mem, log_tau_adapt = log_tau_mem[members], log_tau_adapt[members]
        v_decay = torch.exp(-1.0 / log_tau_mem.exp().clamp(1.0, 1e3))
        adapt_decay = torch.exp(-1.0 / log_tau_adapt.exp().clamp(1.0, 1e4))
        return AdaptiveLIFParams(
            self.c_decay, v_decay, self.v_threshold, adapt_decay, self.adapt_step
        )

    def forward(self, x: Tensor, members: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``members`` (indices ``[K]``): only those members, whose inputs are ``x``'s ``E``
        axis (``K`` long) or shared."""
        if x.dim() == 4:  # time-varying input: one matmul over T * B per member
            t, e, b, _ = x.shape
            flat = x.permute(1, 0, 2, 3).reshape(e, t * b, -1)
            current = self.linear(flat, members).reshape(e, t, b, -1).permute(1, 0, 2, 3)
        else:
            current = self.linear(x, members).expand(self.time_steps, -1, -1, -1)
        return adaptive_lif_scan_fused(current, self.neuron_params(members), self.spike_fn)


class SpikingEnsembleModel(EnsembleDynamicsModel):
    """Ensemble of spiking dynamics models predicting (state change, reward).

    Args:
        obs_dim, act_dim: sizes ``O`` and ``A``.
        cfg: architecture (see :class:`~spiking_dreamer.config.WorldModelConfig`).
    """

    def __init__(self, obs_dim: int, act_dim: int, cfg: WorldModelConfig) -> None:
        super().__init__(
            obs_dim,
            act_dim,
            cfg.ensemble_size,
            cfg.num_elites,
            cfg.head == "gaussian",
            cfg.reward_weight,
        )
        self.cfg = cfg
        self.register_buffer("rf_centres", torch.linspace(-3.0, 3.0, cfg.pop_dim))
        self.rf_width = 6.0 / (cfg.pop_dim - 1)  # neighbouring fields cross at exp(-1/8)
        e, h = cfg.ensemble_size, cfg.hidden_size
        sizes = [self.in_dim * cfg.pop_dim] + [h] * cfg.num_blocks
        self.blocks = nn.ModuleList(
            MultiScaleALIFBlock(e, a, b, cfg) for a, b in itertools.pairwise(sizes)
        )
        read = 2 * h + (h * (cfg.num_blocks - 1) if cfg.readout == "all_voltages" else 0)
        self.mean_head = EnsembleLinear(e, read, self.out_dim)
        self.logvar_head = EnsembleLinear(e, read, self.out_dim) if self.gaussian else None
        self._spikes: Tensor | None = None  # spikes per block since the reset, [blocks]
        self._neuron_steps = 0  # per block, over the same forwards

    def reset_diagnostics(self) -> None:
        self._spikes, self._neuron_steps = None, 0

    def diagnostics(self) -> dict[str, float]:
        """Mean firing rate of each block over every neuron and time step of the forwards
        since :meth:`reset_diagnostics` (``firing_rate/block<i>``; none before a forward)."""
        if self._spikes is None:
            return {}
        rates = (self._spikes / self._neuron_steps).tolist()
        return {f"firing_rate/block{i}": r for i, r in enumerate(rates)}

    def receptive_fields(self, x: Tensor) -> Tensor:
        """Receptive-field activations ``[..., D * P]`` of normalised inputs ``[..., D]``."""
        z = (x.unsqueeze(-1) - self.rf_centres) / self.rf_width
        return torch.exp(-0.5 * z.square()).flatten(-2)

    def forward_normalized(
        self, x: Tensor, members: Tensor | None = None
    ) -> tuple[Tensor, Tensor | None]:
        if x.dim() == 2:
            x = x.expand(self.ensemble_size if members is None else len(members), *x.shape)
        h = self.receptive_fields(x)
        if self.cfg.input_coding == "spikes":
            with torch.no_grad():
                h = regular_spikes(h, self.cfg.spike_ts)
        counts, earlier = [], []
        for block in self.blocks:
            spikes, voltages = block(h, members)
            counts.append(spikes.detach().sum(dtype=torch.float64))
            earlier.append(voltages)
            h = spikes
        per_block = torch.stack(counts)  # no host sync here
        self._spikes = per_block if self._spikes is None else self._spikes + per_block
        self._neuron_steps += spikes.numel()  # every block has the same shape
        parts = [spikes.mean(0), voltages.mean(0)]
        if self.cfg.readout == "all_voltages":
            parts += [v.mean(0) for v in earlier[:-1]]
        readout = torch.cat(parts, -1)
        mean = self.mean_head(readout, members)
        logvar = None
        if self.logvar_head is not None:
            logvar = self.bound_logvar(self.logvar_head(readout, members))
        return mean, logvar
