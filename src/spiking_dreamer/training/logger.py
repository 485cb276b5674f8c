"""Metric logging: JSON lines always, TensorBoard by default, Weights & Biases on request."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from spiking_dreamer.config import LogConfig
from spiking_dreamer.errors import import_extra


class MetricsLogger:
    """Writes ``{"step": N, "time": s, key: value, ...}`` records.

    Files in ``run_dir``: ``metrics.jsonl`` (every record) and ``eval.jsonl`` (evaluations with
    per-episode returns); TensorBoard events under ``tb/``; W&B mirrors every record.
    """

    def __init__(
        self,
        run_dir: Path,
        cfg: LogConfig,
        run_name: str,
        config: Mapping[str, Any],
        resume: Mapping[str, Any] | None = None,
    ) -> None:
        self.run_dir = run_dir
        self._start = time.time() - (resume["elapsed"] if resume else 0.0)
        self._metrics = self._open(run_dir / "metrics.jsonl", resume and resume["metrics"])
        self._eval = self._open(run_dir / "eval.jsonl", resume and resume["eval"])
        self._tb = None
        self._wandb = None
        if cfg.tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            # on resume, TensorBoard drops the events written after the checkpoint
            purge = resume["step"] + 1 if resume else None
            self._tb = SummaryWriter(str(run_dir / "tb"), purge_step=purge)
        if cfg.wandb:
            wandb = import_extra("wandb", "--wandb (log.wandb)", "wandb")
            self._wandb = wandb.init(
                project=cfg.wandb_project,
                name=run_name,
                config=dict(config),
                dir=str(run_dir),
                mode=cfg.wandb_mode,
                reinit="finish_previous",
                id=resume.get("wandb_id") if resume else None,
                resume="allow" if resume else None,
            )

    @staticmethod
    def _open(path: Path, position: int | None) -> Any:
        """Open for appending; on resume first cut what was written after the checkpoint."""
        if position is None:
            return path.open("a")
        f = path.open("r+")
        f.truncate(position)
        f.seek(position)
        return f

    def positions(self, step: int) -> dict[str, Any]:
        """Where the logs stand now, for a checkpoint taken at env step ``step``."""
        self._metrics.flush()
        self._eval.flush()
        if self._tb is not None:
            self._tb.flush()
        return {
            "step": step,
            "metrics": self._metrics.tell(),
            "eval": self._eval.tell(),
            "elapsed": time.time() - self._start,
            "wandb_id": self._wandb.id if self._wandb is not None else None,
        }

    def log(self, step: int, metrics: Mapping[str, float]) -> None:
        """Record scalar ``metrics`` at env step ``step``."""
        clean = {k: float(v) for k, v in metrics.items()}
        record = {"step": step, "time": round(time.time() - self._start, 3)}
        record.update({k: (v if math.isfinite(v) else str(v)) for k, v in clean.items()})
        self._metrics.write(json.dumps(record) + "\n")
        self._metrics.flush()
        if self._tb is not None:
            for k, v in clean.items():
                self._tb.add_scalar(k, v, step)
        if self._wandb is not None:
            self._wandb.log(clean, step=step)

    def log_eval(self, step: int, returns: list[float], lengths: list[int]) -> None:
        """Record one evaluation: per-episode returns and lengths, plus their mean and std."""
        n = len(returns)
        mean = sum(returns) / n
        std = math.sqrt(sum((r - mean) ** 2 for r in returns) / n)
        record = {
            "step": step,
            "time": round(time.time() - self._start, 3),
            "return_mean": mean,
            "return_std": std,
            "returns": returns,
            "lengths": lengths,
        }
        self._eval.write(json.dumps(record) + "\n")
        self._eval.flush()
        self.log(step, {"eval/return_mean": mean, "eval/return_std": std})

    def close(self) -> None:
        self._metrics.close()
        self._eval.close()
        if self._tb is not None:
            self._tb.close()
        if self._wandb is not None:
            self._wandb.finish()
