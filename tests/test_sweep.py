"""Sweeps: argument parsing, the run task (skip / resume / restart / config check) and real
tiny sweeps on a local Ray instance, followed by a report of them."""

from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from spiking_dreamer.cli import main
from spiking_dreamer.config import ConfigError
from spiking_dreamer.sweep import (
    SweepError,
    config_differences,
    latest_step,
    parse_arms,
    parse_seeds,
    plan_runs,
    run_dir_state,
    run_one,
)

from .helpers import ROOT, TINY, pendulum_config, without_wandb_key

HALFCHEETAH = str(ROOT / "configs" / "halfcheetah.yaml")


def test_parse_seeds_and_arms() -> None:
    assert parse_seeds("0-4") == [0, 1, 2, 3, 4]
    assert parse_seeds("0,1,2") == [0, 1, 2]
    assert parse_seeds("3") == [3]
    assert parse_seeds("0-2, 7") == [0, 1, 2, 7]
    for bad in ("", "a", "4-2", "1,1", "-1", "0-"):
        with pytest.raises(SweepError):
            parse_seeds(bad)
    assert parse_arms("dreaming,baseline") == ["dreaming", "baseline"]
    assert parse_arms("baseline") == ["baseline"]
    for bad in ("", "dream", "baseline,baseline"):
        with pytest.raises(SweepError):
            parse_arms(bad)


def test_plan_runs_names_and_overrides(tmp_path: Path) -> None:
    runs = plan_runs([HALFCHEETAH], [0, 3], ["dreaming", "baseline"], ["train.threads=4"], tmp_path)
    assert [r.name for r in runs] == [
        "halfcheetah__dreaming__s0",
        "halfcheetah__dreaming__s3",
        "halfcheetah__baseline__s0",
        "halfcheetah__baseline__s3",
    ]
    r = runs[1]
    assert r.run_dir == tmp_path / "runs" / "halfcheetah__dreaming__s3"
    assert r.cfg["train"]["seed"] == 3
    assert r.cfg["world_model"]["use"] == "dreams"
    assert runs[2].cfg["world_model"]["use"] == "none"
    assert r.cfg["log"]["progress"] is False
    assert r.cfg["train"]["threads"] == 4  # the user's --set wins over --cpus-per-run
    assert (
        plan_runs([HALFCHEETAH], [0], ["baseline"], [], tmp_path, 2)[0].cfg["train"]["threads"] == 2
    )
    with pytest.raises(SweepError, match="must differ"):
        plan_runs([HALFCHEETAH, HALFCHEETAH], [0], ["baseline"], [], tmp_path)
    with pytest.raises(ConfigError, match="unknown key"):  # validated before anything runs
        plan_runs([HALFCHEETAH], [0], ["baseline"], ["train.sed=1"], tmp_path)


def test_runs_without_gpus_run_on_the_cpu(tmp_path: Path) -> None:
    """``train.device: auto`` becomes ``cpu`` without GPUs per run (Ray need not hide a node's
    GPUs from such a task); a CUDA device then is refused, and with GPUs ``auto`` stays."""
    (run,) = plan_runs([HALFCHEETAH], [0], ["baseline"], [], tmp_path)
    assert run.cfg["train"]["device"] == "cpu"
    (run,) = plan_runs([HALFCHEETAH], [0], ["baseline"], [], tmp_path, 1, 0.5)
    assert run.cfg["train"]["device"] == "auto"
    with pytest.raises(SweepError, match=r"train\.device=cuda needs --gpus-per-run > 0"):
        plan_runs([HALFCHEETAH], [0], ["baseline"], ["train.device=cuda"], tmp_path)


def test_a_crashed_run_still_held_by_a_trainer_is_not_moved_aside(tmp_path: Path) -> None:
    from spiking_dreamer.training.run_dir import lock_run_dir

    spec = _spec(tmp_path)
    spec.run_dir.mkdir(parents=True)
    (spec.run_dir / "config.yaml").write_text("x: 1\n")  # files, no training state: crashed
    with lock_run_dir(spec.run_dir):  # e.g. the previous session's worker, still running
        result = run_one(spec, 1)
    assert result["status"] == "failed"
    assert "another process is training in" in result["error"]
    assert spec.run_dir.is_dir()
    assert not list(tmp_path.glob("runs/*.failed-*"))


def test_config_differences_ignores_log_threads_and_device() -> None:
    a = {"train": {"seed": 0, "threads": 1, "device": "cpu"}, "log": {"wandb": False}}
    b = {"train": {"seed": 1, "threads": 2, "device": "auto"}, "log": {"wandb": True}}
    assert config_differences(a, b) == ["train.seed: 0 vs 1"]


def test_missing_ray_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from spiking_dreamer.export import MissingExtraError
    from spiking_dreamer.sweep import import_ray

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(MissingExtraError, match=r"spiking-dreamer\[sweep\]"):
        import_ray()


def test_unschedulable_names_what_no_node_has() -> None:
    from spiking_dreamer.sweep.driver import unschedulable

    two_cpus = [{"CPU": 2.0, "GPU": 0.0}]
    assert unschedulable(1, 0, two_cpus) is None
    assert unschedulable(2, 0, two_cpus) is None
    assert "at most 2 CPUs" in unschedulable(3, 0, two_cpus)
    assert "no GPU" in unschedulable(1, 1, two_cpus)
    assert "no GPU" in unschedulable(1, 0.5, [{"CPU": 8.0}])
    nodes = [{"CPU": 8.0, "GPU": 0.0}, {"CPU": 2.0, "GPU": 1.0}]
    assert unschedulable(2, 1, nodes) is None
    assert "fits on no single node" in unschedulable(4, 1, nodes)
    assert "at most 1 GPUs per node" in unschedulable(1, 2, nodes)


def test_a_sweep_that_could_never_start_is_refused_before_anything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--cpus-per-run 3`` on a 2-CPU machine printed ``running 0, pending 2`` forever."""
    pytest.importorskip("ray")
    import spiking_dreamer.sweep.driver as driver

    monkeypatch.setattr(driver.os, "cpu_count", lambda: 2)
    exp = tmp_path / "exp"
    args = ["sweep", "--config", pendulum_config(tmp_path), "--seeds", "0-1", "--arms", "baseline"]
    assert main([*args, "--exp-dir", str(exp), "--cpus-per-run", "3"]) == 2
    err = capsys.readouterr().err
    assert "--cpus-per-run 3 asks for more than there is: at most 2 CPUs on this machine" in err
    assert not exp.exists()
    if not torch.cuda.is_available():
        assert main([*args, "--exp-dir", str(exp), "--gpus-per-run", "1"]) == 2
        assert "--gpus-per-run 1 asks for more than there is: no GPU" in capsys.readouterr().err
        assert not exp.exists()


def test_a_sweep_refused_for_a_missing_ray_leaves_no_experiment_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    exp = tmp_path / "exp"
    args = ["sweep", "--config", pendulum_config(tmp_path), "--seeds", "0", "--arms", "baseline"]
    assert main([*args, "--exp-dir", str(exp)]) == 2
    assert "pip install 'spiking-dreamer[sweep]'" in capsys.readouterr().err
    assert not exp.exists()


def test_a_rerun_with_a_changed_key_says_what_differs_and_changes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """It used to mark the finished runs failed in manifest.json and exit 1."""
    config = pendulum_config(tmp_path)
    exp = tmp_path / "exp"
    specs = plan_runs([config], [0, 1], ["baseline"], [], exp)
    for spec in specs:  # two finished runs of the original command
        spec.run_dir.mkdir(parents=True)
        (spec.run_dir / "config.yaml").write_text(yaml.safe_dump(spec.cfg))
        (spec.run_dir / "summary.json").write_text(json.dumps({"steps": spec.total_steps}))
    manifest = {"runs": [{"name": s.name, "status": "done"} for s in specs]}
    (exp / "manifest.json").write_text(json.dumps(manifest))
    before = {p: p.stat().st_mtime_ns for p in exp.rglob("*")}
    args = ["sweep", "--config", config, "--seeds", "0-1", "--arms", "baseline"]
    assert main([*args, "--exp-dir", str(exp), "--set", "td3.batch_size=64"]) == 2
    err = capsys.readouterr().err
    assert "holds runs made with other settings than this command's" in err
    assert "pendulum__baseline__s0: td3.batch_size: 16 vs 64" in err
    assert "pendulum__baseline__s1: td3.batch_size: 16 vs 64" in err
    assert json.loads((exp / "manifest.json").read_text()) == manifest
    assert {p: p.stat().st_mtime_ns for p in exp.rglob("*")} == before


def test_latest_step_reads_the_last_complete_record(tmp_path: Path) -> None:
    assert latest_step(tmp_path) is None
    (tmp_path / "metrics.jsonl").write_text('{"step": 5}\n{"step": 120, "x": 1}\n{"step": 1')
    assert latest_step(tmp_path) == 120


# ----------------------------------------------------------------------------- the run task


def _spec(tmp_path: Path, *extra: str, arm: str = "baseline", seed: int = 0):
    overrides = [*TINY, "train.total_steps=200", "log.tensorboard=false", *extra]
    return plan_runs([HALFCHEETAH], [seed], [arm], overrides, tmp_path)[0]


def _evals(run_dir: Path) -> list[int]:
    return [json.loads(x)["step"] for x in (run_dir / "eval.jsonl").read_text().splitlines()]


def test_run_one_checks_the_workers_wandb_key_before_the_run_exists(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    without_wandb_key(monkeypatch, tmp_path)
    spec = _spec(tmp_path, "log.wandb=true")
    result = run_one(spec, 1)
    assert result["status"] == "failed"
    assert "W&B has no API key here" in result["error"]
    assert not spec.run_dir.exists()


@pytest.mark.mujoco
def test_run_one_resumes_restarts_skips_and_checks_the_config(tmp_path: Path) -> None:
    from spiking_dreamer.config_loading import config_from_dict
    from spiking_dreamer.training.checkpoint import read_state
    from spiking_dreamer.training.trainer import Trainer

    spec = _spec(tmp_path)
    # interrupted after a training-state checkpoint at step 100 (an episode end)
    trainer = Trainer(config_from_dict(spec.cfg), spec.run_dir)
    trainer.begin()
    while trainer.step < 100:
        trainer.advance()
    trainer.save_state()
    trainer.close()
    assert run_dir_state(spec.run_dir, spec.total_steps) == "resumable"
    status, log = tmp_path / "status.json", tmp_path / "run.log"
    rerun = _spec(tmp_path, "log.log_every=10")  # a run setting: taken by the resumed run
    assert rerun.run_dir == spec.run_dir
    result = run_one(rerun, 1, str(status), "abc", str(log))
    assert result["status"] == "done", result["error"]
    assert result["action"] == "resumed at step 100"
    saved = read_state(spec.run_dir / "checkpoints" / "state.pt")["config"]
    assert saved["log"]["log_every"] == 10
    assert _evals(spec.run_dir) == [0, 100, 200]  # no duplicated evaluation
    assert not status.exists()  # removed when the task ends
    assert "resumed at step 100" in log.read_text()
    assert run_dir_state(spec.run_dir, spec.total_steps) == "done"

    again = run_one(spec, 1)
    assert (again["status"], again["action"], again["steps"]) == ("done", "skipped", 200)

    other = _spec(tmp_path, "td3.batch_size=8")
    failed = run_one(other, 1)
    assert failed["status"] == "failed"
    assert "another config (td3.batch_size: 16 vs 8)" in failed["error"]

    # crashed before its first training-state checkpoint: moved aside, started afresh
    crashed = _spec(tmp_path, seed=1)
    crashed.run_dir.mkdir(parents=True)
    (crashed.run_dir / "metrics.jsonl").write_text('{"step": 50}\n')
    result = run_one(crashed, 1)
    assert result["status"] == "done", result["error"]
    assert result["action"].startswith("restarted")
    moved = crashed.run_dir.with_name(crashed.run_dir.name + ".failed-1")
    assert (moved / "metrics.jsonl").read_text() == '{"step": 50}\n'
    assert _evals(crashed.run_dir) == [0, 100, 200]


# ----------------------------------------------------------------------------- real sweeps on Ray


@pytest.fixture(scope="module")
def ray_local():
    ray = pytest.importorskip("ray")
    pytest.importorskip("matplotlib")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def _sweep_args(exp: Path, config: str, seeds: str, total: int = 200) -> list[str]:
    args = ["sweep", "--config", config, "--seeds", seeds, "--arms", "dreaming,baseline"]
    args += ["--exp-dir", str(exp), "--cpus-per-run", "1"]
    for o in [*TINY, f"train.total_steps={total}", "log.tensorboard=false"]:
        args += ["--set", o]
    return args


@pytest.mark.mujoco
def test_sweep_report_and_rerun(
    ray_local, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    exp = tmp_path / "exp"
    assert main(_sweep_args(exp, HALFCHEETAH, "0-1")) == 0
    manifest = json.loads((exp / "manifest.json").read_text())
    names = [r["name"] for r in manifest["runs"]]
    assert sorted(names) == sorted(
        f"halfcheetah__{a}__s{s}" for a in ("dreaming", "baseline") for s in (0, 1)
    )
    for key in ("command", "commit", "date", "configs", "seeds", "arms", "overrides", "machine"):
        assert key in manifest
    assert manifest["seeds"] == [0, 1]
    assert manifest["ray"]["cluster_resources"]["CPU"] == 2
    for r in manifest["runs"]:
        assert (r["status"], r["steps"], r["error"]) == ("done", 200, None)
        assert r["run_dir"] == f"runs/{r['name']}"
        assert (exp / r["run_dir"] / "summary.json").exists()
        assert (exp / r["log"]).exists()
    runs = {r["name"]: exp / r["run_dir"] for r in manifest["runs"]}
    assert "done 4/4" in capsys.readouterr().err

    def evals(name: str) -> dict[int, float]:
        lines = (runs[name] / "eval.jsonl").read_text().splitlines()
        return {e["step"]: e["return_mean"] for e in map(json.loads, lines)}

    data = {
        (a, s): evals(f"halfcheetah__{a}__s{s}") for a in ("dreaming", "baseline") for s in (0, 1)
    }
    # a threshold taken from the data: the dreaming mean curve's value at step 100
    mean_curve = {
        step: np.mean([data["dreaming", s][step] for s in (0, 1)]) for step in (0, 100, 200)
    }
    threshold = float(mean_curve[100])
    expected_step = next(step for step in (0, 100, 200) if mean_curve[step] >= threshold)

    out = tmp_path / "report"
    code = main(["report", str(exp), "--out", str(out), "--thresholds", f"halfcheetah={threshold}"])
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    (task,) = report["tasks"]
    assert task["final_step"] == 200
    for arm in ("dreaming", "baseline"):
        final = task["arms"][arm]["final"]
        assert final["mean"] == pytest.approx(np.mean([data[arm, s][200] for s in (0, 1)]))
        assert final["per_seed"] == [data[arm, s][200] for s in (0, 1)]
    reached = task["arms"]["dreaming"]["steps_to_threshold"][0]
    assert reached["step"] == expected_step
    per_seed = [
        next((k for k in (0, 100, 200) if data["dreaming", s][k] >= threshold), None)
        for s in (0, 1)
    ]
    assert reached["per_seed"] == per_seed
    assert task["variance_ratio"]["note"] == "fewer than 5 seeds: not meaningful"
    assert (out / "curves_halfcheetah.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert ET.parse(out / "curves_halfcheetah.svg").getroot().tag.endswith("svg")
    for name in ("report.md", "results.csv", "curves.csv", "runs.csv"):
        assert (out / name).stat().st_size > 0
    assert "curves_halfcheetah.png" in (out / "report.md").read_text()

    # the same command again: every run is skipped, nothing is written to the runs
    before = {n: (d / "metrics.jsonl").read_bytes() for n, d in runs.items()}
    assert main(_sweep_args(exp, HALFCHEETAH, "0-1")) == 0
    manifest = json.loads((exp / "manifest.json").read_text())
    assert [(r["status"], r["action"]) for r in manifest["runs"]] == [("done", "skipped")] * 4
    assert len(manifest["invocations"]) == 2
    assert {n: (d / "metrics.jsonl").read_bytes() for n, d in runs.items()} == before
    assert "4 already done, 0 to run" in capsys.readouterr().err


@pytest.mark.mujoco
def test_a_failing_run_is_reported_and_the_others_finish(
    ray_local, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # no exact termination function for InvertedDoublePendulum: the dreaming arm cannot start
    config = tmp_path / "idp.yaml"
    base = ROOT / "configs" / "default.yaml"
    config.write_text(f"base: {base}\nenv:\n  id: InvertedDoublePendulum-v5\n")
    exp = tmp_path / "exp"
    assert main(_sweep_args(exp, str(config), "0", total=100)) == 1
    runs = {r["name"]: r for r in json.loads((exp / "manifest.json").read_text())["runs"]}
    failed, done = runs["idp__dreaming__s0"], runs["idp__baseline__s0"]
    assert failed["status"] == "failed"
    assert failed["error"].startswith("TerminationError: no exact termination function")
    assert "Traceback" in failed["error"]
    assert (done["status"], done["steps"], done["error"]) == ("done", 100, None)
    err = capsys.readouterr().err
    assert "idp__dreaming__s0: FAILED: TerminationError" in err
    assert "failed: idp__dreaming__s0" in err
