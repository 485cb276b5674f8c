"""``benchmarks/paired_comparison.py`` against hand-computed values."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from .helpers import load_benchmark

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "paired_comparison.py"


def _load():
    return load_benchmark("paired_comparison")


def _result(path: Path, curves: dict[str, list[float]], wall: float | None) -> Path:
    steps = [0, 50_000, 100_000]
    seeds = {s: {"steps": steps, "return_mean": r, "wall_time_s": wall} for s, r in curves.items()}
    path.write_text(json.dumps({"seeds": seeds}))
    return path


def test_arm_stats_by_hand():
    pc = _load()
    arm = {"3": {0: 0.0, 50_000: 4_000.0, 100_000: 9_000.0}, "4": {0: 0.0, 50_000: 6_000.0}}
    st = pc.arm_stats(arm, [50_000, 100_000], [5_000, 8_000])
    assert st["at_50000"]["per_seed"] == [4_000.0, 6_000.0]
    assert st["at_50000"]["mean"] == 5_000.0
    lo, hi = st["at_50000"]["ci95"]
    assert 4_000.0 <= lo <= 5_000.0 <= hi <= 6_000.0
    assert st["at_100000"]["seeds"] == ["3"]  # seed 4 has not reached 100K
    # first eval step at or above the threshold, never extrapolated
    assert st["steps_to"]["5000"] == [100_000, 50_000]
    assert st["steps_to"]["8000"] == [100_000, None]


def test_steps_to_a_threshold_stop_at_the_last_budget():
    # seed 3 reaches 8,000 only at 150K, past the table's last step (100K)
    arm = {"3": {0: 0.0, 50_000: 4_000.0, 100_000: 7_000.0, 150_000: 8_500.0}}
    st = _load().arm_stats(arm, [50_000, 100_000], [8_000, 1_234_567, 2.5])
    assert st["steps_to"]["8000"] == [None]
    assert list(st["steps_to"]) == ["8000", "1234567", "2.5"]  # every digit of a threshold


def test_three_seeds_interval_is_their_range_and_iqm_their_mean():
    # a resample of the lowest seed alone has probability 1/27 > 2.5%: the 95% percentile
    # interval is [lowest, highest]; the IQM of 3 trims floor(3/4) = 0 seeds: the mean
    arm = {s: {100_000: v} for s, v in (("3", 4_000.0), ("4", 9_000.0), ("5", 5_000.0))}
    at = _load().arm_stats(arm, [100_000], [])["at_100000"]
    assert at["ci95"] == [4_000.0, 9_000.0]
    assert at["iqm"] == at["mean"] == 6_000.0
    assert at["iqm_ci95"] == at["ci95"]


def test_comparison_pairs_seeds_and_gives_p(tmp_path):
    control = _result(
        tmp_path / "c.json", {"3": [0, 3_000, 5_000], "4": [0, 4_000, 6_000]}, 7_200.0
    )
    arm = _result(tmp_path / "a.json", {"3": [0, 3_500, 7_000], "4": [0, 3_000, 8_000]}, None)
    out = tmp_path / "h.json"
    args = ["--reference", str(control), "--arms", str(arm), "--at", "50000", "100000"]
    args += ["--window", "50000", "100000", "--thresholds", "5000", "--out", str(out)]
    subprocess.run([sys.executable, str(SCRIPT), *args], check=True, capture_output=True, cwd=ROOT)
    data = json.loads(out.read_text())
    row = data["arms"][str(arm)]
    assert row["at_50000"]["per_seed_delta"] == [500.0, -1_000.0]  # seed 3 then seed 4
    assert row["at_100000"]["per_seed_delta"] == [2_000.0, 2_000.0]
    # window 50K-100K: arm (3,500 + 7,000) / 2, (3,000 + 8,000) / 2 vs 4,000 and 5,000
    assert row["window"]["per_seed_delta"] == [1_250.0, 500.0]
    # both arm values (7,000, 8,000) exceed both control values (5,000, 6,000) at 100K
    assert row["p_improvement"]["p"] == pytest.approx(1.0)
    assert data["stats"][str(arm)]["steps_to"]["5000"] == [100_000, 100_000]
    assert data["stats"][str(control)]["steps_to"]["5000"] == [100_000, 100_000]
    assert data["wall_time_s"][str(control)] == [7_200.0, 7_200.0]
    assert data["wall_time_s"][str(arm)] == []


def test_window_means_of_both_sides_are_over_the_same_evaluations():
    pc = _load()
    # seed 3's reference stopped after 50K; seed 4's arm has an extra 75K eval the reference lacks
    ref = {"3": {0: 0.0, 50_000: 4_000.0}, "4": {0: 0.0, 50_000: 1_000.0, 100_000: 3_000.0}}
    arm = {
        "3": {0: 0.0, 50_000: 5_000.0, 100_000: 9_000.0},
        "4": {0: 0.0, 50_000: 2_000.0, 75_000: 9_999.0, 100_000: 4_000.0},
    }
    w = pc.compare(ref, arm, [100_000], (50_000, 100_000))["window"]
    assert w["to"] == 50_000  # the last step every seed's two sides share
    assert w["per_seed"] == [5_000.0, 2_000.0]
    assert w["per_seed_delta"] == [1_000.0, 1_000.0]
    w = pc.compare({"4": ref["4"]}, {"4": arm["4"]}, [], (50_000, 100_000))["window"]
    assert (w["to"], w["per_seed"], w["reference_mean"]) == (100_000, [3_000.0], 2_000.0)


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing", "cannot read it"),
        ("not_json", "not JSON"),
        ("no_seeds", "no 'seeds'"),
        ("ragged", "has 3 steps, 2 returns"),
        ("other_seeds", "no seed in common"),
        ("window", "no eval step in --window"),
        ("unshared_window", "shares no eval step in --window 60000 90000"),
        ("bad_window", "needs 0 <= FROM <= TO"),
    ],
)
def test_bad_input_exits_2_and_writes_nothing(tmp_path, case, message):
    control = _result(tmp_path / "c.json", {"3": [0, 1, 2]}, None)
    arm = tmp_path / "a.json"
    window = ["0", "100000"]
    if case == "missing":
        pass
    elif case == "not_json":
        arm.write_text("{seeds")
    elif case == "no_seeds":
        arm.write_text(json.dumps({"benchmark": "learning_curve"}))
    elif case == "ragged":
        arm.write_text(json.dumps({"seeds": {"3": {"steps": [0, 1, 2], "return_mean": [0, 1]}}}))
    elif case == "other_seeds":
        _result(arm, {"4": [0, 1, 2]}, None)
    elif case == "window":
        _result(arm, {"3": [0, 1, 2]}, None)
        window = ["60000", "90000"]  # between the 50K and 100K evals
    elif case == "unshared_window":  # the arm evaluated at 75K, the reference did not
        seeds = {"3": {"steps": [0, 75_000], "return_mean": [0, 1]}}
        arm.write_text(json.dumps({"seeds": seeds}))
        control.write_text(
            json.dumps({"seeds": {"3": {"steps": [0, 60_000], "return_mean": [0, 1]}}})
        )
        window = ["60000", "90000"]
    else:
        _result(arm, {"3": [0, 1, 2]}, None)
        window = ["100000", "50000"]
    out, plot = tmp_path / "out" / "h.json", tmp_path / "out" / "h.svg"
    args = ["--reference", str(control), "--arms", str(arm), "--window", *window]
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), *args, "--out", str(out), "--plot", str(plot)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert proc.returncode == 2
    assert message in proc.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("outputs", "message"),
    [
        (["--out", "{control}"], "is also an input"),
        (["--out", "{out}/h.json", "--plot", "{out}/h.foo"], "name a .svg or .png file"),
        (["--out", "{out}/h.svg", "--plot", "{out}/h.svg"], "name the same file"),
    ],
)
def test_outputs_that_are_inputs_or_unplottable_are_refused(tmp_path, outputs, message):
    control = tmp_path / "c.json"
    _result(control, {"3": [0, 1, 2]}, None)
    before = control.read_text()
    arm = _result(tmp_path / "a.json", {"3": [0, 1, 2]}, None)
    outputs = [o.format(control=control, out=tmp_path / "out") for o in outputs]
    args = ["--reference", str(control), "--arms", str(arm), *outputs]
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, cwd=ROOT
    )
    assert proc.returncode == 2
    assert message in proc.stderr
    assert control.read_text() == before
    assert not (tmp_path / "out").exists()


def test_arm_stats_iqm_trims_the_outlier_and_its_interval_too():
    """IQM of (1, 2, 4, 5, 100) drops one value at each end: 11 / 3 (the median would be 4, the
    mean 22.4). For eleven zeros and one 1,000, a resample keeps the outlier inside the middle
    half only if it draws it 4+ times in 12 (1.4%, within the 2.5% tail): the IQM's 95%
    interval is (0, 0); the mean's is not."""
    pc = _load()
    five = {str(s): {100: v} for s, v in zip(range(3, 8), [1.0, 2.0, 4.0, 5.0, 100.0], strict=True)}
    stats = pc.arm_stats(five, [100], [])["at_100"]
    assert stats["iqm"] == pytest.approx(11 / 3)
    assert stats["mean"] == pytest.approx(22.4)
    twelve = {str(s): {100: 1000.0 if s == 0 else 0.0} for s in range(12)}
    stats = pc.arm_stats(twelve, [100], [])["at_100"]
    assert stats["iqm_ci95"] == [0.0, 0.0]
    assert stats["ci95"][1] > 0


def test_paired_means_are_over_the_seeds_both_sides_have():
    """The arm has seeds 3, 4, 5 and the reference 3, 4: every paired figure uses 3 and 4."""
    pc = _load()
    arm = {"3": {100: 10.0}, "4": {100: 20.0}, "5": {100: 1000.0}}
    ref = {"3": {100: 1.0}, "4": {100: 2.0}}
    out = pc.compare(ref, arm, [100], (0, 100))["at_100"]
    assert out["mean"] == pytest.approx(15.0)
    assert out["reference_mean"] == pytest.approx(1.5)
    assert out["per_seed_delta"] == [9.0, 18.0]
