"""Tests for the surrogate-gradient spike functions in ``spiking_dreamer.snn.surrogate``."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor

from spiking_dreamer.snn.surrogate import SURROGATES, SurrogateSpike, make_surrogate

DEFAULT_SCALES = {"rect": 0.5, "superspike": 10.0, "atan": 2.0, "straight_through": 1.0}


def hand_grad(kind: str, scale: float, x: float) -> float:
    """The pseudo-derivative written out independently of the module under test."""
    if kind == "rect":
        return 1.0 if abs(x) < scale else 0.0
    if kind == "superspike":
        return 1.0 / (1.0 + scale * abs(x)) ** 2
    if kind == "atan":
        return (scale / 2.0) / (1.0 + (math.pi / 2.0 * scale * x) ** 2)
    if kind == "straight_through":
        return scale
    raise AssertionError(kind)


def test_surrogates_listed() -> None:
    assert set(SURROGATES) == set(DEFAULT_SCALES)


@pytest.mark.parametrize("kind", SURROGATES)
def test_default_scale(kind: str) -> None:
    spike = make_surrogate(kind)
    assert spike.kind == kind
    assert spike.scale == DEFAULT_SCALES[kind]
    assert kind in repr(spike)


@pytest.mark.parametrize("kind", SURROGATES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("requires_grad", [False, True])
def test_forward_is_strict_heaviside(kind: str, dtype: torch.dtype, requires_grad: bool) -> None:
    """``H(x) = 1[x > 0]``: zero (and negative zero) map to 0, the smallest positive to 1."""
    tiny = torch.finfo(dtype).tiny
    x = torch.tensor(
        [[-1.0, -1e-7, 0.0, -0.0], [tiny, 1e-7, 0.5, 3.0]], dtype=dtype, requires_grad=requires_grad
    )
    out = SurrogateSpike(kind)(x)
    expected = torch.tensor([[0.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0]], dtype=dtype)
    assert out.dtype == dtype
    assert out.shape == x.shape
    assert torch.equal(out, expected)
    assert out.requires_grad == requires_grad


@pytest.mark.parametrize(
    ("kind", "scale", "x", "expected"),
    [
        ("rect", 0.5, 0.3, 1.0),
        ("rect", 0.5, 0.6, 0.0),
        ("rect", 0.5, -0.49, 1.0),
        ("rect", 0.5, -0.6, 0.0),
        ("rect", 0.5, 0.0, 1.0),
        ("rect", 0.5, 0.5, 0.0),  # strict: |x| < width
        ("rect", 0.2, 0.3, 0.0),  # non-default width
        ("rect", 0.2, -0.1, 1.0),
        ("superspike", 10.0, 0.1, 0.25),  # 1 / (1 + 1)^2
        ("superspike", 10.0, -0.3, 1.0 / 16.0),  # 1 / (1 + 3)^2
        ("superspike", 10.0, 0.0, 1.0),
        ("superspike", 5.0, 0.2, 0.25),  # non-default slope: 1 / (1 + 1)^2
        ("atan", 2.0, 0.0, 1.0),  # (2 / 2) / 1
        ("atan", 2.0, 0.5, 1.0 / (1.0 + (math.pi / 2.0) ** 2)),
        ("atan", 2.0, -0.5, 1.0 / (1.0 + (math.pi / 2.0) ** 2)),
        ("atan", 4.0, 0.25, 2.0 / (1.0 + (math.pi / 2.0) ** 2)),  # non-default alpha
        ("straight_through", 1.0, -5.0, 1.0),
        ("straight_through", 1.0, 0.0, 1.0),
        ("straight_through", 1.0, 3.0, 1.0),
        ("straight_through", 0.5, 3.0, 0.5),
    ],
)
def test_backward_hand_values(kind: str, scale: float, x: float, expected: float) -> None:
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    SurrogateSpike(kind, scale)(xt).backward()
    assert xt.grad is not None
    assert xt.grad.item() == pytest.approx(expected, rel=1e-12, abs=1e-12)
    # The helper used by the fused neuron backward must agree with autograd.
    helper = SurrogateSpike(kind, scale).grad(torch.tensor(x, dtype=torch.float64))
    assert helper.item() == pytest.approx(expected, rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("kind", SURROGATES)
def test_backward_chain_rule(kind: str) -> None:
    """``d/dx sum(H(x) * w) = w * g(x)`` elementwise."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(4, 5, generator=gen, dtype=torch.float64).requires_grad_(True)
    w = torch.randn(4, 5, generator=gen, dtype=torch.float64)
    spike = SurrogateSpike(kind)
    (spike(x) * w).sum().backward()
    scale = DEFAULT_SCALES[kind]
    rows = x.detach().tolist()
    g = torch.tensor([[hand_grad(kind, scale, v) for v in row] for row in rows], dtype=x.dtype)
    assert x.grad is not None
    torch.testing.assert_close(x.grad, w * g, rtol=1e-12, atol=1e-12)


def test_rect_gradient_masks_upstream() -> None:
    x = torch.tensor([0.3, 0.6, -0.49, -2.0], requires_grad=True)
    (SurrogateSpike("rect")(x) * torch.tensor([2.0, 3.0, -4.0, 5.0])).sum().backward()
    assert x.grad is not None
    assert torch.equal(x.grad, torch.tensor([2.0, 0.0, -4.0, 0.0]))


def test_unknown_kind_raises() -> None:
    with pytest.raises(ValueError, match="unknown surrogate"):
        SurrogateSpike("sigmoid")
    with pytest.raises(ValueError, match="unknown surrogate"):
        make_surrogate("RECT")


@pytest.mark.parametrize("kind", SURROGATES)
@pytest.mark.parametrize("scale", [0.0, -1.0])
def test_non_positive_scale_raises(kind: str, scale: float) -> None:
    with pytest.raises(ValueError, match="must be > 0"):
        SurrogateSpike(kind, scale)


@pytest.mark.parametrize("kind", SURROGATES)
def test_no_grad_matches_grad_output(kind: str) -> None:
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(3, 7, generator=gen)
    x[0, 0] = 0.0
    spike = SurrogateSpike(kind)
    with_grad: Tensor = spike(x.clone().requires_grad_(True))
    with torch.no_grad():
        without = spike(x.clone().requires_grad_(True))
    assert with_grad.requires_grad
    assert not without.requires_grad
    assert torch.equal(with_grad.detach(), without)
    assert torch.equal(spike(x), without)
