"""The progress bar of a run: redrawn on a timer, its ETA from the current phase's speed."""

from __future__ import annotations

import pytest

from spiking_dreamer.config_loading import load_config
from spiking_dreamer.training.progress import RunProgress, format_seconds, run_phases

from .helpers import ROOT


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_phases_of_the_shipped_configs() -> None:
    cfg = load_config(ROOT / "configs" / "halfcheetah.yaml")
    assert run_phases(cfg) == [
        (0, "warm-up"),
        (1000, "warm-up + updates"),
        (10_000, "training"),
        (50_000, "training + dreams"),
    ]
    base = load_config(ROOT / "configs" / "halfcheetah.yaml", ["world_model.use=none"])
    assert run_phases(base)[-1] == (10_000, "training")
    vg = load_config(ROOT / "configs" / "halfcheetah_value_gradient.yaml")
    assert run_phases(vg)[-1][1] == "training through the model"


def test_the_eta_comes_from_the_current_phase_not_the_warm_up() -> None:
    """The bar's ETA used the warm-up's speed, far too optimistic once updates begin."""
    clock = Clock()
    phases = [(0, "warm-up"), (1000, "training")]
    bar = RunProgress(11_000, 0, phases, "test", enabled=True, clock=clock)
    for step in range(1, 1001):  # 1000 steps/s of random warm-up
        clock.now = step / 1000
        bar.update(step, 0.0)
    assert bar.eta(1000, clock.now) is None  # under MIN_PHASE_S measured
    for step in range(1001, 1101):  # 10 steps/s of training
        clock.now = 1.0 + (step - 1000) / 10
        bar.update(step, 0.0)
    assert bar.phase_at(1100) == "training"
    assert bar.speed(1100, clock.now) == pytest.approx(10.0)
    assert bar.eta(1100, clock.now) == pytest.approx(9900 / 10)  # not 9900 / 1000
    assert "training, 10 steps/s, eta 16:30" in bar.status(1100, 12.0, clock.now)
    bar.close()


def test_the_bar_is_redrawn_on_a_timer_not_every_log_interval() -> None:
    """It was redrawn once per log.log_every (1,000) env steps."""
    clock = Clock()
    bar = RunProgress(
        100_000, 0, [(0, "training")], "test", enabled=True, interval=1.0, clock=clock
    )
    draws = []
    bar._bar.update = lambda n: draws.append(n)  # type: ignore[method-assign]
    for step in range(1, 301):  # 0.02 s per step: 6 s in all
        clock.now = step * 0.02
        bar.update(step, 0.0)
    assert 5 <= len(draws) <= 7  # about once a second, whatever the log interval
    bar.close()


def test_format_seconds() -> None:
    assert [format_seconds(s) for s in (5, 65, 3725, 90_000)] == [
        "0:05",
        "1:05",
        "1:02:05",
        "25:00:00",
    ]
