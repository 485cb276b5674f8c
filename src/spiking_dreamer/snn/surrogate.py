"""Surrogate-gradient spike functions.

Forward is always the Heaviside step ``s = H(x)`` with ``x = v - threshold`` and the strict
inequality ``x > 0`` (PopSAN convention). Backward replaces the Dirac delta by a pseudo-derivative
``ds/dx = g(x)``:

* ``rect`` (Tang et al., PopSAN, CoRL 2020): ``g(x) = 1[|x| < width]`` (PopSAN: width 0.5).
* ``superspike`` (Zenke & Ganguli, Neural Computation 2018): ``g(x) = 1 / (1 + slope |x|)^2``.
* ``atan`` (Fang et al., ICCV 2021): ``g(x) = (alpha / 2) / (1 + (pi / 2 * alpha * x)^2)``, the
  derivative of ``arctan(pi / 2 * alpha * x) / pi + 1 / 2``.
* ``straight_through``: ``g(x) = 1`` (PopSAN's regular-spike encoder passes gradients unchanged).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor


def rect_grad(x: Tensor, width: float) -> Tensor:
    """Rectangular pseudo-derivative ``1[|x| < width]``."""
    return (x.abs() < width).to(x.dtype)


def superspike_grad(x: Tensor, slope: float) -> Tensor:
    """SuperSpike pseudo-derivative ``1 / (1 + slope |x|)^2``."""
    return 1.0 / (1.0 + slope * x.abs()).square()


def atan_grad(x: Tensor, alpha: float) -> Tensor:
    """ArcTan pseudo-derivative ``(alpha / 2) / (1 + (pi alpha x / 2)^2)``."""
    return (alpha / 2.0) / (1.0 + (math.pi / 2.0 * alpha * x).square())


def straight_through_grad(x: Tensor, scale: float) -> Tensor:
    """Identity pseudo-derivative ``scale`` (1 for PopSAN's encoder)."""
    return torch.full_like(x, scale)


_GRADS: dict[str, tuple[Callable[[Tensor, float], Tensor], str, float]] = {
    "rect": (rect_grad, "width", 0.5),
    "superspike": (superspike_grad, "slope", 10.0),
    "atan": (atan_grad, "alpha", 2.0),
    "straight_through": (straight_through_grad, "scale", 1.0),
}
SURROGATES: tuple[str, ...] = tuple(_GRADS)


class _SpikeFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: Tensor, kind: str, scale: float) -> Tensor:
        ctx.save_for_backward(x)
        ctx.kind = kind
        ctx.scale = scale
        return (x > 0).to(x.dtype)

    @staticmethod
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor, None, None]:
        (x,) = ctx.saved_tensors
        grad_fn = _GRADS[ctx.kind][0]
        return grad_out * grad_fn(x, ctx.scale), None, None


class SurrogateSpike:
    """A spike nonlinearity ``x -> H(x)`` with a named surrogate gradient.

    Args:
        kind: one of ``SURROGATES`` (``"rect"``, ``"superspike"``, ``"atan"``).
        scale: the surrogate's shape parameter (rect width, SuperSpike slope, atan alpha);
            ``None`` takes the default of that surrogate (0.5, 10.0, 2.0).

    Calling it on ``x`` of any shape returns spikes of the same shape and dtype.
    """

    def __init__(self, kind: str = "rect", scale: float | None = None) -> None:
        if kind not in _GRADS:
            raise ValueError(f"unknown surrogate {kind!r}; choose one of {list(SURROGATES)}")
        self.kind = kind
        self.scale = float(_GRADS[kind][2] if scale is None else scale)
        if self.scale <= 0:
            raise ValueError(f"surrogate {_GRADS[kind][1]} must be > 0, got {self.scale}")

    def __call__(self, x: Tensor) -> Tensor:
        if torch.is_grad_enabled() and x.requires_grad:
            return _SpikeFunction.apply(x, self.kind, self.scale)
        return (x > 0).to(x.dtype)

    def grad(self, x: Tensor) -> Tensor:
        """The pseudo-derivative ``g(x)`` used in the backward pass."""
        return _GRADS[self.kind][0](x, self.scale)

    def __repr__(self) -> str:
        return f"SurrogateSpike({self.kind!r}, {_GRADS[self.kind][1]}={self.scale})"


def make_surrogate(kind: str, scale: float | None = None) -> SurrogateSpike:
    """Build a :class:`SurrogateSpike` by name."""
    return SurrogateSpike(kind, scale)
