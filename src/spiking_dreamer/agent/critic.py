"""Twin Q critic (TD3; Fujimoto et al., ICML 2018): two ReLU MLPs evaluated in one batched pass."""

from __future__ import annotations

import itertools

import torch
from torch import Tensor, nn

from spiking_dreamer.layers import EnsembleLinear


class TwinQCritic(nn.Module):
    """``Q_1, Q_2 : (normalised obs, action) -> R``, stacked as an ensemble of two.

    Shapes: obs ``[B, O]``, action ``[B, A]`` -> ``[2, B]``.
    """

    def __init__(self, obs_dim: int, act_dim: int, hidden_sizes: tuple[int, ...]) -> None:
        super().__init__()
        sizes = [obs_dim + act_dim, *hidden_sizes, 1]
        self.layers = nn.ModuleList(EnsembleLinear(2, a, b) for a, b in itertools.pairwise(sizes))

    def forward(self, obs: Tensor, action: Tensor) -> Tensor:
        x = torch.cat([obs, action], dim=-1)
        for layer in self.layers[:-1]:
            x = torch.relu(layer(x))
        return self.layers[-1](x).squeeze(-1)
