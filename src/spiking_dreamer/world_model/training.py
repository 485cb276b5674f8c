"""Training of an ensemble dynamics model on real transitions (MBPO's recipe, budgeted).

Each phase: refit the normalisers on all real data, hold out a random ``holdout_ratio`` of it
(at most ``max_holdout``), then take at most ``train_steps`` gradient steps in which every member
draws its own bootstrap minibatch (indices with replacement, from a per-run generator). Every
``holdout_every`` steps the per-member hold-out MSE is measured; the phase stops early when no
member improved by more than 1% for ``patience`` checks. The ``num_elites`` members with the
lowest hold-out MSE become the elites. A non-finite loss skips that step and is counted.
"""

from __future__ import annotations

import math

import torch

from spiking_dreamer.buffers import ReplayBuffer
from spiking_dreamer.config import WorldModelConfig
from spiking_dreamer.world_model.base import EnsembleDynamicsModel


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

    def train_phase(self, buffer: ReplayBuffer, max_steps: int | None = None) -> dict[str, float]:
        """One training phase on the first ``len(buffer)`` transitions of ``buffer``."""
        cfg, model, g = self.cfg, self.model, self.generator
        n = len(buffer)
        data = buffer.gather(torch.arange(n, device=buffer.device))
        model.fit_normalizers(data.obs, data.action, data.next_obs, data.reward)
        x_all, y_all = model.normalize_batch(data.obs, data.action, data.next_obs, data.reward)
        perm = torch.randperm(n, generator=g, device=buffer.device)
        n_hold = min(max(1, int(cfg.holdout_ratio * n)), cfg.max_holdout, n - 1)
        hold, train = perm[:n_hold], perm[n_hold:]
        e, b = model.ensemble_size, cfg.batch_size

        model.train()
        best = torch.full((e,), math.inf)
        since_improved, steps, losses = 0, 0, []
        holdout = model.mse(x_all[hold], y_all[hold])
        for step in range(cfg.train_steps if max_steps is None else max_steps):
            idx = train[torch.randint(len(train), (e, b), generator=g, device=buffer.device)]
            loss = model.loss(x_all[idx], y_all[idx]).sum()
            if not torch.isfinite(loss):
                self.skipped_steps += 1
                continue
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            self.optimizer.step()
            losses.append(loss.detach() / e)
            steps = step + 1
            if steps % cfg.holdout_every == 0:
                holdout = model.mse(x_all[hold], y_all[hold])
                improved = holdout < best * 0.99
                best = torch.minimum(best, holdout)
                since_improved = 0 if improved.any() else since_improved + 1
                if since_improved >= cfg.patience:
                    break
        if steps % cfg.holdout_every != 0:
            holdout = model.mse(x_all[hold], y_all[hold])
        model.elites.copy_(torch.argsort(holdout)[: len(model.elites)])
        model.eval()
        self.version += 1
        elite_mse = holdout[model.elites]
        return {
            "model/train_loss": torch.stack(losses).mean().item() if losses else math.nan,
            "model/holdout_mse": holdout.mean().item(),
            "model/elite_holdout_mse": elite_mse.mean().item(),
            "model/train_steps": float(steps),
            "model/skipped_steps": float(self.skipped_steps),
            "model/version": float(self.version),
        }
