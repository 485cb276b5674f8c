"""The README's headline table (``benchmarks/headline.py``) against hand-computed values."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from .helpers import load_benchmark

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "headline.py"


def _result(path: Path, curves: dict[str, list[float]], wall: float | None) -> str:
    steps = [0, 50_000, 100_000]
    seeds = {s: {"steps": steps, "return_mean": r, "wall_time_s": wall} for s, r in curves.items()}
    path.write_text(json.dumps({"seeds": seeds}))
    return path.name


def _spec(tmp_path: Path, **task_changes) -> Path:
    control = _result(
        tmp_path / "c.json", {"3": [0, 3_000, 5_000], "4": [0, 4_000, 6_000]}, 7_200.0
    )
    arm = _result(tmp_path / "a.json", {"3": [0, 3_500, 9_000], "4": [0, 3_000, 5_000]}, None)
    task = {
        "task": "HalfCheetah-v5",
        "thresholds": [5_000, 8_000],
        "aim": 8_000,
        "control": {"label": "real-only", "file": control},
        "arms": [{"label": "spiking model", "file": arm, "model": True}],
        "anchors": [{"label": "MBPO (v4)", "returns": {100_000: 9_598}}],
        "claims": [{"label": "seed (v4, 1M)", "returns": {1_000_000: 10_206}}],
    }
    task.update(task_changes)
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({"at": [50_000, 100_000], "tasks": [task]}))
    return spec


def _run(tmp_path: Path, spec: Path, *extra: str) -> subprocess.CompletedProcess:
    args = ["--spec", str(spec), "--root", str(tmp_path), *extra]
    args += [
        "--markdown",
        str(tmp_path / "out" / "h.md"),
        "--out",
        str(tmp_path / "out" / "h.json"),
    ]
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, cwd=ROOT, timeout=120
    )


def test_table_rows_deltas_and_aims_by_hand(tmp_path):
    proc = _run(tmp_path, _spec(tmp_path))
    assert proc.returncode == 0, proc.stderr
    md = (tmp_path / "out" / "h.md").read_text()
    rows = [line for line in md.splitlines() if line.startswith("| HalfCheetah")]
    assert len(rows) == 4  # control, arm, anchor, claim
    control, arm, anchor, claim = (r.split(" | ") for r in rows)
    assert control[-1] == "2.0 h |"
    assert "(real-only control)" in control
    assert arm[-1] == "unfinished |"
    assert "+500 / -1,000" in arm  # @50K, seed 3 then seed 4
    assert "+4,000 / -1,000" in arm  # @100K
    # seed 3 reaches 5K and 8K at 100K; seed 4 reaches 5K at 100K, never 8K
    assert "5,000: 100K / 100K; 8,000: 100K / not reached by 100K" in arm
    assert "9,598" in anchor
    assert anchor[1] == "anchor: MBPO (v4)"
    assert "– (1M: 10,206)" in claim
    assert claim[1] == "claim: seed (v4, 1M)"
    # aims: arm mean at 100K (9,000 + 5,000) / 2 = 7,000 < 8,000; not ahead on seed 4
    assert "spiking model: 7,000 at 100K against the aim of 8,000, not reached" in md
    assert "spiking model: not ahead of its real-only control on every seed at 100K" in md
    assert "A row of 2 seeds: its bootstrap interval is the seeds' range" in md
    assert "with probability 1 − 2·0.5^n (50% for 2)" in md
    data = json.loads((tmp_path / "out" / "h.json").read_text())
    arm_row = data["tasks"][0]["rows"][1]
    # P(X > Y) over the 4 pairs of (9,000, 5,000) x (5,000, 6,000): 1 + 0.5 + 1 + 0 = 2.5 / 4
    assert arm_row["p_improvement"]["p"] == pytest.approx(0.625)
    assert arm_row["stats"]["at_100000"]["mean"] == pytest.approx(7_000.0)


def _aims_said(tmp_path, curves):
    """The headline's aims lines for one model arm with these per-seed curves."""
    hc = load_benchmark("headline")
    arm = _result(tmp_path / "b.json", curves, None)
    spec = hc.load_spec(
        _spec(tmp_path, arms=[{"label": "m", "file": arm, "model": True}]), tmp_path
    )
    rows = hc.task_rows(spec["tasks"][0], spec["at"])
    return hc.aims(spec["tasks"][0], rows, spec["at"])


def test_every_seed_ahead_is_said(tmp_path):
    said = _aims_said(tmp_path, {"3": [0, 4_000, 8_000], "4": [0, 5_000, 6_500]})
    assert "m: 7,250 at 100K against the aim of 8,000, not reached" in said
    assert any(s.startswith("m: ahead of its real-only control on every seed") for s in said)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"arms": [{"label": "x", "file": "missing.json"}]}, "cannot read it"),
        ({"arms": [{"label": "x", "file": "c.json", "colour": "red"}]}, "unknown key 'colour'"),
        ({"control": {"label": "x"}}, "missing key 'file'"),
        ({"aim": "high"}, "expected a number"),
        ({"anchors": [{"label": "x", "returns": {0: 1}}]}, "positive integers"),
        ({"arms": []}, "expected a list of arms"),
        ({"flavour": 1}, "unknown key 'flavour'"),
    ],
)
def test_bad_spec_exits_2_and_writes_nothing(tmp_path, change, message):
    proc = _run(tmp_path, _spec(tmp_path, **change))
    assert proc.returncode == 2
    assert message in proc.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("result", "message"),
    [
        ({"seeds": {"3": {"steps": [0, 50_000], "return_mean": [0, 1]}}}, "no evaluation at step"),
        (
            {
                "seeds": {"3": {"steps": [0, 50_000, 100_000], "return_mean": [0, 1, 2]}},
                "missing_seeds": ["4"],
            },
            "seeds ['4'] have no runs",
        ),
    ],
)
def test_an_arm_short_of_a_step_or_a_seed_is_refused(tmp_path, result, message):
    # the control has seeds 3 and 4 at every step; the arm's seed 3 stopped at 50K, or its
    # seed 4 never ran: a mean over fewer seeds than the row names is refused, not shown
    (tmp_path / "short.json").write_text(json.dumps(result))
    proc = _run(tmp_path, _spec(tmp_path, arms=[{"label": "s", "file": "short.json"}]))
    assert proc.returncode == 2
    assert message in proc.stderr
    assert not (tmp_path / "out").exists()


def test_an_arm_with_a_seed_the_control_lacks_is_refused(tmp_path):
    # seed 3 is shared, seed 7 is not: "ahead on every seed" would rest on seed 3 alone
    other = _result(tmp_path / "o.json", {"3": [0, 1, 9_000], "7": [0, 1, 2]}, None)
    proc = _run(tmp_path, _spec(tmp_path, arms=[{"label": "o", "file": other}]))
    assert proc.returncode == 2
    assert "seeds 7 have no run of the control" in proc.stderr
    assert not (tmp_path / "out").exists()


def test_committed_spec_names_stage_two_outputs():
    """Every result file of the README's spec exists or is one that stage 2's script writes."""
    spec = yaml.safe_load((ROOT / "benchmarks" / "headline.yaml").read_text())
    stage2 = (ROOT / "benchmarks" / "stage2_decide.sh").read_text()
    arms = re.findall(r'"\S+ (?:dreaming|baseline) (\S+) [\d ]+"', stage2)  # CONFIG ARM OUT SEEDS
    assert len(arms) == 6
    for task in spec["tasks"]:
        for run in [task["control"], *task["arms"]]:
            path = Path(run["file"])
            assert (ROOT / path).exists() or (
                path.parent.as_posix() == "benchmarks/results" and path.stem in arms
            ), run["file"]


@pytest.mark.parametrize("which", ["spec", "same"])
def test_outputs_that_are_the_spec_or_each_other_are_refused(tmp_path, which):
    spec = _spec(tmp_path)
    before = spec.read_text()
    markdown = spec if which == "spec" else tmp_path / "out" / "h.md"
    args = ["--spec", str(spec), "--root", str(tmp_path), "--markdown", str(markdown)]
    args += ["--out", str(tmp_path / "out" / "h.md")]
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert proc.returncode == 2
    assert ("is also an input" if which == "spec" else "name the same file") in proc.stderr
    assert spec.read_text() == before
    assert not (tmp_path / "out").exists()


def test_aims_at_exactly_the_aim_and_a_zero_delta_are_said_right(tmp_path):
    """A mean exactly at the aim has reached it; a seed exactly level with the control is
    not ahead of it."""
    said = _aims_said(tmp_path, {"3": [0, 4_000, 10_000], "4": [0, 5_000, 6_000]})
    assert "m: 8,000 at 100K against the aim of 8,000, reached" in said  # (10,000 + 6,000) / 2
    assert any(s.startswith("m: not ahead of its real-only control") for s in said)  # Δ 0 on 4


def test_p_improvement_uses_every_control_seed_and_wall_time_is_the_median(tmp_path):
    """P(arm > control) over all pairs, the control's third seed included: arm (9,000, 5,000)
    against control (5,000, 6,000, 10,000) is (1 + 1 + 0 + 0.5 + 0 + 0) / 6; the control's
    wall time is the median of 1, 1 and 10 hours."""
    hc = load_benchmark("headline")
    control = _result(
        tmp_path / "c3.json", {"3": [0, 1, 5_000], "4": [0, 1, 6_000], "5": [0, 1, 10_000]}, None
    )
    data = json.loads((tmp_path / control).read_text())
    for seed, hours in (("3", 1), ("4", 1), ("5", 10)):
        data["seeds"][seed]["wall_time_s"] = hours * 3600.0
    (tmp_path / control).write_text(json.dumps(data))
    spec = hc.load_spec(_spec(tmp_path, control={"label": "real-only", "file": control}), tmp_path)
    rows = hc.task_rows(spec["tasks"][0], spec["at"])
    assert rows[1]["p_improvement"]["p"] == pytest.approx(2.5 / 6)
    table = hc.markdown(spec["tasks"], [rows], spec["at"])
    control_line = next(line for line in table.splitlines() if "(real-only control)" in line)
    assert control_line.endswith("| 1.0 h |")


def test_task_flag_reports_only_the_named_task(tmp_path):
    # the second task's result files do not exist yet: naming the first reads only its own
    spec = _spec(tmp_path)
    raw = yaml.safe_load(spec.read_text())
    ant = dict(raw["tasks"][0], task="Ant-v5", control={"label": "c", "file": "not_yet.json"})
    raw["tasks"].append(ant)
    spec.write_text(yaml.safe_dump(raw))
    assert _run(tmp_path, spec).returncode == 2  # every task: Ant's control is missing
    proc = _run(tmp_path, spec, "--task", "HalfCheetah-v5")
    assert proc.returncode == 0, proc.stderr
    table = (tmp_path / "out" / "h.md").read_text()
    assert "HalfCheetah-v5" in table
    assert "Ant-v5" not in table
    assert [t["task"] for t in json.loads((tmp_path / "out" / "h.json").read_text())["tasks"]] == [
        "HalfCheetah-v5"
    ]


def test_task_flag_naming_no_task_of_the_spec_is_refused(tmp_path):
    proc = _run(tmp_path, _spec(tmp_path), "--task", "Hopper-v5")
    assert proc.returncode == 2
    assert "--task 'Hopper-v5': not a task of" in proc.stderr
    assert not (tmp_path / "out").exists()
