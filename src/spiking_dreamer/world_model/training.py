"""Training of an ensemble dynamics model on real transitions (MBPO's recipe, budgeted).

Each phase: refit the normalisers on all real data, hold out a random ``holdout_ratio`` of it
(at most ``max_holdout``), then take at most ``train_steps`` gradient steps in which every member
draws its own minibatch, indices with replacement from the training split (a per-run generator);
unlike MBPO's, the members share that split (no bootstrap resample of their own). Every
``holdout_every`` steps the per-member hold-out MSE is measured; the phase stops early when no
member improved by more than 1% for ``patience`` checks. The ``num_elites`` members with the
lowest hold-out MSE become the elites. With ``keep_best`` the phase ends with the weights of its
last check at which a member improved (the weights mbrl-lib's ``keep_best`` keeps), and the
elites are ranked by that check's scores. Transitions with non-finite values are left out, a
non-finite loss skips that step (counted), and gradients are clipped per member.
"""

from __future__ import annotations

import math

import torch

from spiking_dreamer.buffers import Batch, ReplayBuffer
from spiking_dreamer.config import WorldModelConfig
from spiking_dreamer.world_model.base import EnsembleDynamicsModel


def clip_grad_norm_per_member(model: EnsembleDynamicsModel, max_norm: float) -> None:
    """Clip each member's gradient norm separately, so one member cannot shrink the others'
    updates; parameters without a leading ensemble dimension are clipped as one group."""
    e = model.ensemble_size
    members = [p.grad for p in model.parameters() if p.grad is not None and p.shape[0] == e]
    shared = [p for p in model.parameters() if p.grad is not None and p.shape[0] != e]
    if members:
        sq = torch.stack([g.reshape(e, -1).square().sum(1) for g in members]).sum(0)
        scale = (max_norm / (sq.sqrt() + 1e-6)).clamp(max=1.0)
        for g in members:
            g.mul_(scale.view(e, *[1] * (g.dim() - 1)))
    if shared:
        torch.nn.utils.clip_grad_norm_(shared, max_norm)


class ModelTrainer:
    """Owns the model's optimiser, its version counter and the training schedule."""

    def __init__(
        self, model: EnsembleDynamicsModel, cfg: WorldModelConfig, generator: torch.Generator
    ) -> None:
        self.model, self.cfg, self.generator = model, cfg, generator
        self.optimizer = torch.optim.Adam(
            model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True
        )
        self.version = 0
        self.skipped_steps = 0
        self.last_holdout_mse = math.nan
        """Mean hold-out MSE over members after the latest phase."""

    def train_phase(self, buffer: ReplayBuffer, max_steps: int | None = None) -> dict[str, float]:
        """One training phase on the first ``len(buffer)`` transitions of ``buffer``."""
        cfg, model, g = self.cfg, self.model, self.generator
        data = buffer.gather(torch.arange(len(buffer), device=buffer.device))
        rows = torch.cat([data.obs, data.action, data.next_obs, data.reward[:, None]], -1)
        finite = torch.isfinite(rows).all(-1)
        data = Batch(*(x[finite] for x in data))  # a non-finite row must not poison the normalisers
        n = len(data.reward)
        if n < 2:
            return {"model/train_steps": 0.0}
        model.fit_normalizers(data.obs, data.action, data.next_obs, data.reward)
        x_all, y_all = model.normalize_batch(data.obs, data.action, data.next_obs, data.reward)
        perm = torch.randperm(n, generator=g, device=buffer.device)
        n_hold = min(max(1, int(cfg.holdout_ratio * n)), cfg.max_holdout, n - 1)
        hold, train = perm[:n_hold], perm[n_hold:]
        e, b = model.ensemble_size, cfg.batch_size

        model.train()
        best = torch.full((e,), math.inf, device=buffer.device)
        since_improved, steps, losses = 0, 0, []
        holdout = best
        kept: tuple[dict[str, torch.Tensor], torch.Tensor] | None = None  # weights, hold-out
        for step in range(cfg.train_steps if max_steps is None else max_steps):
            idx = train[torch.randint(len(train), (e, b), generator=g, device=buffer.device)]
            loss = model.loss(x_all[idx], y_all[idx]).sum()
            if not torch.isfinite(loss):
                self.skipped_steps += 1
                continue
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            clip_grad_norm_per_member(model, cfg.grad_clip)
            self.optimizer.step()
            losses.append(loss.detach() / e)
            steps = step + 1
            if steps % cfg.holdout_every == 0:
                holdout = model.mse(x_all[hold], y_all[hold])
                improved = holdout < best * 0.99  # a member's best moves only by > 1% (MBPO)
                best = torch.where(improved, holdout, best)
                any_improved = bool(improved.any())
                since_improved = 0 if any_improved else since_improved + 1
                if cfg.keep_best and any_improved:
                    kept = ({k: v.clone() for k, v in model.state_dict().items()}, holdout)
                if since_improved >= cfg.patience:
                    break
        if kept is not None:
            model.load_state_dict(kept[0])
            holdout = kept[1]
        elif steps == 0 or steps % cfg.holdout_every != 0:
            holdout = model.mse(x_all[hold], y_all[hold])
        model.elites.copy_(torch.argsort(holdout)[: len(model.elites)])
        model.eval()
        self.version += 1
        elite_mse = holdout[model.elites]
        self.last_holdout_mse = holdout.mean().item()
        return {
            "model/train_loss": torch.stack(losses).mean().item() if losses else math.nan,
            "model/holdout_mse": self.last_holdout_mse,
            "model/elite_holdout_mse": elite_mse.mean().item(),
            "model/train_steps": float(steps),
            "model/skipped_steps": float(self.skipped_steps),
            "model/version": float(self.version),
        }
