"""Report statistics against hand-computed values, and a report of a synthetic experiment."""

from __future__ import annotations

import csv
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import yaml

from spiking_dreamer.cli import main
from spiking_dreamer.report import (
    ReportError,
    bootstrap_ci,
    fmt_steps,
    iqm,
    mean,
    parse_budgets,
    parse_thresholds,
    probability_of_improvement,
    probability_of_improvement_ci,
    read_evals,
    sample_variance,
    steps_to_threshold,
    stratified_bootstrap_ci,
    write_report,
)
from spiking_dreamer.report.stats import bootstrap_bands

# ----------------------------------------------------------------------------- statistics


def test_iqm_hand_computed() -> None:
    assert iqm(np.arange(1, 9)) == pytest.approx(4.5)  # mean of 3, 4, 5, 6
    assert iqm([8, 1, 7, 2, 6, 3, 5, 4]) == pytest.approx(4.5)  # order does not matter
    assert iqm([1, 2, 3, 4, 100]) == pytest.approx(3.0)  # floor(5/4) = 1 cut per side
    assert iqm([1, 2, 3]) == pytest.approx(2.0)  # nothing cut below n = 4
    assert iqm([7.0]) == 7.0
    rows = iqm(np.array([np.arange(1, 9), np.arange(1, 9) * 10]))
    np.testing.assert_allclose(rows, [4.5, 45.0])
    with pytest.raises(ValueError, match="no values"):
        iqm([])


def test_probability_of_improvement_hand_computed() -> None:
    assert probability_of_improvement([3, 4], [1, 2]) == 1.0
    assert probability_of_improvement([0], [1]) == 0.0
    assert probability_of_improvement([1, 3], [2, 2]) == 0.5  # pairs: 0, 0, 1, 1
    assert probability_of_improvement([1, 2], [1, 2]) == 0.5  # ties count one half
    assert probability_of_improvement([1, 2, 3], [2]) == pytest.approx(0.5)  # 0, .5, 1
    # (2,1) 1, (2,3) 0, (2,5) 0, (5,1) 1, (5,3) 1, (5,5) .5 -> 3.5 / 6
    assert probability_of_improvement([2, 5], [1, 3, 5]) == pytest.approx(3.5 / 6)
    batched = probability_of_improvement([[3, 4], [0, 0]], [[1, 2], [1, 1]])
    np.testing.assert_allclose(batched, [1.0, 0.0])


def test_steps_to_threshold_first_step_or_not_reached() -> None:
    steps, returns = [0, 100, 200, 300], [1.0, 5.0, 3.0, 6.0]
    assert steps_to_threshold(steps, returns, 4.0) == 100
    assert steps_to_threshold(steps, returns, 5.0) == 100  # >= counts
    assert steps_to_threshold(steps, returns, 5.5) == 300  # the first crossing, dips ignored
    assert steps_to_threshold(steps, returns, 1.0) == 0
    assert steps_to_threshold(steps, returns, 6.01) is None  # never extrapolated
    assert steps_to_threshold([], [], 0.0) is None


def test_sample_variance() -> None:
    assert sample_variance([1, 2, 3, 4]) == pytest.approx(5 / 3)
    assert sample_variance([3.0]) is None


def test_bootstrap_ci_contains_estimate_and_is_deterministic() -> None:
    x = np.array([3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0])
    lo, hi = bootstrap_ci(x, mean, reps=2000, seed=3)
    assert lo <= x.mean() <= hi
    assert (lo, hi) == bootstrap_ci(x, mean, reps=2000, seed=3)
    assert (lo, hi) != bootstrap_ci(x, mean, reps=2000, seed=4)
    assert x.min() <= lo < hi <= x.max()
    lo_i, hi_i = bootstrap_ci(x, iqm, reps=2000, seed=3)
    assert lo_i <= iqm(x) <= hi_i
    assert bootstrap_ci([2.5], mean) == (2.5, 2.5)
    assert bootstrap_ci([1.0, 1.0, 1.0], mean) == (1.0, 1.0)


def test_bootstrap_intervals_are_the_exact_bootstrap_distributions_95_percent_quantiles() -> None:
    """For the values 0..9 the bootstrap distribution of the mean is exactly known: the sum of
    10 uniform draws from 0..9 (a 10-fold convolution). Its 2.5% and 97.5% quantiles are 2.7
    and 6.3 (at 90%: 3.0 and 6.0); 200,000 resamples find them, and so do the curve bands."""
    x = np.arange(10.0)
    counts = np.array([1.0])
    for _ in range(10):
        counts = np.convolve(counts, np.ones(10))
    cdf = np.cumsum(counts) / counts.sum()

    def quantile(p: float) -> float:
        return int(np.searchsorted(cdf, p)) / 10  # the smallest mean whose CDF reaches p

    exact = quantile(0.025), quantile(0.975)
    assert exact == (2.7, 6.3)
    assert bootstrap_ci(x, mean, reps=200_000, seed=0) == pytest.approx(exact)
    at_90 = bootstrap_ci(x, mean, reps=200_000, seed=0, level=0.9)
    assert at_90 == pytest.approx((quantile(0.05), quantile(0.95)))
    lo, hi = bootstrap_bands(np.repeat(x[:, None], 3, axis=1), reps=200_000, seed=0)
    np.testing.assert_allclose(lo, [2.7] * 3)
    np.testing.assert_allclose(hi, [6.3] * 3)


def test_stratified_bootstrap_resamples_within_groups() -> None:
    a, b = np.array([0.0, 0.1, 0.2, 0.3]), np.array([10.0, 10.5, 11.0])
    lo, hi = stratified_bootstrap_ci([a, b], iqm, reps=3000, seed=0)
    assert lo <= iqm(np.concatenate([a, b])) <= hi
    assert (lo, hi) == stratified_bootstrap_ci([a, b], iqm, reps=3000, seed=0)
    # every resample keeps 4 values of a and 3 of b, so the mean is bounded by the groups
    lo_m, hi_m = stratified_bootstrap_ci([a, b], mean, reps=3000, seed=0)
    assert (4 * 0.0 + 3 * 10.0) / 7 <= lo_m <= hi_m <= (4 * 0.3 + 3 * 11.0) / 7


def test_probability_of_improvement_ci() -> None:
    p, (lo, hi) = probability_of_improvement_ci([[3, 4, 5]], [[0, 1, 2]], reps=500, seed=0)
    assert (p, lo, hi) == (1.0, 1.0, 1.0)
    x, y = [1.0, 4.0, 2.0, 8.0, 5.0], [3.0, 0.5, 2.0, 1.0, 6.0]
    p, (lo, hi) = probability_of_improvement_ci([x], [y], reps=2000, seed=1)
    assert p == pytest.approx(probability_of_improvement(x, y))
    assert 0 <= lo <= p <= hi <= 1
    assert (lo, hi) == probability_of_improvement_ci([x], [y], reps=2000, seed=1)[1]
    # averaged over tasks
    p2, _ = probability_of_improvement_ci([[3, 4], [0]], [[1, 2], [1]], reps=100)
    assert p2 == pytest.approx(0.5)


def test_parsers_and_formatting() -> None:
    assert parse_thresholds(["Ant-v5=3000,5000", "hopper=", "hc=-1.5"]) == {
        "ant": (3000.0, 5000.0),
        "hopper": (),
        "hc": (-1.5,),
    }
    with pytest.raises(ReportError):
        parse_thresholds(["ant"])
    with pytest.raises(ReportError):
        parse_thresholds(["ant=x"])
    assert parse_budgets("100000, 300k,1M") == [100_000, 300_000, 1_000_000]
    assert parse_budgets(None) is None
    with pytest.raises(ReportError):
        parse_budgets("lots")
    assert [fmt_steps(s) for s in (250, 5000, 480_000, 1_000_000, 1_500_000, None)] == [
        "250",
        "5K",
        "480K",
        "1M",
        "1.5M",
        "-",
    ]


def test_read_evals_skips_a_torn_last_line(tmp_path: Path) -> None:
    path = tmp_path / "eval.jsonl"
    path.write_text('{"step": 0, "return_mean": 1.5}\n{"step": 100, "return_mean": 2}\n{"step": 2')
    problems: list[str] = []
    assert read_evals(path, problems) == ([0, 100], [1.5, 2.0])
    assert problems == []  # a live run is writing the last line: no warning
    assert read_evals(tmp_path / "missing.jsonl") == ([], [])


def test_read_evals_warns_of_malformed_and_binary_lines(tmp_path: Path) -> None:
    path = tmp_path / "eval.jsonl"
    good = '{"step": 0, "return_mean": 1.5}\n'
    path.write_bytes((good + "not json\n" + '{"step": 5}\n').encode() + b"\xff\xfe\n")
    problems: list[str] = []
    assert read_evals(path, problems) == ([0], [1.5])
    (warning,) = problems
    assert warning.startswith(f"{path}: skipped what is not an evaluation record: line 2 (")
    assert "line 3 (KeyError" in warning
    assert "line 4 (not UTF-8 text" in warning
    path.write_bytes(bytes(range(256)) * 4)  # binary throughout
    problems.clear()
    assert read_evals(path, problems) == ([], [])
    assert "not UTF-8 text" in problems[0]


def test_report_of_a_run_with_a_binary_eval_log_warns_and_exits_0(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    exp = tmp_path / "exp"
    _write_run(exp, "ant__baseline__s0", "Ant-v5", 100, [0, 100], [1.0, 2.0])
    log = exp / "runs" / "ant__baseline__s0" / "eval.jsonl"
    log.write_bytes(log.read_bytes() + b"\x00\x9a\xff\n")
    assert main(["report", str(exp), "--reps", "50"]) == 0
    err = capsys.readouterr().err
    assert (
        f"note: ant__baseline__s0: {log}: skipped what is not an evaluation record: line 3" in err
    )
    assert "Traceback" not in err
    assert "skipped what is not an evaluation record" in (exp / "report" / "report.md").read_text()


# ----------------------------------------------------------------------------- the figure


def _task(thresholds: tuple[float, ...], task: str = "HalfCheetah-v5"):
    from spiking_dreamer.report.summary import ArmSummary, CurvePoint, TaskSummary

    curve = tuple(CurvePoint(s, r, (r - 50, r + 50), 2) for s, r in ((0, 0.0), (5000, 400.0)))
    arm = ArmSummary((0, 1), ("a", "b"), curve, (), (), None)
    return TaskSummary(
        task,
        "HalfCheetah-v5",
        ("HalfCheetah-v5",),
        thresholds,
        (),
        5000,
        {"baseline": arm},
        None,
        None,
    )


def test_figure_title_names_the_env_once_and_fits() -> None:
    pytest.importorskip("matplotlib")
    from spiking_dreamer.report.render import figure_title, task_figure

    assert figure_title(_task(())) == "HalfCheetah-v5"  # a train run: the task is its env id
    assert figure_title(_task((), "halfcheetah_mbpo")) == "HalfCheetah-v5 (halfcheetah_mbpo)"
    fig = task_figure(_task((8000.0, 10000.0), "halfcheetah_one_step_dreams"), [])
    renderer = fig.canvas.get_renderer()
    fig.draw(renderer)
    title = fig.axes[0].title
    assert title.get_text() == "HalfCheetah-v5 (halfcheetah_one_step_dreams)"
    box, page = title.get_window_extent(renderer), fig.bbox
    assert page.x0 <= box.x0  # not cut
    assert box.x1 <= page.x1


def test_threshold_lines_only_when_the_curves_come_near() -> None:
    pytest.importorskip("matplotlib")
    from spiking_dreamer.report.render import task_figure, thresholds_shown

    assert thresholds_shown([8000, 10000], [-300, 0, 450]) == []  # an early curve
    assert thresholds_shown([8000, 10000], [0, 4000, 7500]) == [8000]
    assert thresholds_shown([8000, 10000], [0, 9500]) == [8000, 10000]
    assert thresholds_shown([3000], []) == []
    fig = task_figure(_task((8000.0, 10000.0)), [])
    top = fig.axes[0].get_ylim()[1]
    assert top < 1000  # the early curve keeps the axis: no line at 8K flattens it


# ----------------------------------------------------------------------------- a synthetic report

STEPS = [0, 50_000, 100_000, 150_000]
HC = {  # (arm, seed) -> eval mean returns at STEPS
    ("dreaming", 0): [0, 7000, 8500, 10100],
    ("dreaming", 1): [0, 8200, 9000, 9900],
    ("dreaming", 2): [0, 7600, 8200, 10000],
    ("dreaming", 3): [0, 6000, 8800, 10200],
    ("dreaming", 4): [0, 7200, 9500, 10300],
    ("baseline", 0): [0, 4000, 6000, 8000],
    ("baseline", 1): [0, 5000, 7000, 9000],
    ("baseline", 2): [0, 4500, 8100, 7000],
    ("baseline", 3): [0, 3000, 5000, 9500],
    ("baseline", 4): [0, 4200, 6600, 8500],
}


def _write_run(exp: Path, name: str, env_id: str, total: int, steps, returns, done=True) -> None:
    d = exp / "runs" / name
    d.mkdir(parents=True)
    cfg = {"env": {"id": env_id}, "train": {"total_steps": total}}
    (d / "config.yaml").write_text(yaml.safe_dump(cfg))
    lines = [
        json.dumps({"step": s, "return_mean": r, "returns": [r]})
        for s, r in zip(steps, returns, strict=True)
    ]
    (d / "eval.jsonl").write_text("\n".join(lines) + "\n")
    if done:
        (d / "summary.json").write_text(json.dumps({"steps": total, "final_return": returns[-1]}))


@pytest.fixture
def synthetic_exp(tmp_path: Path) -> Path:
    exp = tmp_path / "exp"
    for (arm, seed), rets in HC.items():
        _write_run(exp, f"halfcheetah__{arm}__s{seed}", "HalfCheetah-v5", 150_000, STEPS, rets)
    # Ant: one baseline seed stopped at 50K: every final figure of the task uses step 50K
    _write_run(exp, "ant__dreaming__s0", "Ant-v5", 100_000, STEPS[:3], [0, 1000, 3100])
    _write_run(exp, "ant__dreaming__s1", "Ant-v5", 100_000, STEPS[:3], [0, 1500, 2900])
    _write_run(exp, "ant__baseline__s0", "Ant-v5", 100_000, STEPS[:3], [0, 800, 2000])
    _write_run(exp, "ant__baseline__s1", "Ant-v5", 100_000, STEPS[:2], [0, 700], done=False)
    (exp / "runs" / "ant__baseline__s2").mkdir()  # crashed before its first evaluation
    (exp / "runs" / "ant__baseline__s3").symlink_to(tmp_path / "not_started")  # not run yet
    return exp


def test_report_of_a_synthetic_experiment(synthetic_exp: Path) -> None:
    report = write_report(synthetic_exp, reps=1000)
    out = synthetic_exp / "report"
    hc = next(t for t in report["tasks"] if t["task"] == "halfcheetah")
    assert hc["env_id"] == "HalfCheetah-v5"
    assert hc["thresholds"] == [8000.0, 10000.0]
    assert hc["final_step"] == 150_000
    assert hc["budgets"] == [100_000, 150_000]
    d, b = hc["arms"]["dreaming"], hc["arms"]["baseline"]
    assert d["seeds"] == [0, 1, 2, 3, 4]
    # dreaming means: 7200 @50K, 8800 @100K, 10100 @150K; baseline: 4140, 6540, 8400
    assert d["final"]["mean"] == pytest.approx(10100.0)
    assert b["final"]["mean"] == pytest.approx(8400.0)
    assert [s["step"] for s in d["steps_to_threshold"]] == [100_000, 150_000]
    assert [s["seeds_reached"] for s in d["steps_to_threshold"]] == [5, 4]
    assert d["steps_to_threshold"][0]["per_seed"] == [100_000, 50_000, 100_000, 100_000, 100_000]
    assert [s["step"] for s in b["steps_to_threshold"]] == [150_000, None]  # 10K not reached
    assert b["steps_to_threshold"][1]["seeds_reached"] == 0
    assert d["return_at"][0]["mean"] == pytest.approx(8800.0)
    var_d = np.var([10100, 9900, 10000, 10200, 10300], ddof=1)
    var_b = np.var([8000, 9000, 7000, 9500, 8500], ddof=1)
    assert d["final"]["variance"] == pytest.approx(var_d)
    ratio = hc["variance_ratio"]
    assert ratio["baseline_over_dreaming"] == pytest.approx(var_b / var_d)
    assert ratio["meaningful"] is True
    assert ratio["note"] is None
    assert d["final"]["iqm"] == pytest.approx(iqm([10100, 9900, 10000, 10200, 10300]))
    lo, hi = d["final"]["iqm_ci95"]
    assert lo <= d["final"]["iqm"] <= hi
    assert hc["probability_of_improvement"]["p"] == 1.0  # every dreaming seed beats every baseline
    for c in d["curve"]:
        assert c["ci95"][0] <= c["mean"] <= c["ci95"][1]

    ant = next(t for t in report["tasks"] if t["task"] == "ant")
    assert ant["thresholds"] == [3000.0, 5000.0]
    assert ant["final_step"] == 50_000  # the unfinished seed truncates the common steps
    assert ant["arms"]["baseline"]["final"]["mean"] == pytest.approx(750.0)
    assert ant["arms"]["dreaming"]["steps_to_threshold"][0]["step"] == 100_000  # mean 3000
    assert ant["arms"]["dreaming"]["steps_to_threshold"][0]["per_seed"] == [100_000, None]
    assert ant["arms"]["baseline"]["curve"][-1]["step"] == 50_000
    assert ant["variance_ratio"]["note"] == "fewer than 5 seeds: not meaningful"
    notes = "\n".join(report["notes"])
    assert "ant__baseline__s1: unfinished, last evaluation at step 50K of 100K" in notes
    assert "ant__baseline__s2: unfinished, no evaluations" in notes
    assert "ant__baseline__s3: missing, no evaluations (left out)" in notes
    agg = report["aggregate"]
    assert agg["tasks"] == ["ant", "halfcheetah"]
    assert set(agg["iqm"]) == {"dreaming", "baseline"}
    p_ant = probability_of_improvement([1000, 1500], [800, 700])
    assert agg["probability_of_improvement"]["p"] == pytest.approx((p_ant + 1.0) / 2)

    # the files
    md = (out / "report.md").read_text()
    assert (
        "| Method | Seeds | Steps to 8K | Steps to 10K | Return @ 100K | Return @ 150K (final)"
        in md
    )
    assert "| Dreaming | 5 | 100K (5/5 seeds) | 150K (4/5 seeds) | 8,800 [" in md
    assert "| Baseline | 5 | 150K (5/5 seeds) | not reached (0/5 seeds) |" in md
    assert "![HalfCheetah-v5 learning curves](curves_halfcheetah.png)" in md
    assert "fewer than 5 seeds: not meaningful" in md
    assert json.loads((out / "report.json").read_text())["tasks"][1]["final_step"] == 150_000
    rows = list(csv.DictReader((out / "results.csv").open()))
    final = [r for r in rows if r["metric"] == "final_return" and r["task"] == "halfcheetah"]
    assert {r["arm"]: float(r["value"]) for r in final} == {"dreaming": 10100.0, "baseline": 8400.0}
    not_reached = [r for r in rows if r["metric"] == "steps_to_threshold" and r["value"] == ""]
    assert any("not reached by step 150000" in r["note"] for r in not_reached)
    curves = list(csv.DictReader((out / "curves.csv").open()))
    assert len(curves) == 2 * 4 + 3 + 2  # HC 2 arms x 4 steps; Ant dreaming 3, baseline 2
    assert len(list(csv.DictReader((out / "runs.csv").open()))) == 16
    for task in ("halfcheetah", "ant"):
        assert (out / f"curves_{task}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        root = ET.parse(out / f"curves_{task}.svg").getroot()
        assert root.tag.endswith("svg")


def test_report_figures_by_hand(synthetic_exp: Path) -> None:
    """Curve means, a threshold of 0 (reached at step 0), a budget one seed lacks (no mean
    from the other alone), and the cross-task IQM of TD3-normalised final returns, each
    recomputed here from the runs' values."""
    report = write_report(
        synthetic_exp, reps=200, budgets=[100_000], thresholds={"halfcheetah": [0.0, 8000.0]}
    )
    hc = next(t for t in report["tasks"] if t["task"] == "halfcheetah")
    ant = next(t for t in report["tasks"] if t["task"] == "ant")
    for arm in ("dreaming", "baseline"):
        by_seed = np.array([HC[(arm, s)] for s in range(5)], dtype=float)
        got = [c["mean"] for c in hc["arms"][arm]["curve"]]
        np.testing.assert_allclose(got, by_seed.mean(0))  # baseline: 0, 4140, 6540, 8400
        first = hc["arms"][arm]["steps_to_threshold"][0]
        assert (first["step"], first["per_seed"]) == (0, [0] * 5)
    lacking = [b for b in ant["arms"]["baseline"]["return_at"] if b["step"] == 100_000]
    assert lacking == [{"step": 100_000, "reached_by": 1, "n_seeds": 2}]  # no mean of one seed
    finals = {
        "dreaming": {"halfcheetah": [10100, 9900, 10000, 10200, 10300], "ant": [1000, 1500]},
        "baseline": {"halfcheetah": [8000, 9000, 7000, 9500, 8500], "ant": [800, 700]},
    }
    lo_hi = {"halfcheetah": (-289.4, 10574.0), "ant": (-70.3, 3942.0)}  # TD3's v4 constants
    for arm, tasks in finals.items():
        scores = np.concatenate(
            [(np.array(v) - lo_hi[t][0]) / (lo_hi[t][1] - lo_hi[t][0]) for t, v in tasks.items()]
        )
        kept = np.sort(scores)[1:-1]  # 7 scores: the IQM drops floor(7 / 4) = 1 at each end
        assert report["aggregate"]["iqm"][arm]["iqm"] == pytest.approx(kept.mean())


def test_an_arms_final_iqm_interval_trims_like_the_iqm(tmp_path: Path) -> None:
    """Eleven seeds at 0 and one at 1,000: a resample keeps the outlier in the middle half only
    if it draws it 4+ times in 12 (1.4%, inside the 2.5% tail), so the IQM's 95% interval is
    (0, 0); the mean's is not."""
    exp = tmp_path / "exp"
    for seed in range(12):
        last = 1000.0 if seed == 0 else 0.0
        _write_run(exp, f"hc__dreaming__s{seed}", "HalfCheetah-v5", 100, [0, 100], [0.0, last])
    report = write_report(exp, reps=2000, figures=False)
    final = report["tasks"][0]["arms"]["dreaming"]["final"]
    assert final["iqm_ci95"] == [0.0, 0.0]
    assert final["ci95"][1] > 0


def test_report_cli_options_and_errors(
    synthetic_exp: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "elsewhere"
    args = ["report", str(synthetic_exp), "--out", str(out), "--reps", "200"]
    code = main([*args, "--thresholds", "halfcheetah=9000", "--budgets", "50k,200k"])
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    hc = next(t for t in report["tasks"] if t["task"] == "halfcheetah")
    assert hc["thresholds"] == [9000.0]
    assert hc["budgets"] == [50_000, 150_000, 200_000]  # the final step is always reported
    at = hc["arms"]["dreaming"]["return_at"]
    assert at[0]["mean"] == pytest.approx(7200.0)
    assert at[2] == {"step": 200_000, "reached_by": 0, "n_seeds": 5}
    assert "| — (0/5 seeds have this eval) |" in (out / "report.md").read_text()
    assert "wrote" in capsys.readouterr().out
    assert main(["report", str(tmp_path / "nothing")]) == 2
    assert "no experiment directory" in capsys.readouterr().err
    assert main([*args, "--budgets", "many"]) == 2
