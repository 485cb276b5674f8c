"""Common machinery of ensemble dynamics models: normalisers, losses, raw-space prediction.

A model maps ``(s, a)`` to the state change and reward, ``(s' - s, r)``, for all ``E`` members at
once. Inputs and targets are z-scored by normalisers that are part of the model's state dict
(so every checkpoint carries them); :meth:`predict` speaks raw observations only.
Delta-state targets, Gaussian NLL with soft-bounded log-variance: Chua et al., "Deep RL in a
Handful of Trials using Probabilistic Dynamics Models" (PETS), NeurIPS 2018; Janner et al.,
"When to Trust Your Model" (MBPO), NeurIPS 2019.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from spiking_dreamer.normalization import RunningNormalizer


def split_rows(x: Tensor, chunk: int) -> tuple[Tensor, ...]:
    """``x`` ``[N, ...]`` in ``ceil(N / chunk)`` pieces of balanced size (they differ by at most
    one row), or whole when ``chunk`` is 0 or ``N <= chunk``. Balanced, so that no piece is a
    few leftover rows: a matrix kernel picked for a tiny shape can round differently."""
    n = x.shape[0]
    if not 0 < chunk < n:
        return (x,)
    return x.tensor_split(-(-n // chunk))


class Prediction(NamedTuple):
    """Per-member predictions for ``N`` transitions.

    next_obs: ``[E, N, O]`` raw next observations (mean of each member).
    reward: ``[E, N]`` raw rewards (mean of each member).
    mean: ``[E, N, O + 1]`` normalised (state change, reward) means.
    logvar: ``[E, N, O + 1]`` normalised log-variances, or ``None`` for a deterministic head.
    """

    next_obs: Tensor
    reward: Tensor
    mean: Tensor
    logvar: Tensor | None


class EnsembleDynamicsModel(nn.Module):
    """Base class; subclasses implement :meth:`forward_normalized`.

    Args:
        obs_dim, act_dim: sizes ``O`` and ``A``.
        ensemble_size: members ``E``.
        num_elites: members used for dreaming, chosen by hold-out loss.
        gaussian: whether the head predicts a log-variance (trained with NLL) besides the mean.
    """

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        ensemble_size: int,
        num_elites: int,
        gaussian: bool,
        reward_weight: float = 1.0,
    ) -> None:
        super().__init__()
        self.obs_dim, self.act_dim = obs_dim, act_dim
        self.in_dim, self.out_dim = obs_dim + act_dim, obs_dim + 1
        weights = torch.ones(self.out_dim)
        weights[-1] = reward_weight
        # the loss's weight per output (states 1, the reward reward_weight), rescaled to mean 1
        self.register_buffer("output_weights", weights * self.out_dim / weights.sum(), False)
        self.ensemble_size, self.gaussian = ensemble_size, gaussian
        self.input_normalizer = RunningNormalizer(self.in_dim)
        self.target_normalizer = RunningNormalizer(self.out_dim)
        self.register_buffer("elites", torch.arange(num_elites))
        if gaussian:
            self.max_logvar = nn.Parameter(torch.full((1, 1, self.out_dim), 0.5))
            self.min_logvar = nn.Parameter(torch.full((1, 1, self.out_dim), -10.0))

    def forward_normalized(
        self, x: Tensor, members: Tensor | None = None
    ) -> tuple[Tensor, Tensor | None]:
        """Normalised inputs ``[E, B, in]`` (or ``[B, in]``, shared) -> mean ``[E, B, out]`` and
        log-variance ``[E, B, out]`` (``None`` for a deterministic head). ``members``
        (indices ``[K]``): those members only, ``E`` read as ``K`` (members are independent,
        so their outputs are the same as in the whole ensemble's forward)."""
        raise NotImplementedError

    def reset_diagnostics(self) -> None:
        """Start a new window for :meth:`diagnostics` (nothing to reset by default)."""

    def diagnostics(self) -> dict[str, float]:
        """What this kind reports about its forwards since :meth:`reset_diagnostics` (e.g. the
        spiking model's firing rates), keyed by name; none by default."""
        return {}

    def bound_logvar(self, raw: Tensor) -> Tensor:
        """Soft bounds between the learned ``min_logvar`` and ``max_logvar`` (PETS)."""
        logvar = self.max_logvar - F.softplus(self.max_logvar - raw)
        return self.min_logvar + F.softplus(logvar - self.min_logvar)

    def fit_normalizers(
        self, obs: Tensor, action: Tensor, next_obs: Tensor, reward: Tensor
    ) -> None:
        """Reset the normalisers to the statistics of the given real transitions ``[N, ...]``."""
        for norm in (self.input_normalizer, self.target_normalizer):
            norm.count.zero_()
            norm.mean.zero_()
            norm.m2.zero_()
        self.input_normalizer.update(torch.cat([obs, action], -1))
        self.target_normalizer.update(torch.cat([next_obs - obs, reward.unsqueeze(-1)], -1))

    def normalize_batch(
        self, obs: Tensor, action: Tensor, next_obs: Tensor, reward: Tensor
    ) -> tuple[Tensor, Tensor]:
        """Normalised inputs ``[..., in]`` and targets ``[..., out]``."""
        x = self.input_normalizer(torch.cat([obs, action], -1))
        y = self.target_normalizer(torch.cat([next_obs - obs, reward.unsqueeze(-1)], -1))
        return x, y

    def loss(self, x: Tensor, y: Tensor) -> Tensor:
        """Per-member loss ``[E]`` for normalised ``x`` ``[E, B, in]`` and ``y`` ``[E, B, out]``:
        MSE for a deterministic head; Gaussian NLL plus the log-variance bound penalty otherwise."""
        mean, logvar = self.forward_normalized(x)
        w = self.output_weights
        if logvar is None:
            return ((mean - y).square() * w).mean((1, 2))
        nll = (((mean - y).square() * torch.exp(-logvar) + logvar) * w).mean((1, 2))
        return nll + 0.01 * (self.max_logvar.sum() - self.min_logvar.sum()) / self.ensemble_size

    @torch.no_grad()
    def mse(self, x: Tensor, y: Tensor) -> Tensor:
        """Per-member MSE ``[E]`` of the mean on normalised ``x`` ``[B, in]`` and ``y``."""
        mean, _ = self.forward_normalized(x)
        return (mean - y).square().mean((1, 2))

    def predict(
        self, obs: Tensor, action: Tensor, chunk: int = 0, members: Tensor | None = None
    ) -> Prediction:
        """Raw ``obs`` ``[N, O]`` and ``action`` ``[N, A]`` -> per-member predictions.

        ``chunk > 0`` runs the members' forward over at most ``chunk`` rows at a time
        (:func:`split_rows`): the rows are independent, so the values are the same (up to the
        rounding of the matrix kernels chosen for the smaller shape), and on a CPU the
        activations stay in cache.
        ``members`` (indices ``[K]``): only those members, each prediction ``[K, N, ...]``."""
        x = self.input_normalizer(torch.cat([obs, action], -1))
        if 0 < chunk < x.shape[0]:
            parts = [self.forward_normalized(c, members) for c in split_rows(x, chunk)]
            mean = torch.cat([m for m, _ in parts], 1)
            logvar = None if parts[0][1] is None else torch.cat([v for _, v in parts], 1)
        else:
            mean, logvar = self.forward_normalized(x, members)
        raw = self.target_normalizer.denormalize(mean)
        return Prediction(obs + raw[..., : self.obs_dim], raw[..., self.obs_dim], mean, logvar)
