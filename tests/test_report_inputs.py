"""What ``spiking-dreamer report`` reads besides a sweep: train run directories, folders of
them, several inputs at once; and the errors for inputs or outputs it cannot use."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from spiking_dreamer.cli import main
from spiking_dreamer.report import ReportError, write_report

from .helpers import TINY_ARGS


def _train(run_dir: Path, seed: int) -> Path:
    argv = ["train", "--run-dir", str(run_dir), "--total-steps", "100", "--no-dreaming"]
    assert main([*argv, "--seed", str(seed), *TINY_ARGS]) == 0
    return run_dir


@pytest.fixture(scope="module")
def train_runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``runs/`` with two real baseline runs (seeds 0, 1) and a copy of seed 0 relabelled as a
    dreaming run (its config says ``world_model.use: dreams``)."""
    root = tmp_path_factory.mktemp("train") / "runs"
    _train(root / "base_s0", 0)
    _train(root / "base_s1", 1)
    dream = root / "dream_s0"
    shutil.copytree(root / "base_s0", dream)
    cfg = yaml.safe_load((dream / "config.yaml").read_text())
    cfg["world_model"]["use"] = "dreams"
    (dream / "config.yaml").write_text(yaml.safe_dump(cfg))
    return root


@pytest.mark.mujoco
def test_report_of_one_train_run_dir(train_runs: Path, tmp_path: Path) -> None:
    run = train_runs / "base_s1"
    report = write_report(run, tmp_path / "out", reps=50)
    assert [r["name"] for r in report["runs"]] == ["base_s1"]
    assert report["runs"][0]["status"] == "done"
    (task,) = report["tasks"]
    assert task["task"] == task["env_id"] == "HalfCheetah-v5"
    assert list(task["arms"]) == ["baseline"]
    assert task["arms"]["baseline"]["seeds"] == [1]
    assert task["final_step"] == 100
    assert (tmp_path / "out" / "report.md").exists()
    assert write_report(run, reps=50, figures=False)["files"]["json"] == str(
        run / "report" / "report.json"
    )


@pytest.mark.mujoco
def test_report_of_a_folder_of_train_runs_groups_by_env_and_arm(train_runs: Path) -> None:
    report = write_report(train_runs, reps=50)
    (task,) = report["tasks"]
    assert list(task["arms"]) == ["dreaming", "baseline"]
    assert task["arms"]["baseline"]["seeds"] == [0, 1]
    assert task["arms"]["baseline"]["runs"] == ["base_s0", "base_s1"]
    assert task["arms"]["dreaming"]["seeds"] == [0]
    assert task["probability_of_improvement"] is not None
    assert (train_runs / "report" / "curves_HalfCheetah-v5.png").exists()
    # the report directory left in the folder is not mistaken for a run next time
    assert len(write_report(train_runs, reps=50, figures=False)["runs"]) == 3


@pytest.mark.mujoco
def test_report_cli_takes_several_run_dirs(
    train_runs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    runs = [str(train_runs / "base_s0"), str(train_runs / "base_s1")]
    assert main(["report", *runs, "--out", str(out), "--reps", "50"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["tasks"][0]["arms"]["baseline"]["seeds"] == [0, 1]
    assert report["inputs"] == [str(Path(r).resolve()) for r in runs]
    assert report["exp_dir"] == str(train_runs.resolve())
    assert "wrote" in capsys.readouterr().out


@pytest.mark.mujoco
def test_report_refuses_a_seed_twice(train_runs: Path, tmp_path: Path) -> None:
    run = train_runs / "base_s0"
    with pytest.raises(ReportError, match="two runs of HalfCheetah-v5 baseline seed 0"):
        write_report([run, run], tmp_path / "out", reps=50)
    assert not (tmp_path / "out").exists()


def test_report_of_a_directory_without_runs_names_the_layouts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "empty"
    (empty / "runs" / "not-a-run").mkdir(parents=True)
    (empty / "notes.txt").write_text("x")
    with pytest.raises(ReportError, match="no runs found") as e:
        write_report(empty)
    for layout in ("manifest.json", "runs/<task>__<arm>__s<seed>/", "config.yaml", "folder"):
        assert layout in str(e.value)
    assert main(["report", str(empty)]) == 2
    err = capsys.readouterr().err
    assert "no runs found" in err
    assert "Traceback" not in err
    assert not (empty / "report").exists()


def _sweep_run(exp: Path, name: str) -> None:
    d = exp / "runs" / name
    d.mkdir(parents=True)
    (d / "config.yaml").write_text(yaml.safe_dump({"env": {"id": "Ant-v5"}}))
    lines = [json.dumps({"step": s, "return_mean": float(s)}) for s in (0, 100)]
    (d / "eval.jsonl").write_text("\n".join(lines) + "\n")


def test_report_out_that_is_a_file_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    exp = tmp_path / "exp"
    _sweep_run(exp, "ant__baseline__s0")
    out = tmp_path / "report.md"
    out.write_text("mine")
    with pytest.raises(ReportError, match="is a file"):
        write_report(exp, out)
    assert main(["report", str(exp), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{out} is a file" in err
    assert "Traceback" not in err
    assert out.read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exp", "report.md"]
    assert sorted(p.name for p in exp.iterdir()) == ["runs"]
    # a file where the default report directory would go
    (exp / "report").write_text("mine")
    assert main(["report", str(exp)]) == 2
    assert f"{exp / 'report'} is a file" in capsys.readouterr().err
