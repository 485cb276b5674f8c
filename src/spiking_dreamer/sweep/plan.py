"""Planning a sweep: the ``--seeds`` / ``--arms`` arguments and every run's resolved config.

:func:`plan_runs` loads and validates the config of every (config, arm, seed) run before
anything starts; :class:`RunSpec` is what a run's task receives.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from spiking_dreamer.config import MAX_SEED, ConfigError
from spiking_dreamer.config_loading import load_config

ARMS = ("dreaming", "baseline")
MAX_SEEDS = 1_000
"""The most seeds one ``--seeds`` range may name (every run's config is planned up front)."""


class SweepError(ConfigError):
    """Sweep arguments or an experiment directory that cannot be used (CLI exit code 2)."""


def parse_seeds(spec: str) -> list[int]:
    """``"0-4"`` -> [0, 1, 2, 3, 4]; ``"0,1,2"``; ``"3"``; ``"0-2,7"``. Order kept, no repeats."""
    seeds: list[int] = []
    for part in spec.split(","):
        part = part.strip()
        lo_s, sep, hi_s = part.partition("-")
        try:
            lo = int(lo_s)
            hi = int(hi_s) if sep else lo
        except ValueError:
            raise SweepError(
                f"--seeds {spec!r}: expected e.g. 0-4, 0,1,2 or 3 (non-negative integers)"
            ) from None
        if lo > hi:
            raise SweepError(f"--seeds {spec!r}: range {part!r} runs backwards")
        if hi > MAX_SEED:
            raise SweepError(f"--seeds {spec!r}: seeds must lie in [0, {MAX_SEED}]")
        if hi - lo >= MAX_SEEDS:  # before the range is built
            raise SweepError(f"--seeds {spec!r}: at most {MAX_SEEDS:,} seeds")
        seeds.extend(range(lo, hi + 1))
        if len(seeds) > MAX_SEEDS:
            raise SweepError(f"--seeds {spec!r}: at most {MAX_SEEDS:,} seeds")
    if len(set(seeds)) != len(seeds):
        raise SweepError(f"--seeds {spec!r}: a seed appears twice")
    return seeds


def parse_arms(spec: str) -> list[str]:
    """``"dreaming,baseline"`` -> ["dreaming", "baseline"]."""
    arms = [a.strip() for a in spec.split(",") if a.strip()]
    bad = [a for a in arms if a not in ARMS]
    if bad or not arms:
        raise SweepError(f"--arms {spec!r}: each arm must be one of {', '.join(ARMS)}")
    if len(set(arms)) != len(arms):
        raise SweepError(f"--arms {spec!r}: an arm appears twice")
    return arms


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """One run of a sweep, with its fully resolved config (validated before anything starts)."""

    name: str
    config: str
    arm: str
    seed: int
    run_dir: Path
    cfg: dict[str, Any]

    @property
    def total_steps(self) -> int:
        return int(self.cfg["train"]["total_steps"])


def run_overrides(overrides: Sequence[str], arm: str, seed: int, threads: int) -> list[str]:
    """The overrides of one run: threads first (a user ``--set train.threads`` wins), then the
    user's, then the run's seed and arm (which always win)."""
    return [
        f"train.threads={threads}",
        *overrides,
        f"train.seed={seed}",
        *(["world_model.use=none"] if arm == "baseline" else []),
        "log.progress=false",
    ]


def plan_runs(
    configs: Sequence[str],
    seeds: Sequence[int],
    arms: Sequence[str],
    overrides: Sequence[str],
    exp_dir: Path,
    threads: int = 1,
    gpus: float = 0.0,
) -> list[RunSpec]:
    """Every (config, arm, seed) run; loads and validates each config (raises ConfigError).

    Without GPUs per run (``gpus`` 0, Ray's default), ``train.device: auto`` becomes ``cpu``:
    Ray need not hide a node's GPUs from a task that asked for none, and its runs would share
    them unaccounted. A CUDA device without GPUs per run is a :class:`SweepError`."""
    stems = [Path(c).stem for c in configs]
    if len(set(stems)) != len(stems):
        raise SweepError(f"config file names must differ (run names use them): {list(configs)}")
    runs = []
    for config, stem in zip(configs, stems, strict=True):
        for arm in arms:
            for seed in seeds:
                cfg = load_config(config, run_overrides(overrides, arm, seed, threads))
                if arm == "dreaming" and not cfg.uses_model:  # the config's own use otherwise
                    extra = [
                        *run_overrides(overrides, arm, seed, threads),
                        "world_model.use=dreams",
                    ]
                    cfg = load_config(config, extra)
                if gpus == 0 and cfg.train.device != "cpu":
                    if cfg.train.device != "auto":
                        raise SweepError(
                            f"{config}: train.device={cfg.train.device} needs --gpus-per-run > 0"
                        )
                    cfg = cfg.replace(train={"device": "cpu"})
                name = f"{stem}__{arm}__s{seed}"
                runs.append(
                    RunSpec(name, config, arm, seed, exp_dir / "runs" / name, cfg.to_dict())
                )
    return runs
