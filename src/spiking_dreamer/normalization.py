"""Running mean/variance normaliser whose statistics live in the module's state dict."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class RunningNormalizer(nn.Module):
    """Z-score normaliser with running statistics (Chan et al.'s parallel variance update).

    Statistics are float64 buffers (``count``, ``mean``, ``m2``), so they travel with
    ``state_dict()`` into every checkpoint. ``forward`` returns
    ``clip((x - mean) / sqrt(var + eps), -clip, +clip)`` in the input's dtype; before the first
    update the mean is 0 and the variance 1.

    Args:
        dim: feature dimension ``D``; inputs are ``[..., D]``.
        clip: absolute clip of the z-scores (``None`` for no clipping).
        eps: added to the variance.
    """

    def __init__(self, dim: int, clip: float | None = None, eps: float = 1e-8) -> None:
        super().__init__()
        self.dim, self.clip, self.eps = dim, clip, eps
        self.register_buffer("count", torch.zeros((), dtype=torch.float64))
        self.register_buffer("mean", torch.zeros(dim, dtype=torch.float64))
        self.register_buffer("m2", torch.zeros(dim, dtype=torch.float64))
        # float32 copies used on the hot path, refreshed after every change of the statistics
        self.register_buffer("_shift", torch.zeros(dim), persistent=False)
        self.register_buffer("_scale", torch.ones(dim), persistent=False)
        self.register_load_state_dict_post_hook(lambda module, _: module._refresh())

    @property
    def var(self) -> Tensor:
        return self.m2 / self.count if self.count > 0 else torch.ones_like(self.m2)

    @torch.no_grad()
    def update(self, x: Tensor) -> None:
        """Fold a batch ``[N, D]`` (or one sample ``[D]``) into the statistics."""
        x = x.reshape(-1, self.dim).to(self.mean.device, torch.float64)
        n = x.shape[0]
        if n == 0:
            return
        batch_mean = x.mean(0)
        batch_m2 = (x - batch_mean).square().sum(0)
        total = self.count + n
        delta = batch_mean - self.mean
        self.mean += delta * (n / total)
        self.m2 += batch_m2 + delta.square() * (self.count * n / total)
        self.count.copy_(total)
        self._refresh()

    def _refresh(self) -> None:
        self._shift.copy_(self.mean)
        self._scale.copy_(1.0 / torch.sqrt(self.var + self.eps))

    def forward(self, x: Tensor) -> Tensor:
        z = (x - self._shift.to(x.dtype)) * self._scale.to(x.dtype)
        return z.clamp(-self.clip, self.clip) if self.clip is not None else z

    def denormalize(self, z: Tensor) -> Tensor:
        """Inverse of ``forward`` (ignoring clipping)."""
        return z / self._scale.to(z.dtype) + self._shift.to(z.dtype)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, clip={self.clip}"
