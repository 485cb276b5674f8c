"""Tests for the LIF neurons in ``spiking_dreamer.snn.neuron``."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from spiking_dreamer.snn.neuron import (
    AdaptiveLIFParams,
    AdaptiveLIFState,
    CurrentLIFParams,
    CurrentLIFState,
    adaptive_lif_scan,
    adaptive_lif_step,
    current_lif_scan,
    current_lif_scan_fused,
    current_lif_step,
    leaky_integrate,
)
from spiking_dreamer.snn.surrogate import SurrogateSpike

POPSAN = CurrentLIFParams(c_decay=0.5, v_decay=0.75, v_threshold=0.5)
RECT = SurrogateSpike("rect", 0.5)


def column(values: list[float], dtype: torch.dtype = torch.float64) -> Tensor:
    """A one-neuron, one-batch input sequence ``[T, 1, 1]``."""
    return torch.tensor(values, dtype=dtype).view(-1, 1, 1)


# --------------------------------------------------------------------------------------------
# Current-based LIF: hand-computed forward
# --------------------------------------------------------------------------------------------

# I = [0.3, 0.3, 0.0, 0.6, 0.1], c_decay 0.5, v_decay 0.75, threshold 0.5:
#   t=1: c = 0.3                     v = 0.75*0*(1-0) + 0.3        = 0.3      s = 0
#   t=2: c = 0.5*0.3 + 0.3 = 0.45    v = 0.75*0.3*(1-0) + 0.45     = 0.675    s = 1
#   t=3: c = 0.5*0.45 + 0 = 0.225    v = 0.75*0.675*(1-1) + 0.225  = 0.225    s = 0  (reset)
#   t=4: c = 0.1125 + 0.6 = 0.7125   v = 0.75*0.225 + 0.7125       = 0.88125  s = 1
#   t=5: c = 0.35625 + 0.1 = 0.45625 v = 0.75*0.88125*(1-1) + c    = 0.45625  s = 0  (reset)
HAND_INPUTS = [0.3, 0.3, 0.0, 0.6, 0.1]
HAND_CURRENTS = [0.3, 0.45, 0.225, 0.7125, 0.45625]
HAND_VOLTAGES = [0.3, 0.675, 0.225, 0.88125, 0.45625]
HAND_SPIKES = [0.0, 1.0, 0.0, 1.0, 0.0]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_current_lif_step_hand_sequence(dtype: torch.dtype) -> None:
    inputs = column(HAND_INPUTS, dtype)
    state = CurrentLIFState.zeros_like(inputs[0])
    for t, inp in enumerate(inputs):
        state = current_lif_step(inp, state, POPSAN, RECT)
        assert state.current.item() == pytest.approx(HAND_CURRENTS[t], abs=1e-6)
        assert state.voltage.item() == pytest.approx(HAND_VOLTAGES[t], abs=1e-6)
        assert state.spike.item() == HAND_SPIKES[t]
        assert state.spike.dtype == dtype


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_current_lif_scan_hand_sequence(dtype: torch.dtype) -> None:
    spikes, final = current_lif_scan(column(HAND_INPUTS, dtype), POPSAN, RECT)
    assert spikes.flatten().tolist() == HAND_SPIKES
    assert final.current.item() == pytest.approx(0.45625, abs=1e-6)
    assert final.voltage.item() == pytest.approx(0.45625, abs=1e-6)
    assert final.spike.item() == 0.0
    fused = current_lif_scan_fused(column(HAND_INPUTS, dtype), POPSAN, RECT)
    assert fused.flatten().tolist() == HAND_SPIKES


def test_reset_drops_previous_voltage() -> None:
    """After a spike the next voltage is exactly the current (no leak of the old voltage)."""
    # t=1: c = v = 2.0 spikes; t=2: c = 0.5*2 + 0 = 1.0, v = 0.75*2*(1-1) + 1.0 = 1.0 (not 2.5).
    state = CurrentLIFState.zeros_like(torch.zeros(1, 1))
    state = current_lif_step(torch.tensor([[2.0]]), state, POPSAN, RECT)
    assert state.spike.item() == 1.0
    state = current_lif_step(torch.zeros(1, 1), state, POPSAN, RECT)
    assert state.voltage.item() == pytest.approx(state.current.item())
    assert state.voltage.item() == pytest.approx(1.0)
    # Without the preceding spike, the old voltage leaks in: v = 0.75*0.3 + 0.15 = 0.375.
    state = CurrentLIFState.zeros_like(torch.zeros(1, 1))
    state = current_lif_step(torch.tensor([[0.3]]), state, POPSAN, RECT)
    state = current_lif_step(torch.zeros(1, 1), state, POPSAN, RECT)
    assert state.voltage.item() == pytest.approx(0.375)
    assert state.spike.item() == 0.0


def test_current_lif_scan_resumes_from_state() -> None:
    gen = torch.Generator().manual_seed(3)
    inputs = torch.rand(6, 2, 4, generator=gen)
    spikes, final = current_lif_scan(inputs, POPSAN, RECT)
    head, mid = current_lif_scan(inputs[:2], POPSAN, RECT)
    tail, final2 = current_lif_scan(inputs[2:], POPSAN, RECT, state=mid)
    assert torch.equal(torch.cat([head, tail]), spikes)
    for a, b in zip(final, final2, strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"c_decay": -0.1}, "c_decay"),
        ({"c_decay": 1.1}, "c_decay"),
        ({"v_decay": -1e-3}, "v_decay"),
        ({"v_decay": 1.5}, "v_decay"),
        ({"v_threshold": 0.0}, "v_threshold"),
        ({"v_threshold": -0.5}, "v_threshold"),
    ],
)
def test_current_lif_params_validation(params: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CurrentLIFParams(**params)


def test_current_lif_params_accepts_boundaries() -> None:
    assert CurrentLIFParams() == POPSAN
    CurrentLIFParams(c_decay=0.0, v_decay=1.0, v_threshold=1e-6)
    CurrentLIFParams(c_decay=1.0, v_decay=0.0)


# --------------------------------------------------------------------------------------------
# Current-based LIF: hand-derived gradients
# --------------------------------------------------------------------------------------------

# Two steps, one neuron, rect surrogate (width 0.5), loss L = 2 s_1 + 3 s_2.
# With g_t = g(v_t - 0.5):
#   dL/dv_2 = 3 g_2,  dL/ds_1 = 2 - 0.75 v_1 dL/dv_2  (through the reset gate (1 - s_1)),
#   dL/dv_1 = g_1 dL/ds_1 + 0.75 (1 - s_1) dL/dv_2,
#   dL/dI_2 = dL/dv_2,  dL/dI_1 = dL/dv_1 + 0.5 dL/dI_2  (current leak).
GRAD_CASES = [
    # I = (0.6, 0.1): v_1 = 0.6 spikes (g_1 = 1), v_2 = 0 + 0.4 = 0.4 (g_2 = 1).
    #   dL/dv_2 = 3, dL/ds_1 = 2 - 0.45*3 = 0.65, dL/dv_1 = 0.65 + 0 = 0.65,
    #   dL/dI = (0.65 + 1.5, 3) = (2.15, 3).
    ((0.6, 0.1), (1.0, 0.0), (2.15, 3.0)),
    # I = (0.3, 0.1): v_1 = 0.3 silent (g_1 = 1), v_2 = 0.225 + 0.25 = 0.475 (g_2 = 1).
    #   dL/ds_1 = 2 - 0.225*3 = 1.325, dL/dv_1 = 1.325 + 0.75*3 = 3.575,
    #   dL/dI = (3.575 + 1.5, 3) = (5.075, 3).
    ((0.3, 0.1), (0.0, 0.0), (5.075, 3.0)),
    # I = (1.2, 0.1): v_1 = 1.2 spikes outside the window (g_1 = 0), v_2 = 0 + 0.7 (g_2 = 1).
    #   dL/dv_1 = 0*(...) + 0.75*(1-1)*3 = 0, dL/dI = (0 + 1.5, 3) = (1.5, 3).
    ((1.2, 0.1), (1.0, 1.0), (1.5, 3.0)),
]


@pytest.mark.parametrize(("inputs", "spikes", "grad"), GRAD_CASES)
@pytest.mark.parametrize("fused", [False, True])
def test_current_lif_gradient_hand_derived(
    inputs: tuple[float, float],
    spikes: tuple[float, float],
    grad: tuple[float, float],
    fused: bool,
) -> None:
    x = column(list(inputs)).requires_grad_(True)
    if fused:
        out = current_lif_scan_fused(x, POPSAN, RECT)
    else:
        out, _ = current_lif_scan(x, POPSAN, RECT)
    assert out.flatten().tolist() == list(spikes)
    (out.flatten() * torch.tensor([2.0, 3.0], dtype=out.dtype)).sum().backward()
    assert x.grad is not None
    torch.testing.assert_close(
        x.grad.flatten(), torch.tensor(grad, dtype=x.dtype), rtol=1e-12, atol=1e-12
    )


# --------------------------------------------------------------------------------------------
# Fused scan against the reference scan
# --------------------------------------------------------------------------------------------


def random_inputs(seed: int, shape: tuple[int, ...] = (5, 7, 13)) -> Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=gen) * 0.5 + 0.3


@pytest.mark.parametrize("kind", ["rect", "superspike", "atan"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fused_matches_reference(kind: str, seed: int) -> None:
    spike_fn = SurrogateSpike(kind)
    inputs = random_inputs(seed)
    upstream = torch.randn(inputs.shape, generator=torch.Generator().manual_seed(100 + seed))

    x_ref = inputs.clone().requires_grad_(True)
    ref, _ = current_lif_scan(x_ref, POPSAN, spike_fn)
    (ref * upstream).sum().backward()

    x_fused = inputs.clone().requires_grad_(True)
    fused = current_lif_scan_fused(x_fused, POPSAN, spike_fn)
    (fused * upstream).sum().backward()

    rate = ref.mean().item()
    assert 0.15 < rate < 0.85, f"test inputs should make spikes common, rate {rate}"
    assert torch.equal(fused, ref)
    assert x_ref.grad is not None
    assert x_fused.grad is not None
    assert x_ref.grad.abs().max() > 0
    torch.testing.assert_close(x_fused.grad, x_ref.grad, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("seed", [0, 1])
def test_fused_without_grad_matches_reference(seed: int) -> None:
    inputs = random_inputs(seed)
    ref, _ = current_lif_scan(inputs, POPSAN, RECT)
    plain = current_lif_scan_fused(inputs, POPSAN, RECT)  # inputs do not require grad
    with torch.no_grad():
        no_grad = current_lif_scan_fused(inputs.clone().requires_grad_(True), POPSAN, RECT)
    assert not plain.requires_grad
    assert not no_grad.requires_grad
    assert torch.equal(plain, ref)
    assert torch.equal(no_grad, ref)


def test_fused_does_not_modify_inputs() -> None:
    inputs = random_inputs(5)
    copy = inputs.clone()
    current_lif_scan_fused(inputs, POPSAN, RECT)
    current_lif_scan_fused(inputs.requires_grad_(True), POPSAN, RECT).sum().backward()
    assert torch.equal(inputs.detach(), copy)


# --------------------------------------------------------------------------------------------
# leaky_integrate
# --------------------------------------------------------------------------------------------


def test_leaky_integrate_hand_values() -> None:
    x = torch.tensor([[1.0, 0.0], [2.0, 4.0], [3.0, -2.0]])
    # forward, decay 0.5: y = (1, 2 + 0.5, 3 + 1.25) and (0, 4, -2 + 2)
    fwd = leaky_integrate(x, 0.5)
    torch.testing.assert_close(fwd, torch.tensor([[1.0, 0.0], [2.5, 4.0], [4.25, 0.0]]))
    # reverse: y_3 = x_3, y_2 = x_2 + 0.5 y_3, y_1 = x_1 + 0.5 y_2
    #   column 0: (1 + 1.75, 2 + 1.5, 3) = (2.75, 3.5, 3); column 1: (0 + 1.5, 4 - 1, -2)
    rev = leaky_integrate(x, 0.5, reverse=True)
    torch.testing.assert_close(rev, torch.tensor([[2.75, 1.5], [3.5, 3.0], [3.0, -2.0]]))
    assert torch.equal(x, torch.tensor([[1.0, 0.0], [2.0, 4.0], [3.0, -2.0]]))  # unchanged


def test_leaky_integrate_single_step_and_zero_decay() -> None:
    x = torch.tensor([[1.0, 2.0]])
    assert torch.equal(leaky_integrate(x, 0.9), x)
    y = torch.tensor([1.0, 2.0, 3.0])
    assert torch.equal(leaky_integrate(y, 0.0), y)
    assert torch.equal(leaky_integrate(y, 0.0, reverse=True), y)


def test_leaky_integrate_reverse_is_adjoint() -> None:
    """``<F x, y> = <x, F^T y>`` where ``F^T`` is the reverse filter."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(6, 3, generator=gen, dtype=torch.float64)
    y = torch.randn(6, 3, generator=gen, dtype=torch.float64)
    lhs = (leaky_integrate(x, 0.7) * y).sum()
    rhs = (x * leaky_integrate(y, 0.7, reverse=True)).sum()
    assert lhs.item() == pytest.approx(rhs.item(), rel=1e-12)


# --------------------------------------------------------------------------------------------
# Adaptive LIF
# --------------------------------------------------------------------------------------------


def adaptive_reference(
    inputs: list[float],
    c_decay: float,
    v_decay: float,
    v_threshold: float,
    adapt_decay: float,
    adapt_step: float,
) -> tuple[list[float], list[float], list[float]]:
    """Plain-Python adaptive LIF for one neuron: spikes, pre-reset voltages, adaptations."""
    c = v = s = a = 0.0
    spikes, volts, adapts = [], [], []
    for i in inputs:
        c = c_decay * c + i
        v = v_decay * v * (1.0 - s) + c
        s = 1.0 if v > v_threshold + a else 0.0
        a = adapt_decay * a + adapt_step * s
        spikes.append(s)
        volts.append(v)
        adapts.append(a)
    return spikes, volts, adapts


ADAPT = AdaptiveLIFParams(
    c_decay=0.5, v_decay=0.75, v_threshold=0.5, adapt_decay=0.9, adapt_step=0.2
)
# I = [0.6, 0.3, 0.6, 0.0, 0.6]:
#   t=1: c = 0.6    v = 0.6                      theta = 0.5     s = 1  a = 0.2
#   t=2: c = 0.6    v = 0 + 0.6 = 0.6            theta = 0.7     s = 0  a = 0.18
#        (a plain LIF would spike here: the raised threshold suppresses it)
#   t=3: c = 0.9    v = 0.45 + 0.9 = 1.35        theta = 0.68    s = 1  a = 0.162 + 0.2 = 0.362
#   t=4: c = 0.45   v = 0 + 0.45 = 0.45          theta = 0.862   s = 0  a = 0.3258
#   t=5: c = 0.825  v = 0.3375 + 0.825 = 1.1625  theta = 0.8258  s = 1  a = 0.29322 + 0.2 = 0.49322
ADAPT_INPUTS = [0.6, 0.3, 0.6, 0.0, 0.6]
ADAPT_SPIKES = [1.0, 0.0, 1.0, 0.0, 1.0]
ADAPT_VOLTAGES = [0.6, 0.6, 1.35, 0.45, 1.1625]
ADAPT_ADAPTATIONS = [0.2, 0.18, 0.362, 0.3258, 0.49322]


def test_adaptive_reference_matches_hand_values() -> None:
    spikes, volts, adapts = adaptive_reference(ADAPT_INPUTS, *ADAPT)
    assert spikes == ADAPT_SPIKES
    assert volts == pytest.approx(ADAPT_VOLTAGES)
    assert adapts == pytest.approx(ADAPT_ADAPTATIONS)


def test_adaptive_lif_step_hand_sequence() -> None:
    inputs = column(ADAPT_INPUTS)
    state = AdaptiveLIFState.zeros_like(inputs[0])
    for t, inp in enumerate(inputs):
        prev_adaptation = state.adaptation.item()
        state = adaptive_lif_step(inp, state, ADAPT, RECT)
        assert state.spike.item() == ADAPT_SPIKES[t]
        assert state.voltage.item() == pytest.approx(ADAPT_VOLTAGES[t])
        assert state.adaptation.item() == pytest.approx(ADAPT_ADAPTATIONS[t])
        # Rises by adapt_step after a spike, decays by adapt_decay when silent.
        expected = 0.9 * prev_adaptation + (0.2 if ADAPT_SPIKES[t] else 0.0)
        assert state.adaptation.item() == pytest.approx(expected)


def test_adaptive_lif_scan_hand_sequence() -> None:
    spikes, voltages, final = adaptive_lif_scan(column(ADAPT_INPUTS), ADAPT, RECT)
    assert spikes.flatten().tolist() == ADAPT_SPIKES
    # Pre-reset voltages: at spike steps the returned voltage exceeds the threshold.
    torch.testing.assert_close(
        voltages.flatten(), torch.tensor(ADAPT_VOLTAGES, dtype=torch.float64)
    )
    assert final.current.item() == pytest.approx(0.825)
    assert final.voltage.item() == pytest.approx(1.1625)
    assert final.spike.item() == 1.0
    assert final.adaptation.item() == pytest.approx(0.49322)


def test_adaptive_without_adaptation_equals_current_lif() -> None:
    inputs = random_inputs(7).double()
    no_adapt = AdaptiveLIFParams(0.5, 0.75, 0.5, adapt_decay=0.9, adapt_step=0.0)
    spikes, _, final = adaptive_lif_scan(inputs, no_adapt, RECT)
    ref, ref_final = current_lif_scan(inputs, POPSAN, RECT)
    assert torch.equal(spikes, ref)
    assert torch.equal(final.voltage, ref_final.voltage)
    assert torch.equal(final.adaptation, torch.zeros_like(final.adaptation))


def test_adaptive_lif_per_neuron_parameters() -> None:
    """``[F]`` tensor parameters broadcast over the batch, one parameter set per neuron."""
    per_neuron = [
        (0.5, 0.75, 0.5, 0.9, 0.2),
        (0.25, 0.5, 0.4, 0.5, 0.3),
    ]
    params = AdaptiveLIFParams(
        *(torch.tensor(values, dtype=torch.float64) for values in zip(*per_neuron, strict=True))
    )
    gen = torch.Generator().manual_seed(11)
    inputs = torch.rand(8, 3, 2, generator=gen, dtype=torch.float64) * 0.9  # [T, B, F]
    spikes, voltages, final = adaptive_lif_scan(inputs, params, RECT)
    assert spikes.shape == voltages.shape == (8, 3, 2)
    n_spikes = [0.0, 0.0]
    for b in range(3):
        for f in range(2):
            ref_s, ref_v, ref_a = adaptive_reference(inputs[:, b, f].tolist(), *per_neuron[f])
            assert spikes[:, b, f].tolist() == ref_s
            assert voltages[:, b, f].tolist() == pytest.approx(ref_v, rel=1e-12)
            assert final.adaptation[b, f].item() == pytest.approx(ref_a[-1], rel=1e-12)
            n_spikes[f] += sum(ref_s)
    assert min(n_spikes) > 0  # both neurons exercise the spike/adaptation path


def test_adaptive_lif_gradient_flows() -> None:
    inputs = random_inputs(2).requires_grad_(True)
    spikes, voltages, _ = adaptive_lif_scan(inputs, ADAPT, SurrogateSpike("atan"))
    (spikes.sum() + voltages.sum()).backward()
    assert inputs.grad is not None
    assert torch.isfinite(inputs.grad).all()
    assert inputs.grad.abs().sum() > 0


# --------------------------------------------------------------------------------------------
# Shapes
# --------------------------------------------------------------------------------------------


def test_shapes() -> None:
    t, b, f = 4, 3, 5
    inputs = random_inputs(0, (t, b, f))
    spikes, state = current_lif_scan(inputs, POPSAN, RECT)
    assert spikes.shape == (t, b, f)
    assert all(s.shape == (b, f) for s in state)
    assert current_lif_scan_fused(inputs, POPSAN, RECT).shape == (t, b, f)
    spikes, voltages, astate = adaptive_lif_scan(inputs, ADAPT, RECT)
    assert spikes.shape == voltages.shape == (t, b, f)
    assert all(s.shape == (b, f) for s in astate)
    assert set(spikes.unique().tolist()) <= {0.0, 1.0}


# --------------------------------------------------------------------------------------------
# Optional oracle: snnTorch's Synaptic neuron
# --------------------------------------------------------------------------------------------


def test_snntorch_synaptic_oracle() -> None:
    """Cross-check against snnTorch's current-based ``Synaptic`` neuron.

    snnTorch (1.0) computes ``syn_t = alpha syn_{t-1} + I_t``, ``mem_t = beta mem_{t-1} + syn_t``
    and ``spk_t = H(mem_t - threshold)`` with the same strict ``>``. Its reset modes map as:

    * ``reset_mechanism="zero", reset_delay=False``: right after firing it stores
      ``mem_t <- mem_t - (spk_t - reset_t) mem_t`` where ``reset_t = H(mem_{t-1} - thr)`` is
      evaluated on the already-reset stored membrane, hence 0. So the stored membrane is
      ``v_t (1 - s_t)`` and the next step computes ``beta v_t (1 - s_t) + c_t``: exactly PopSAN's
      order (reset to zero of the previous voltage only, the new current kept). The membrane it
      returns is post-reset, ``v_t (1 - s_t)``, and the gradient flows through ``spk_t`` in the
      reset like PopSAN's ``(1 - s_{t-1})`` gate, so with the atan surrogate (same formula in
      both libraries) input gradients must match too.
    * ``reset_mechanism="none"``: pure integration; equal to PopSAN as long as nothing spikes.
    * The default ``reset_delay=True`` zeroes ``beta mem + syn`` (the new current included) one
      step late, which is *not* PopSAN's order; the last check shows the difference.
    """
    snntorch = pytest.importorskip("snntorch")
    atan = SurrogateSpike("atan", 2.0)
    gen = torch.Generator().manual_seed(42)

    # 1) Reset-free: small inputs, nobody spikes, membrane and current traces must agree.
    small = torch.rand(12, 4, 6, generator=gen) * 0.04
    lif = snntorch.Synaptic(alpha=0.5, beta=0.75, threshold=0.5, reset_mechanism="none")
    syn, mem = lif.reset_mem()
    mems = []
    for inp in small:
        spk, syn, mem = lif(inp, syn, mem)
        assert not spk.any()
        mems.append(mem)
    ours = adaptive_lif_scan(small, AdaptiveLIFParams(0.5, 0.75, 0.5, 1.0, 0.0), atan)
    assert not ours[0].any()
    torch.testing.assert_close(torch.stack(mems), ours[1], rtol=1e-6, atol=1e-7)
    _, state = current_lif_scan(small, POPSAN, atan)
    torch.testing.assert_close(syn, state.current, rtol=1e-6, atol=1e-7)

    # 2) With spikes: reset to zero applied immediately reproduces PopSAN's update order.
    inputs = torch.randn(10, 5, 8, generator=gen) * 0.5 + 0.3
    x_snn = inputs.clone().requires_grad_(True)
    lif = snntorch.Synaptic(
        alpha=0.5,
        beta=0.75,
        threshold=0.5,
        spike_grad=snntorch.surrogate.atan(alpha=2.0),
        reset_mechanism="zero",
        reset_delay=False,
    )
    syn, mem = lif.reset_mem()
    spk_snn, mem_snn = [], []
    for inp in x_snn:
        spk, syn, mem = lif(inp, syn, mem)
        spk_snn.append(spk)
        mem_snn.append(mem)
    spikes_snn = torch.stack(spk_snn)

    x_ours = inputs.clone().requires_grad_(True)
    spikes, final = current_lif_scan(x_ours, POPSAN, atan)
    _, voltages, _ = adaptive_lif_scan(inputs, AdaptiveLIFParams(0.5, 0.75, 0.5, 1.0, 0.0), atan)
    assert 0.15 < spikes.mean().item() < 0.85
    assert torch.equal(spikes_snn, spikes)
    torch.testing.assert_close(torch.stack(mem_snn), voltages * (1 - spikes), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(syn, final.current, rtol=1e-6, atol=1e-6)

    upstream = torch.randn(inputs.shape, generator=gen)
    (spikes_snn * upstream).sum().backward()
    (spikes * upstream).sum().backward()
    assert x_snn.grad is not None
    assert x_ours.grad is not None
    torch.testing.assert_close(x_ours.grad, x_snn.grad, rtol=1e-5, atol=1e-5)
    x_fused = inputs.clone().requires_grad_(True)
    (current_lif_scan_fused(x_fused, POPSAN, atan) * upstream).sum().backward()
    assert x_fused.grad is not None
    torch.testing.assert_close(x_fused.grad, x_snn.grad, rtol=1e-5, atol=1e-5)

    # 3) The default delayed reset is a different model: constant input 0.6 makes PopSAN fire
    #    every step (v = 0.6, 0.9, 1.05, ...), while the delayed reset silences every other step.
    const = torch.full((4, 1, 1), 0.6)
    lif = snntorch.Synaptic(alpha=0.5, beta=0.75, threshold=0.5, reset_mechanism="zero")
    syn, mem = lif.reset_mem()
    delayed = []
    for inp in const:
        spk, syn, mem = lif(inp, syn, mem)
        delayed.append(spk.item())
    assert current_lif_scan(const, POPSAN, atan)[0].flatten().tolist() == [1.0] * 4
    assert delayed != [1.0] * 4
