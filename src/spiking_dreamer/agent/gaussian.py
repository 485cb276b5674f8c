"""The stochastic actor of SAC: a tanh-squashed Gaussian policy (Haarnoja et al., "Soft
Actor-Critic Algorithms and Applications", 2018, v2, App. C).

An actor's network gives a mean ``mu`` and a log-std ``log_sigma`` (clamped to
``[log_std_min, log_std_max]``) per action dimension; an action is::

    u = mu + sigma * eps,   eps ~ N(0, I)          (reparameterised: differentiable in mu, sigma)
    a = tanh(u) * scale + bias                     (the env's bounds: bias ± scale)

and its log-density, by the change of variables through tanh and the affine map (eq. 26)::

    log pi(a | s) = sum_i [ log N(u_i; mu_i, sigma_i) - log(1 - tanh(u_i)^2) - log scale_i ]

with ``log(1 - tanh(u)^2) = 2 (log 2 - u - softplus(-2 u))``, exact and stable for large
``|u|`` (SpinningUp; PopSAN-SAC). The deterministic (evaluation) action is ``tanh(mu) * scale +
bias``: the actor's ``forward``, so evaluation, export and energy accounting see the mean path.

Actors (:class:`~spiking_dreamer.agent.popsan.PopSpikingGaussianActor`,
:class:`~spiking_dreamer.agent.mlp.MLPGaussianActor`) mix in :class:`SquashedGaussian` and
implement :meth:`SquashedGaussian.gaussian`.
"""

from __future__ import annotations

import itertools
import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from spiking_dreamer.config import SACConfig


def squashed_log_prob(u: Tensor, mean: Tensor, log_std: Tensor, scale: Tensor) -> Tensor:
    """``log pi(a | s)`` ``[N]`` of the squashed, scaled sample ``a = tanh(u) * scale + bias``
    of ``u ~ N(mean, exp(log_std)^2)`` (each ``[N, A]``; ``scale`` ``[A]``); module docstring."""
    gaussian = -0.5 * ((u - mean) / log_std.exp()).square() - log_std - 0.5 * math.log(2 * math.pi)
    log_det_tanh = 2.0 * (math.log(2.0) - u - F.softplus(-2.0 * u))  # log(1 - tanh(u)^2)
    return (gaussian - log_det_tanh).sum(-1) - scale.log().sum()


def squashed_sample(
    mean: Tensor, log_std: Tensor, eps: Tensor, scale: Tensor, bias: Tensor
) -> tuple[Tensor, Tensor]:
    """The reparameterised sample ``a = tanh(mean + exp(log_std) * eps) * scale + bias`` ``[N, A]``
    for standard normal ``eps`` ``[N, A]``, and its log-density ``[N]``.

    The Gaussian term is written with ``eps`` itself, ``log N(u; mean, sigma) = -eps^2 / 2 -
    log sigma - log(2 pi) / 2``: the same value and gradient as :func:`squashed_log_prob`'s
    ``(u - mean) / sigma``, without its cancellation when ``sigma`` is tiny."""
    u = mean + log_std.exp() * eps
    gaussian = -0.5 * eps.square() - log_std - 0.5 * math.log(2 * math.pi)
    log_det_tanh = 2.0 * (math.log(2.0) - u - F.softplus(-2.0 * u))
    log_prob = (gaussian - log_det_tanh).sum(-1) - scale.log().sum()
    return torch.tanh(u) * scale + bias, log_prob


class Gaussian(NamedTuple):
    """The pre-squash Gaussian of a stochastic actor on ``N`` observations.

    mean: ``[N, A]``; log_std: ``[N, A]``, already clamped; spike_trains: the populations whose
    activity the firing-rate penalty measures (encoder first; a spiking actor's, else empty),
    each ``[T, N, F]``.
    """

    mean: Tensor
    log_std: Tensor
    spike_trains: list[Tensor]


class SquashedGaussian:
    """Mixin of the stochastic actors: sampling and log-densities from :meth:`gaussian`.

    The class using it is a :class:`~spiking_dreamer.agent.base.BoundedActor` (``action_scale``,
    ``action_bias``) whose ``forward`` is the deterministic action ``tanh(mean)`` scaled.
    """

    action_scale: Tensor
    action_bias: Tensor
    log_std_min: float
    log_std_max: float

    def gaussian(self, obs: Tensor, generator: torch.Generator | None = None) -> Gaussian:
        """Raw observations ``[N, O]`` -> the pre-squash Gaussian (``generator``: a Bernoulli
        encoder's draws)."""
        raise NotImplementedError

    def log_std_parameters(self) -> list[nn.Parameter]:
        """The parameters that only shape the log-std (optimised at ``sac.log_std_lr``)."""
        raise NotImplementedError

    def init_log_std_head(self, obs_dim: int, act_dim: int, sac: SACConfig) -> bool:
        """Set the clamp and, with ``sac.log_std_head: ann``, the separate log-std MLP
        (``log_std_net``); returns whether the head is ``shared`` (built by the actor itself,
        on its own last hidden layer)."""
        self.log_std_min, self.log_std_max = sac.log_std_min, sac.log_std_max
        self.log_std_head = sac.log_std_head
        if sac.log_std_head == "ann":
            self.log_std_net = LogStdNetwork(obs_dim, act_dim, sac.log_std_hidden_sizes)
            return False
        return True

    def clamp_log_std(self, log_std: Tensor) -> Tensor:
        return log_std.clamp(self.log_std_min, self.log_std_max)

    def squash(self, dist: Gaussian, eps: Tensor) -> tuple[Tensor, Tensor]:
        """The action ``[N, A]`` and log-density ``[N]`` of ``dist`` for noise ``eps``
        ``[N, A]``."""
        return squashed_sample(dist.mean, dist.log_std, eps, self.action_scale, self.action_bias)

    def sample(
        self, obs: Tensor, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        """A reparameterised policy sample ``[N, A]`` for raw observations ``[N, O]`` and its
        log-density ``[N]``. Draws, in order from ``generator``: a Bernoulli encoder's spikes,
        then ``eps ~ N(0, I)`` ``[N, A]``."""
        dist = self.gaussian(obs, generator)
        eps = torch.randn(dist.mean.shape, generator=generator, device=dist.mean.device)
        return self.squash(dist, eps)


class LogStdNetwork(nn.Module):
    """PopSAN-SAC's separate log-std network: a ReLU MLP ``[N, O] -> [N, A]`` on the normalised
    observation (the authors' ``log_std_network``, sized like the actor)."""

    def __init__(self, obs_dim: int, act_dim: int, hidden_sizes: tuple[int, ...]) -> None:
        super().__init__()
        sizes = [obs_dim, *hidden_sizes, act_dim]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(sizes))

    def forward(self, obs_n: Tensor) -> Tensor:
        x = obs_n
        for layer in self.layers[:-1]:
            x = torch.relu(layer(x))
        return self.layers[-1](x)
