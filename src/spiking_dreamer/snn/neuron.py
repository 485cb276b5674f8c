"""Leaky integrate-and-fire neurons with explicit state, stepped or scanned over time.

Current-based LIF (PopSAN; Tang et al., CoRL 2020, Eq. 2-3), per time step ``t``::

    c_t = c_decay * c_{t-1} + I_t
    v_t = v_decay * v_{t-1} * (1 - s_{t-1}) + c_t
    s_t = H(v_t - v_threshold)

PopSAN uses ``c_decay = 0.5``, ``v_decay = 0.75``, ``v_threshold = 0.5`` and resets the voltage to
zero after a spike by the ``(1 - s_{t-1})`` gate.

Adaptive LIF: the same current-based dynamics with a threshold that rises by ``adapt_step`` with
each spike and decays back with ``adapt_decay`` (Bellec et al., "Long short-term memory and
learning-to-learn in networks of spiking neurons", NeurIPS 2018)::

    c_t = c_decay * c_{t-1} + I_t
    v_t = v_decay * v_{t-1} * (1 - s_{t-1}) + c_t
    theta_t = v_threshold + a_{t-1}
    s_t = H(v_t - theta_t)
    a_t = adapt_decay * a_{t-1} + adapt_step * s_t

Decays may be Python floats or per-neuron tensors of shape ``[F]`` (learnable time constants, with
``decay = exp(-1 / tau)``). Inputs ``I`` are time-major ``[T, B, F]``; states are ``[B, F]``.
Because the synaptic input of a feed-forward layer does not depend on the neuron state, a layer
computes ``I`` for all ``T`` steps in one matmul and then scans the neuron (layer-major order).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
from torch import Tensor

from spiking_dreamer.snn.surrogate import SurrogateSpike

Decay = float | Tensor


@dataclass(frozen=True)
class CurrentLIFParams:
    """Constants of the current-based LIF neuron (PopSAN defaults)."""

    c_decay: float = 0.5
    v_decay: float = 0.75
    v_threshold: float = 0.5

    def __post_init__(self) -> None:
        for name in ("c_decay", "v_decay"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1], got {value}")
        if self.v_threshold <= 0:
            raise ValueError(f"v_threshold must be > 0, got {self.v_threshold}")


class CurrentLIFState(NamedTuple):
    """State of a current-based LIF population, each ``[B, F]``."""

    current: Tensor
    voltage: Tensor
    spike: Tensor

    @staticmethod
    def zeros_like(x: Tensor) -> CurrentLIFState:
        z = torch.zeros_like(x)
        return CurrentLIFState(z, z, z)


def current_lif_step(
    inp: Tensor, state: CurrentLIFState, params: CurrentLIFParams, spike_fn: SurrogateSpike
) -> CurrentLIFState:
    """One step of the current-based LIF neuron. ``inp``: ``[B, F]``; returns the new state."""
    current = params.c_decay * state.current + inp
    voltage = params.v_decay * state.voltage * (1.0 - state.spike) + current
    spike = spike_fn(voltage - params.v_threshold)
    return CurrentLIFState(current, voltage, spike)


def current_lif_scan(
    inputs: Tensor,
    params: CurrentLIFParams,
    spike_fn: SurrogateSpike,
    state: CurrentLIFState | None = None,
) -> tuple[Tensor, CurrentLIFState]:
    """Run the current-based LIF over time.

    Args:
        inputs: synaptic input currents ``[T, B, F]``.
        params: neuron constants.
        spike_fn: spike nonlinearity with its surrogate gradient.
        state: initial state (zeros when ``None``).

    Returns:
        spikes ``[T, B, F]`` and the final state.
    """
    if state is None:
        state = CurrentLIFState.zeros_like(inputs[0])
    spikes = []
    for inp in inputs:
        state = current_lif_step(inp, state, params, spike_fn)
        spikes.append(state.spike)
    return torch.stack(spikes), state


class AdaptiveLIFParams(NamedTuple):
    """Parameters of the adaptive LIF neuron; each a float or a per-neuron tensor ``[F]``."""

    c_decay: Decay
    v_decay: Decay
    v_threshold: Decay
    adapt_decay: Decay
    adapt_step: Decay


class AdaptiveLIFState(NamedTuple):
    """State of an adaptive LIF population, each ``[B, F]``; ``adaptation`` raises the threshold."""

    current: Tensor
    voltage: Tensor
    spike: Tensor
    adaptation: Tensor

    @staticmethod
    def zeros_like(x: Tensor) -> AdaptiveLIFState:
        z = torch.zeros_like(x)
        return AdaptiveLIFState(z, z, z, z)


def adaptive_lif_step(
    inp: Tensor, state: AdaptiveLIFState, params: AdaptiveLIFParams, spike_fn: SurrogateSpike
) -> AdaptiveLIFState:
    """One step of the adaptive LIF neuron. ``inp``: ``[B, F]``; returns the new state."""
    current = params.c_decay * state.current + inp
    voltage = params.v_decay * state.voltage * (1.0 - state.spike) + current
    spike = spike_fn(voltage - (params.v_threshold + state.adaptation))
    adaptation = params.adapt_decay * state.adaptation + params.adapt_step * spike
    return AdaptiveLIFState(current, voltage, spike, adaptation)


def adaptive_lif_scan(
    inputs: Tensor,
    params: AdaptiveLIFParams,
    spike_fn: SurrogateSpike,
    state: AdaptiveLIFState | None = None,
) -> tuple[Tensor, Tensor, AdaptiveLIFState]:
    """Run the adaptive LIF over time.

    Args:
        inputs: synaptic input currents ``[T, B, F]``.
        params: neuron parameters (floats or ``[F]`` tensors).
        spike_fn: spike nonlinearity with its surrogate gradient.
        state: initial state (zeros when ``None``).

    Returns:
        spikes ``[T, B, F]``, membrane voltages ``[T, B, F]`` (before reset, i.e. the ``v_t``
        compared with the threshold) and the final state.
    """
    if state is None:
        state = AdaptiveLIFState.zeros_like(inputs[0])
    spikes, voltages = [], []
    for inp in inputs:
        state = adaptive_lif_step(inp, state, params, spike_fn)
        spikes.append(state.spike)
        voltages.append(state.voltage)
    return torch.stack(spikes), torch.stack(voltages), state


def leaky_integrate(inputs: Tensor, decay: float, reverse: bool = False) -> Tensor:
    """``y_t = decay * y_{t-1} + x_t`` over the leading (time) axis of ``inputs`` ``[T, ...]``;
    ``reverse=True`` runs from the last step backwards (the adjoint of the forward filter)."""
    out = torch.empty_like(inputs)
    steps = list(range(inputs.shape[0]))
    if reverse:
        steps.reverse()
    out[steps[0]] = inputs[steps[0]]
    for prev, t in itertools.pairwise(steps):
        torch.add(inputs[t], out[prev], alpha=decay, out=out[t])
    return out


def _current_lif_forward(inputs: Tensor, params: CurrentLIFParams) -> tuple[Tensor, Tensor]:
    """Spikes and pre-reset voltages ``[T, B, F]`` of a current-based LIF from zero state."""
    voltages = leaky_integrate(inputs, params.c_decay)  # the currents, overwritten in place
    spikes = torch.empty_like(inputs)
    for t in range(inputs.shape[0]):
        if t > 0:  # v_t = v_decay * v_{t-1} * (1 - s_{t-1}) + c_t
            keep = torch.rsub(spikes[t - 1], 1.0)
            voltages[t].addcmul_(voltages[t - 1], keep, value=params.v_decay)
        torch.gt(voltages[t], params.v_threshold, out=spikes[t])
    return spikes, voltages


class _CurrentLIFScanFunction(torch.autograd.Function):
    """Fused current-based LIF over ``T`` steps with a hand-written BPTT backward.

    Backward (``g`` the surrogate derivative, ``v_t`` the pre-reset voltage)::

        dL/ds_t = dL/dspike_t - v_decay * v_t * dL/dv_{t+1}
        dL/dv_t = g(v_t - theta) * dL/ds_t + v_decay * (1 - s_t) * dL/dv_{t+1}
        dL/dI_t = dL/dc_t = dL/dv_t + c_decay * dL/dc_{t+1}
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, inputs: Tensor, params: CurrentLIFParams, spike_fn: SurrogateSpike
    ) -> Tensor:
        spikes, voltages = _current_lif_forward(inputs, params)
        ctx.save_for_backward(spikes, voltages)
        ctx.params, ctx.spike_fn = params, spike_fn
        return spikes

    @staticmethod
    def backward(ctx: Any, grad_spikes: Tensor) -> tuple[Tensor, None, None]:  # type: ignore[override]
        spikes, voltages = ctx.saved_tensors
        p: CurrentLIFParams = ctx.params
        surrogate = ctx.spike_fn.grad(voltages - p.v_threshold)
        via_reset = voltages * -p.v_decay  # d v_{t+1} / d s_t
        via_leak = (1.0 - spikes) * p.v_decay  # d v_{t+1} / d v_t
        grad_v = grad_spikes * surrogate
        for t in range(grad_spikes.shape[0] - 2, -1, -1):
            g_s = torch.addcmul(grad_spikes[t], via_reset[t], grad_v[t + 1])
            torch.mul(g_s, surrogate[t], out=grad_v[t])
            grad_v[t].addcmul_(via_leak[t], grad_v[t + 1])
        return leaky_integrate(grad_v, p.c_decay, reverse=True), None, None


def current_lif_scan_fused(
    inputs: Tensor, params: CurrentLIFParams, spike_fn: SurrogateSpike
) -> Tensor:
    """Spikes ``[T, B, F]`` of :func:`current_lif_scan` from zero state, computed in one fused
    autograd node (same values and gradients, far fewer graph nodes)."""
    if torch.is_grad_enabled() and inputs.requires_grad:
        return _CurrentLIFScanFunction.apply(inputs, params, spike_fn)
    return _current_lif_forward(inputs, params)[0]


def _adaptive_lif_forward(
    inputs: Tensor, params: AdaptiveLIFParams
) -> tuple[Tensor, Tensor, Tensor]:
    """Spikes, pre-reset voltages and adaptation states ``[T, B, F]`` from zero state."""
    p = params
    voltages = leaky_integrate(inputs, p.c_decay)  # the currents, overwritten in place
    spikes = torch.empty_like(inputs)
    adaptation = torch.empty_like(inputs)
    a = torch.zeros_like(inputs[0])
    for t in range(inputs.shape[0]):
        if t > 0:
            voltages[t] += p.v_decay * voltages[t - 1] * (1.0 - spikes[t - 1])
        torch.gt(voltages[t], p.v_threshold + a, out=spikes[t])
        a = p.adapt_decay * a + p.adapt_step * spikes[t]
        adaptation[t] = a
    return spikes, voltages, adaptation


def _reduce_to(grad: Tensor, like: Decay) -> Tensor | None:
    if not isinstance(like, Tensor) or not like.requires_grad:
        return None
    while grad.dim() > like.dim():
        grad = grad.sum(0)
    dims = [i for i, n in enumerate(like.shape) if n == 1 and grad.shape[i] != 1]
    return grad.sum(dims, keepdim=True) if dims else grad


class _AdaptiveLIFScanFunction(torch.autograd.Function):
    """Fused adaptive LIF over ``T`` steps with a hand-written BPTT backward.

    With ``z_t = v_t - theta_0 - a_{t-1}``, ``g_t = g(z_t)`` and adjoints ``d*``::

        da_t = adapt_decay * da_{t+1} - dz_{t+1}
        ds_t = dL/dspike_t + adapt_step * da_t - v_decay * v_t * dv_{t+1}
        dz_t = g_t * ds_t
        dv_t = dL/dvoltage_t + dz_t + v_decay * (1 - s_t) * dv_{t+1}
        dI_t = dc_t = dv_t + c_decay * dc_{t+1}
        dL/dv_decay = sum_t dv_{t+1} v_t (1 - s_t),  dL/dadapt_decay = sum_t da_t a_{t-1}
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        inputs: Tensor,
        v_decay: Tensor,
        adapt_decay: Tensor,
        params: AdaptiveLIFParams,
        spike_fn: SurrogateSpike,
    ) -> tuple[Tensor, Tensor]:
        spikes, voltages, adaptation = _adaptive_lif_forward(inputs, params)
        ctx.save_for_backward(spikes, voltages, adaptation, v_decay, adapt_decay)
        ctx.params, ctx.spike_fn = params, spike_fn
        return spikes, voltages

    @staticmethod
    def backward(  # type: ignore[override]
        ctx: Any, grad_spikes: Tensor, grad_voltages: Tensor
    ) -> tuple[Tensor, Tensor | None, Tensor | None, None, None]:
        spikes, voltages, adaptation, v_decay, adapt_decay = ctx.saved_tensors
        p: AdaptiveLIFParams = ctx.params
        steps = spikes.shape[0]
        prev_a = torch.cat([torch.zeros_like(adaptation[:1]), adaptation[:-1]])
        surrogate = ctx.spike_fn.grad(voltages - p.v_threshold - prev_a)
        grad_v = torch.empty_like(voltages)
        d_v_next = d_z_next = d_a = None
        g_vdecay = torch.zeros_like(voltages[0])
        g_adecay = torch.zeros_like(voltages[0])
        for t in range(steps - 1, -1, -1):
            d_s = grad_spikes[t]
            if d_v_next is not None:
                d_a = -d_z_next if d_a is None else adapt_decay * d_a - d_z_next
                d_s = d_s + p.adapt_step * d_a - v_decay * voltages[t] * d_v_next
                g_adecay = g_adecay + d_a * prev_a[t]
            d_z = surrogate[t] * d_s
            d_v = grad_voltages[t] + d_z
            if d_v_next is not None:
                keep = 1.0 - spikes[t]
                d_v = d_v + v_decay * keep * d_v_next
                g_vdecay = g_vdecay + d_v_next * voltages[t] * keep
            grad_v[t] = d_v
            d_v_next, d_z_next = d_v, d_z
        grad_in = leaky_integrate(grad_v, p.c_decay, reverse=True)
        return (
            grad_in,
            _reduce_to(g_vdecay, v_decay) if ctx.needs_input_grad[1] else None,
            _reduce_to(g_adecay, adapt_decay) if ctx.needs_input_grad[2] else None,
            None,
            None,
        )


def adaptive_lif_scan_fused(
    inputs: Tensor, params: AdaptiveLIFParams, spike_fn: SurrogateSpike
) -> tuple[Tensor, Tensor]:
    """Spikes and pre-reset voltages ``[T, B, F]`` of :func:`adaptive_lif_scan` from zero state,
    in one fused autograd node. ``v_decay`` and ``adapt_decay`` may be learnable tensors; the
    other parameters must be floats."""
    for name in ("c_decay", "v_threshold", "adapt_step"):
        if isinstance(getattr(params, name), Tensor):
            raise TypeError(f"adaptive_lif_scan_fused needs a float {name}")
    v_decay = torch.as_tensor(params.v_decay, dtype=inputs.dtype, device=inputs.device)
    adapt_decay = torch.as_tensor(params.adapt_decay, dtype=inputs.dtype, device=inputs.device)
    if torch.is_grad_enabled() and (
        inputs.requires_grad or v_decay.requires_grad or adapt_decay.requires_grad
    ):
        p = params._replace(v_decay=v_decay, adapt_decay=adapt_decay)
        return _AdaptiveLIFScanFunction.apply(inputs, v_decay, adapt_decay, p, spike_fn)
    spikes, voltages, _ = _adaptive_lif_forward(inputs, params)
    return spikes, voltages
