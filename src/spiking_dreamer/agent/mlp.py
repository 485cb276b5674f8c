"""ANN reference actor: the same pipeline as PopSAN with an MLP in place of the spiking network.

raw observation -> the same running z-score (clipped) -> MLP (ReLU) -> tanh -> action bounds.
This is the TD3 paper's actor (Fujimoto et al., ICML 2018) and the honest ANN comparator for a
spiking actor trained in exactly the same loop. :class:`MLPGaussianActor` is the comparator of
PopSAN-SAC: the MLP gives the squashed Gaussian's mean, the log-std comes from the same
separate log-std network, or from a second linear head on the last hidden layer (SAC's actor,
Haarnoja et al. 2018).
"""

from __future__ import annotations

import itertools

import torch
from torch import Tensor, nn

from spiking_dreamer.agent.base import BoundedActor
from spiking_dreamer.agent.gaussian import Gaussian, SquashedGaussian
from spiking_dreamer.config import ActorConfig, SACConfig


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


class MLPGaussianActor(SquashedGaussian, MLPActor):
    """The MLP reference of PopSAN-SAC's stochastic actor: ``forward`` is the deterministic
    action ``tanh(mean)`` within the bounds, :meth:`gaussian` adds the log-std from a separate
    ReLU MLP on the normalised observation (``sac.log_std_head: ann``) or from a linear head on
    the last hidden layer (``shared``).

    Args:
        obs_dim: observation size ``O``.
        action_low, action_high: action bounds, each ``[A]``.
        cfg: ``hidden_sizes`` and ``obs_clip`` are used.
        sac: the log-std head and its clamp.
    """

    def __init__(
        self,
        obs_dim: int,
        action_low: Tensor,
        action_high: Tensor,
        cfg: ActorConfig,
        sac: SACConfig,
    ) -> None:
        super().__init__(obs_dim, action_low, action_high, cfg)
        if self.init_log_std_head(obs_dim, self.act_dim, sac):
            self.log_std_layer = nn.Linear(cfg.hidden_sizes[-1], self.act_dim)

    def log_std_parameters(self) -> list[nn.Parameter]:
        if self.log_std_head == "ann":
            return list(self.log_std_net.parameters())
        return list(self.log_std_layer.parameters())

    def gaussian(self, obs: Tensor, generator: torch.Generator | None = None) -> Gaussian:
        """Raw observations ``[N, O]`` -> mean and clamped log-std ``[N, A]`` (no spike trains;
        ``generator`` is unused)."""
        obs_n = self.obs_normalizer(obs)
        x = obs_n
        for layer in self.layers[:-1]:
            x = torch.relu(layer(x))
        mean = self.layers[-1](x)
        log_std = self.log_std_net(obs_n) if self.log_std_head == "ann" else self.log_std_layer(x)
        return Gaussian(mean, self.clamp_log_std(log_std), [])
