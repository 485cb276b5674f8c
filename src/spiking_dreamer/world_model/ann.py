"""ANN reference ensemble: MBPO's probabilistic dynamics model (Janner et al., NeurIPS 2019).

``E`` members, each ``in -> 4 x 200 (SiLU/swish) -> mean, log-variance`` over (state change,
reward), all members in one batched matmul per layer.
"""

from __future__ import annotations

import itertools

import torch.nn.functional as F
from torch import Tensor, nn

from spiking_dreamer.layers import EnsembleLinear
from spiking_dreamer.world_model.base import EnsembleDynamicsModel


class GaussianMLPEnsemble(EnsembleDynamicsModel):
    """MBPO-style ensemble of Gaussian MLPs (``hidden_sizes`` default 4 x 200)."""

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        ensemble_size: int = 7,
        num_elites: int = 5,
        hidden_sizes: tuple[int, ...] = (200, 200, 200, 200),
        gaussian: bool = True,
        reward_weight: float = 1.0,
    ) -> None:
        super().__init__(obs_dim, act_dim, ensemble_size, num_elites, gaussian, reward_weight)
        sizes = [self.in_dim, *hidden_sizes]
        self.hidden = nn.ModuleList(
            EnsembleLinear(ensemble_size, a, b) for a, b in itertools.pairwise(sizes)
        )
        self.mean_head = EnsembleLinear(ensemble_size, sizes[-1], self.out_dim)
        self.logvar_head = (
            EnsembleLinear(ensemble_size, sizes[-1], self.out_dim) if gaussian else None
        )

    def forward_normalized(
        self, x: Tensor, members: Tensor | None = None
    ) -> tuple[Tensor, Tensor | None]:
        for layer in self.hidden:
            x = F.silu(layer(x, members))
        logvar = None
        if self.logvar_head is not None:
            logvar = self.bound_logvar(self.logvar_head(x, members))
        return self.mean_head(x, members), logvar
