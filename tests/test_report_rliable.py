"""Cross-check of the report's statistics against rliable (Agarwal et al., NeurIPS 2021).

The report implements IQM, the stratified bootstrap and the probability of improvement without
depending on ``rliable``; here, on random scores (runs x tasks, two arms), the point estimates
must equal rliable's and the 95% intervals agree within Monte-Carlo error (both bootstraps use
the same number of resamples but different random streams). Skipped without ``rliable``
(installed by the ``dev`` extra).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from spiking_dreamer.report import (
    iqm,
    probability_of_improvement_ci,
    stratified_bootstrap_ci,
)

metrics = pytest.importorskip("rliable.metrics")
library = pytest.importorskip("rliable.library")

REPS = 4000
POI_REPS = 1000  # rliable's P(improvement) runs a Mann-Whitney test per task and resample


@pytest.fixture(autouse=True)
def _seeded_global_numpy() -> Iterator[None]:
    """rliable's bootstraps draw from NumPy's global generator: seed it, then restore it."""
    state = np.random.get_state()  # noqa: NPY002 (rliable uses the legacy global generator)
    np.random.seed(12345)  # noqa: NPY002
    yield
    np.random.set_state(state)  # noqa: NPY002


def _scores(seed: int, runs: int, tasks: int = 3, shift: float = 0.0) -> np.ndarray:
    """Scores ``[runs, tasks]``: a different scale per task, a few outliers."""
    rng = np.random.default_rng(seed)
    base = rng.normal(0.0, 1.0, size=(runs, tasks)) * np.array([1.0, 3.0, 0.5])[:tasks]
    base[rng.random((runs, tasks)) < 0.1] *= 5.0
    return base + shift + np.arange(tasks) * 2.0


def _columns(scores: np.ndarray) -> list[np.ndarray]:
    return [scores[:, t] for t in range(scores.shape[1])]


def _assert_interval_close(ours: tuple[float, float], theirs: np.ndarray, slack: float) -> None:
    lo, hi = float(theirs[0]), float(theirs[1])
    tol = 0.1 * (hi - lo) + slack
    assert ours[0] == pytest.approx(lo, abs=tol)
    assert ours[1] == pytest.approx(hi, abs=tol)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("runs", [5, 10])
def test_iqm_equals_rliable(seed: int, runs: int) -> None:
    scores = _scores(seed, runs)
    expected = metrics.aggregate_iqm(scores)
    assert iqm(np.concatenate(_columns(scores))) == pytest.approx(expected, rel=1e-12)
    assert iqm(scores.reshape(-1)) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_stratified_bootstrap_iqm_interval_matches_rliable(seed: int) -> None:
    for shift in (0.0, 1.5):  # two arms
        scores = _scores(seed, runs=10, shift=shift)
        points, intervals = library.get_interval_estimates(
            {"arm": scores}, lambda x: np.array([metrics.aggregate_iqm(x)]), reps=REPS
        )
        ours = stratified_bootstrap_ci(_columns(scores), iqm, reps=REPS, seed=seed)
        assert iqm(np.concatenate(_columns(scores))) == pytest.approx(points["arm"][0], rel=1e-12)
        _assert_interval_close(ours, intervals["arm"][:, 0], slack=0.0)
        assert ours[0] <= points["arm"][0] <= ours[1]


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("ties", [False, True])
def test_probability_of_improvement_matches_rliable(seed: int, ties: bool) -> None:
    x = _scores(seed, runs=10, shift=0.8)
    y = _scores(seed + 100, runs=8)  # a different number of runs per arm
    if ties:  # coarse scores: many equal pairs, counted one half
        x, y = np.round(x), np.round(y)
    p, ci = probability_of_improvement_ci(_columns(x), _columns(y), reps=POI_REPS, seed=seed)
    assert p == pytest.approx(metrics.probability_of_improvement(x, y), abs=1e-12)
    points, intervals = library.get_interval_estimates(
        {"x_over_y": [x, y]},
        lambda a, b: np.array([metrics.probability_of_improvement(a, b)]),
        reps=POI_REPS,
    )
    assert p == pytest.approx(points["x_over_y"][0], abs=1e-12)
    _assert_interval_close(ci, intervals["x_over_y"][:, 0], slack=0.02)
