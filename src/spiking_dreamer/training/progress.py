"""A run's progress bar: refreshed on a timer, with an ETA from the current phase's speed.

A run's speed changes with its phase: the random warm-up without updates is fast, TD3 updates
slow it down, dream phases slow it further. An ETA from the whole run's mean speed (or from the
warm-up's) is far too optimistic, so :class:`RunProgress` estimates the remaining time from the
speed measured since the current phase began, and says which phase that is.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

from tqdm import tqdm

from spiking_dreamer.config import Config
from spiking_dreamer.training.stopping import QuietStream

MIN_PHASE_S = 5.0
"""Seconds of a phase measured before its speed gives an ETA."""


def run_phases(cfg: Config) -> list[tuple[int, str]]:
    """``(first env step, name)`` of each phase of a run whose speed differs: the random
    warm-up, TD3 updates from ``train.update_after``, the policy acting from
    ``train.start_steps`` and dreams from ``dreaming.start_step`` (or learning through the
    model from ``value_gradient.start_step``)."""
    t, use = cfg.train, cfg.world_model.use
    model = {"dreams": cfg.dreaming, "value_gradient": cfg.value_gradient}.get(use)
    bounds = {0, t.update_after, t.start_steps} | ({model.start_step} if model else set())
    out: list[tuple[int, str]] = []
    for first in sorted(bounds):
        updates, policy = first >= t.update_after, first >= t.start_steps
        name = "training" if policy else "warm-up"
        if updates and not policy:
            name += " + updates"
        if model is not None and updates and first >= model.start_step:
            name += " through the model" if use == "value_gradient" else " + dreams"
        if not out or out[-1][1] != name:
            out.append((first, name))
    return out


def format_seconds(s: float) -> str:
    """3725 -> ``1:02:05``, 65 -> ``1:05``."""
    s = round(s)
    h, rest = divmod(s, 3600)
    m, sec = divmod(rest, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


class RunProgress:
    """The bar of one run. :meth:`update` is called after every env step; at most every
    ``interval`` seconds it redraws the bar with the phase, its speed, the ETA and the latest
    eval return.

    Args:
        total: the run's env steps; ``initial``: where it starts (a resumed run).
        phases: :func:`run_phases`.
        enabled: draw a bar at all (``log.progress``).
        clock: seconds, monotonic (tests pass a fake one).
    """

    def __init__(
        self,
        total: int,
        initial: int,
        phases: list[tuple[int, str]],
        desc: str,
        enabled: bool = True,
        interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total, self.phases, self.interval, self._clock = total, phases, interval, clock
        self.enabled = enabled
        self._bar = tqdm(
            total=total,
            initial=initial,
            disable=not enabled,
            unit="step",
            dynamic_ncols=True,
            desc=desc,
            file=QuietStream(sys.stderr),
            miniters=1,
            mininterval=0,
            bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}{postfix}]",
        )
        now = clock()
        self._phase = self.phase_at(initial)
        self._phase_start = (initial, now)
        self._last_draw = -float("inf")

    def phase_at(self, step: int) -> str:
        """The name of the phase env step ``step + 1`` belongs to."""
        name = self.phases[0][1]
        for first, n in self.phases:
            if step >= first:
                name = n
        return name

    def speed(self, step: int, now: float) -> float | None:
        """Env steps/s since the current phase began, once :data:`MIN_PHASE_S` are measured."""
        first, since = self._phase_start
        elapsed = now - since
        if elapsed < MIN_PHASE_S or step <= first:
            return None
        return (step - first) / elapsed

    def eta(self, step: int, now: float) -> float | None:
        """Seconds left at the current phase's speed (None while it is being measured)."""
        sps = self.speed(step, now)
        return None if sps is None else (self.total - step) / sps

    def status(self, step: int, eval_return: float, now: float) -> str:
        """``phase, N steps/s, eta H:MM:SS, eval R``."""
        sps, eta = self.speed(step, now), self.eta(step, now)
        speed = f"{sps:.0f} steps/s" if sps is not None else "measuring speed"
        left = f"eta {format_seconds(eta)}" if eta is not None else "eta ?"
        return f"{self._phase}, {speed}, {left}, eval {eval_return:.0f}"

    def update(self, step: int, eval_return: float) -> None:
        """After env step ``step``: note a new phase; redraw if ``interval`` has passed."""
        if not self.enabled:
            return
        now = self._clock()
        phase = self.phase_at(step)
        if phase != self._phase:
            self._phase, self._phase_start = phase, (step, now)
        if now - self._last_draw < self.interval and step < self.total:
            return
        self._last_draw = now
        self._bar.set_postfix_str(self.status(step, eval_return, now), refresh=False)
        self._bar.update(step - self._bar.n)

    def close(self) -> None:
        self._bar.close()
