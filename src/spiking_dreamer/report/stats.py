"""Statistics of a report: means, interquartile mean, bootstrap intervals, P(improvement).

IQM, the stratified bootstrap and the probability of improvement follow rliable (Agarwal,
Schwarzer, Castro, Courville and Bellemare, "Deep Reinforcement Learning at the Edge of the
Statistical Precipice", NeurIPS 2021; ``rliable.metrics.aggregate_iqm``,
``rliable.metrics.probability_of_improvement``, ``rliable.library.StratifiedBootstrap``),
implemented here with NumPy only. ``tests/test_report_rliable.py`` checks them against rliable.

Every interval is a percentile bootstrap interval drawn with ``np.random.default_rng(seed)``,
so a report is deterministic for a given ``seed``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

CURVE_BAND_PERCENTILES = (2.5, 97.5)
"""Percentiles of the learning-curve bands. :func:`bootstrap_ci` computes its percentiles from
``level`` (``50 * (1 - 0.95)`` is 2.500000000000002, not 2.5), which moves the lower bound in
its last digits; both are kept as they were so that reports stay byte-identical."""


def iqm(values: npt.ArrayLike, axis: int = -1) -> np.ndarray | float:
    """Interquartile mean: the mean of the middle 50% of ``values`` along ``axis``.

    Takes an array of any shape; returns a float for 1-D input, else an array without ``axis``.
    Cuts ``floor(n / 4)`` values from each end of the sorted values and averages the rest, like
    ``scipy.stats.trim_mean(values, 0.25)`` (rliable's ``aggregate_iqm``; Agarwal et al.,
    NeurIPS 2021). Examples: ``iqm([1, ..., 8]) == 4.5`` (mean of 3, 4, 5, 6);
    ``iqm([1, 2, 3, 4, 100]) == 3``. Raises ``ValueError`` for no values.
    """
    x = np.sort(np.asarray(values, dtype=float), axis=axis)
    n = x.shape[axis]
    if n == 0:
        raise ValueError("iqm of no values")
    cut = int(0.25 * n)
    kept = np.take(x, np.arange(cut, n - cut), axis=axis)
    out = kept.mean(axis=axis)
    return float(out) if np.ndim(out) == 0 else out


def mean(values: npt.ArrayLike, axis: int = -1) -> np.ndarray | float:
    """Arithmetic mean along ``axis`` (a statistic for the bootstrap functions); a float for
    1-D input, else an array without ``axis``."""
    out = np.asarray(values, dtype=float).mean(axis=axis)
    return float(out) if np.ndim(out) == 0 else out


def probability_of_improvement(x: npt.ArrayLike, y: npt.ArrayLike) -> np.ndarray:
    """P(X > Y) estimated from samples: the fraction of pairs ``(x_i, y_j)`` with
    ``x_i > y_j``, ties counting 1/2 (the Mann-Whitney U statistic divided by ``m * n``, as in
    rliable's ``probability_of_improvement``; Agarwal et al., NeurIPS 2021).

    Works on the last axis, so ``x`` of shape ``[..., m]`` and ``y`` of shape ``[..., n]`` give
    shape ``[...]``. Example: ``x = [1, 3]``, ``y = [2, 2]``: pairs (1,2) 0, (1,2) 0, (3,2) 1,
    (3,2) 1 -> 0.5. Raises ``ValueError`` when either side has no samples.
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.shape[-1] == 0 or y.shape[-1] == 0:
        raise ValueError("probability of improvement needs samples on both sides")
    gt = (x[..., :, None] > y[..., None, :]).mean(axis=(-2, -1))
    eq = (x[..., :, None] == y[..., None, :]).mean(axis=(-2, -1))
    return gt + 0.5 * eq


def percentile_interval(samples: np.ndarray, level: float) -> tuple[float, float]:
    """The central ``level`` percentile interval of bootstrap ``samples`` (1-D)."""
    lo, hi = np.percentile(samples, [50 * (1 - level), 50 * (1 + level)], axis=0)
    return float(lo), float(hi)


def bootstrap_distribution(
    values: npt.ArrayLike,
    statistic: Callable[..., Any] = mean,
    reps: int = 2000,
    seed: int = 0,
) -> np.ndarray:
    """The bootstrap distribution of ``statistic`` over the rows (axis 0) of ``values``.

    Takes ``values`` of shape ``[n]`` (one value per seed) or ``[n, k]`` (per seed, ``k``
    quantities resampled together, e.g. a learning curve's eval steps); draws ``reps``
    resamples of ``n`` rows with replacement from ``np.random.default_rng(seed)`` and returns
    ``statistic(resamples, axis=1)``: shape ``[reps]`` or ``[reps, k]``.
    Raises ``ValueError`` for no values.
    """
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        raise ValueError("bootstrap of no values")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, x.shape[0], size=(reps, x.shape[0]))
    return np.asarray(statistic(x[idx], axis=1))


def bootstrap_ci(
    values: npt.ArrayLike,
    statistic: Callable[..., Any] = mean,
    reps: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float]:
    """Percentile bootstrap interval ``(low, high)`` of ``statistic`` over 1-D ``values``:
    ``reps`` resamples with replacement, deterministic for a given ``seed``
    (:func:`bootstrap_distribution`).

    One value gives the degenerate interval ``(v, v)``.
    """
    x = np.asarray(values, dtype=float).reshape(-1)
    return percentile_interval(bootstrap_distribution(x, statistic, reps, seed), level)


def bootstrap_bands(
    values: npt.ArrayLike, reps: int = 2000, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """95% bootstrap bands of the mean curve: ``values`` is ``[seeds, steps]``, seeds are
    resampled together for all steps; returns the lower and upper bounds, each ``[steps]``
    (percentiles :data:`CURVE_BAND_PERCENTILES`)."""
    boot = bootstrap_distribution(values, mean, reps, seed)
    lo, hi = np.percentile(boot, CURVE_BAND_PERCENTILES, axis=0)
    return lo, hi


def stratified_bootstrap_ci(
    groups: Sequence[npt.ArrayLike],
    statistic: Callable[..., Any] = iqm,
    reps: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float]:
    """Stratified percentile bootstrap interval ``(low, high)`` of ``statistic`` over the
    values of all ``groups`` (one 1-D array per task) together.

    Each resample draws, within every group, as many values as the group has, with
    replacement, then applies ``statistic`` to the concatenation: rliable's
    ``StratifiedBootstrap`` over runs (Agarwal et al., NeurIPS 2021), which also allows groups
    of different sizes here. Raises ``ValueError`` when a group is empty.
    """
    arrays = [np.asarray(g, dtype=float) for g in groups]
    if not arrays or any(a.size == 0 for a in arrays):
        raise ValueError("stratified bootstrap needs values in every group")
    rng = np.random.default_rng(seed)
    parts = [a[rng.integers(0, a.size, size=(reps, a.size))] for a in arrays]
    return percentile_interval(np.asarray(statistic(np.concatenate(parts, axis=1))), level)


def probability_of_improvement_ci(
    xs: Sequence[npt.ArrayLike],
    ys: Sequence[npt.ArrayLike],
    reps: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, tuple[float, float]]:
    """Average over tasks of P(X_t > Y_t), with a stratified percentile bootstrap interval.

    Takes one 1-D sample of X and one of Y per task (``xs[t]``, ``ys[t]``); within each task
    both are resampled with replacement, independently (rliable's
    ``StratifiedIndependentBootstrap``; Agarwal et al., NeurIPS 2021).
    Returns ``(estimate, (low, high))``.
    """
    if len(xs) != len(ys) or not xs:
        raise ValueError("one pair of samples per task")
    xs = [np.asarray(x, dtype=float) for x in xs]
    ys = [np.asarray(y, dtype=float) for y in ys]
    point = float(np.mean([probability_of_improvement(x, y) for x, y in zip(xs, ys, strict=True)]))
    rng = np.random.default_rng(seed)
    per_task = []
    for x, y in zip(xs, ys, strict=True):
        bx = x[rng.integers(0, x.size, size=(reps, x.size))]
        by = y[rng.integers(0, y.size, size=(reps, y.size))]
        per_task.append(probability_of_improvement(bx, by))
    return point, percentile_interval(np.mean(per_task, axis=0), level)


def steps_to_threshold(
    steps: Sequence[int], returns: Sequence[float], threshold: float
) -> int | None:
    """The first step of one curve whose return is >= ``threshold``; None if none is ("not
    reached": never extrapolated). ``returns`` is one curve, one value per step: a run's eval
    returns (each the mean over its episodes) or a mean curve over seeds; ``steps`` must be
    increasing."""
    for step, ret in zip(steps, returns, strict=True):
        if ret >= threshold:
            return int(step)
    return None


def sample_variance(values: npt.ArrayLike) -> float | None:
    """Unbiased variance across seeds (ddof 1); None for fewer than two values."""
    x = np.asarray(values, dtype=float)
    return float(x.var(ddof=1)) if x.size >= 2 else None
