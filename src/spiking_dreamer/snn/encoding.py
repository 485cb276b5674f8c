"""Population encoder with learnable Gaussian receptive fields (PopSAN; Tang et al., CoRL 2020).

Each input dimension ``i`` is covered by ``pop_dim`` neurons with means ``mu_ij`` (initialised
evenly over ``mean_range``) and widths ``sigma_ij`` (initialised to ``std``). Their activation is::

    A_ij = exp(-0.5 * (x_i - mu_ij)^2 / sigma_ij^2)

and is turned into spikes over ``T`` steps, either

* deterministically (regular spikes): ``v += A; s = H(v - 0.999); v -= 0.999 s``, with a
  straight-through gradient (PopSAN's ``PseudoEncoderSpikeRegular``), or
* stochastically: ``s_t ~ Bernoulli(A)``, also straight-through (PopSAN's Poisson option, used for
  Hopper and Walker2d).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

ENCODER_THRESHOLD = 0.999
ENCODINGS = ("deterministic", "bernoulli")


class PopulationEncoder(nn.Module):
    """Gaussian receptive-field population encoder.

    Args:
        in_dim: input dimension ``D``.
        pop_dim: neurons per input dimension ``P``.
        mean_range: ``(low, high)`` over which the initial means are spread.
        std: initial width of every receptive field.
        encoding: ``"deterministic"`` or ``"bernoulli"``.

    Shapes: input ``[B, D]`` -> spikes ``[T, B, D * P]``.
    """

    def __init__(
        self,
        in_dim: int,
        pop_dim: int,
        mean_range: tuple[float, float] = (-3.0, 3.0),
        std: float = math.sqrt(0.15),
        encoding: str = "deterministic",
    ) -> None:
        super().__init__()
        if encoding not in ENCODINGS:
            raise ValueError(f"unknown encoding {encoding!r}; choose one of {list(ENCODINGS)}")
        if pop_dim < 2:
            raise ValueError(f"pop_dim must be >= 2, got {pop_dim}")
        self.in_dim, self.pop_dim, self.encoding = in_dim, pop_dim, encoding
        means = torch.linspace(mean_range[0], mean_range[1], pop_dim)
        self.mean = nn.Parameter(means.repeat(in_dim, 1))  # [D, P]
        self.std = nn.Parameter(torch.full((in_dim, pop_dim), float(std)))  # [D, P]

    @property
    def out_dim(self) -> int:
        return self.in_dim * self.pop_dim

    def activation(self, x: Tensor) -> Tensor:
        """Receptive-field activations ``[B, D * P]`` in (0, 1] for inputs ``[B, D]``."""
        a = torch.exp(-0.5 * (x.unsqueeze(-1) - self.mean).square() / self.std.square())
        return a.flatten(-2)

    def forward(
        self, x: Tensor, time_steps: int, generator: torch.Generator | None = None
    ) -> Tensor:
        """Encode ``x`` ``[B, D]`` into spikes ``[T, B, D * P]``.

        ``generator`` drives the Bernoulli draws (ignored by the deterministic encoding).
        """
        act = self.activation(x)
        if self.encoding == "bernoulli":
            shape = (time_steps, *act.shape)
            draws = torch.rand(shape, generator=generator, device=act.device, dtype=act.dtype)
            sample = (draws < act).to(act.dtype)
            return act + (sample - act).detach()  # straight-through
        with torch.no_grad():
            spikes = regular_spikes(act, time_steps)
        if torch.is_grad_enabled() and act.requires_grad:
            # Straight-through: ds_t/dA = dv_t/dA, constant in A (see regular_spike_grads).
            grads = regular_spike_grads(time_steps, act.dtype, act.device)
            spikes = spikes + (act - act.detach()).unsqueeze(0) * grads.view(-1, *[1] * act.dim())
        return spikes


def regular_spikes(act: Tensor, time_steps: int) -> Tensor:
    """Deterministic regular spike trains ``[T, ...]`` of activations ``act`` in [0, 1]:
    ``v += A; s = H(v - 0.999); v -= 0.999 s``."""
    spikes = torch.empty(time_steps, *act.shape, dtype=act.dtype, device=act.device)
    volt = torch.zeros_like(act)
    for t in range(time_steps):
        volt += act
        torch.gt(volt, ENCODER_THRESHOLD, out=spikes[t])
        volt -= ENCODER_THRESHOLD * spikes[t]
    return spikes


def regular_spike_grads(
    time_steps: int, dtype: torch.dtype = torch.float32, device: torch.device | None = None
) -> Tensor:
    """``ds_t/dA`` ``[T]`` of the regular encoder under PopSAN's straight-through gradient.

    With ``ds_t/dv_t = 1``: ``dv_1/dA = 1`` and ``dv_{t+1}/dA = c dv_t/dA + 1`` with
    ``c = 1 - 0.999``, i.e. ``dv_t/dA = (1 - c^t) / (1 - c)``. Built on ``device`` (a copy
    from the host would make a CUDA forward wait for the device).
    """
    c = 1.0 - ENCODER_THRESHOLD
    t = torch.arange(1, time_steps + 1, dtype=dtype, device=device)
    return (1.0 - torch.pow(c, t)) / (1.0 - c)
