"""Batched layers shared by the critic and the world-model ensemble."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class EnsembleLinear(nn.Module):
    """``E`` independent affine maps applied in one batched matmul (mbrl-lib's layout).

    Weights are ``[E, in, out]``, biases ``[E, 1, out]``; each member is initialised like an
    ``nn.Linear`` of its own (uniform in ``±1/sqrt(in)``), drawn from ``generator``.

    Shapes: ``[E, B, in] -> [E, B, out]``; an input ``[B, in]`` is shared by all members.
    """

    def __init__(
        self,
        ensemble_size: int,
        in_features: int,
        out_features: int,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.ensemble_size, self.in_features, self.out_features = (
            ensemble_size,
            in_features,
            out_features,
        )
        bound = 1.0 / math.sqrt(in_features)
        w = torch.rand(ensemble_size, in_features, out_features, generator=generator)
        b = torch.rand(ensemble_size, 1, out_features, generator=generator)
        self.weight = nn.Parameter((2 * w - 1) * bound)
        self.bias = nn.Parameter((2 * b - 1) * bound)

    def forward(self, x: Tensor, members: Tensor | None = None) -> Tensor:
        """``members`` (indices ``[K]``): only those members' maps, ``[K, B, in]`` (or shared
        ``[B, in]``) ``-> [K, B, out]``."""
        weight, bias = self.weight, self.bias
        if members is not None:
            weight, bias = weight[members], bias[members]
        if x.dim() == 2:
            x = x.expand(weight.shape[0], *x.shape)
        return torch.baddbmm(bias, x, weight)

    def extra_repr(self) -> str:
        return f"ensemble_size={self.ensemble_size}, in={self.in_features}, out={self.out_features}"
