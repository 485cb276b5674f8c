"""ANN reference actor: the same pipeline as PopSAN with an MLP in place of the spiking network.

raw observation -> the same running z-score (clipped) -> MLP (ReLU) -> tanh -> action bounds.
This is the TD3 paper's actor (Fujimoto et al., ICML 2018) and the honest ANN comparator for a
spiking actor trained in exactly the same loop.
"""

from __future__ import annotations

import itertools

import torch
from torch import Tensor, nn

from spiking_dreamer.agent.base import BoundedActor
from spiking_dreamer.config import ActorConfig


class MLPActor(BoundedActor):
    """Deterministic MLP actor with the PopSAN actor's interface.

    Args:
        obs_dim: observation size ``O``.
        action_low, action_high: action bounds, each ``[A]``.
        cfg: ``hidden_sizes`` and ``obs_clip`` are used.
    """

    def __init__(
        self, obs_dim: int, action_low: Tensor, action_high: Tensor, cfg: ActorConfig
    ) -> None:
        super().__init__(obs_dim, action_low, action_high, cfg.obs_clip)
        self.cfg = cfg
        sizes = [obs_dim, *cfg.hidden_sizes, self.act_dim]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(sizes))

    def forward(self, obs: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Raw observations ``[B, O]`` -> actions ``[B, A]`` (``generator`` is unused)."""
        x = self.obs_normalizer(obs)
        for layer in self.layers[:-1]:
            x = torch.relu(layer(x))
        return self.scale_action(torch.tanh(self.layers[-1](x)))
