"""Population decoder (PopSAN; Tang et al., CoRL 2020).

The firing rates of ``pop_dim`` output neurons per output dimension are combined by an
independent affine map per dimension (PopSAN's grouped ``Conv1d``)::

    y_k = sum_j w_kj * r_kj + b_k
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class PopulationDecoder(nn.Module):
    """Per-dimension weighted sum of population firing rates.

    Args:
        out_dim: number of decoded outputs ``K``.
        pop_dim: neurons per output ``P``.

    Shapes: rates ``[B, K * P]`` -> ``[B, K]``.
    """

    def __init__(self, out_dim: int, pop_dim: int) -> None:
        super().__init__()
        self.out_dim, self.pop_dim = out_dim, pop_dim
        bound = 1.0 / math.sqrt(pop_dim)  # nn.Conv1d's default init for fan_in = pop_dim
        self.weight = nn.Parameter(torch.empty(out_dim, pop_dim).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(out_dim).uniform_(-bound, bound))

    def forward(self, rates: Tensor) -> Tensor:
        grouped = rates.unflatten(-1, (self.out_dim, self.pop_dim))
        return (grouped * self.weight).sum(-1) + self.bias
