"""End-to-end training on real MuJoCo: CLI, run directory, checkpoints, masks, determinism."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from spiking_dreamer.cli import main
from spiking_dreamer.config_loading import load_config
from spiking_dreamer.training.checkpoint import load_actor
from spiking_dreamer.training.trainer import RunDirError, Trainer, TrainingDivergedError

from .helpers import ROOT, TINY, without_wandb_key


def _tiny_args(*extra: str) -> list[str]:
    out: list[str] = []
    for o in TINY:
        out += ["--set", o]
    return [*out, *extra]


def _trainer(tmp_path: Path, name: str, *overrides: str) -> Trainer:
    cfg = load_config(ROOT / "configs" / "halfcheetah.yaml", [*TINY, *overrides])
    return Trainer(cfg, tmp_path / name)


pytestmark = pytest.mark.mujoco


def test_train_writes_run_dir_and_eval_reads_the_checkpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    code = main(
        [
            *("train", "--config", str(ROOT / "configs/halfcheetah.yaml")),
            *("--total-steps", "300", "--run-dir", str(run), "--no-dreaming", "--seed", "3"),
            *_tiny_args(),
        ]
    )
    assert code == 0
    assert load_config(run / "config.yaml").train.seed == 3  # resolved config is reloadable
    evals = [json.loads(x) for x in (run / "eval.jsonl").read_text().splitlines()]
    assert [e["step"] for e in evals] == [0, 100, 200, 300]
    assert all(len(e["returns"]) == 2 for e in evals)
    metrics = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert any("train/critic_loss" in m for m in metrics)
    assert any("train/episode_return" in m for m in metrics)
    rates = [m for m in metrics if "actor/firing_rate/hidden1" in m]
    assert [m["step"] for m in rates] == [100, 200, 300]  # logged with each evaluation
    assert all(0 <= m["actor/firing_rate/output"] <= 1 for m in rates)
    assert list((run / "tb").glob("events.out.tfevents.*"))
    for name in ("best.pt", "last.pt"):
        data = torch.load(run / "checkpoints" / name, weights_only=True)
        assert data["env"]["id"] == "HalfCheetah-v5"
        assert "obs_normalizer.mean" in data["actor"]
        assert data["versions"]["torch"] == torch.__version__
    assert json.loads((run / "summary.json").read_text())["steps"] == 300
    capsys.readouterr()
    assert main(["eval", "--checkpoint", str(run / "checkpoints/last.pt"), "--episodes", "2"]) == 0
    out = capsys.readouterr().out
    # by default the run's own evaluation seeds: the step-300 evaluation, repeated
    assert f"HalfCheetah-v5: return {evals[-1]['return_mean']:.1f} ±" in out


def test_truncation_is_stored_as_non_terminal(tmp_path: Path) -> None:
    trainer = _trainer(tmp_path, "hc", "train.total_steps=120", "train.eval_every=1000")
    trainer.run()
    assert len(trainer.buffer) == 120
    assert trainer.buffer.terminated[:120].sum() == 0  # two time-limit truncations, no terminal


def test_termination_is_stored_for_terminating_envs(tmp_path: Path) -> None:
    cfg = load_config(
        ROOT / "configs" / "hopper.yaml",
        [*TINY, "env.kwargs={}", "train.total_steps=300", "train.start_steps=300"],
    )
    trainer = Trainer(cfg, tmp_path / "hopper")
    trainer.run()
    term = trainer.buffer.terminated[: len(trainer.buffer)]
    assert term.sum() >= 1  # random actions topple the hopper
    # a terminal transition is the last of its episode: the next one starts from a fresh reset
    idx = torch.nonzero(term).flatten()
    idx = idx[idx + 1 < len(trainer.buffer)]
    assert not torch.allclose(trainer.buffer.next_obs[idx], trainer.buffer.obs[idx + 1])


def test_dreaming_run_trains_the_model_and_mixes_dreams(tmp_path: Path) -> None:
    trainer = _trainer(
        tmp_path, "dream", "train.total_steps=300", "dreaming.real_ratio=0.5", "dreaming.every=75"
    )
    assert trainer.dreaming is not None
    trainer.run()
    engine = trainer.dreaming
    assert engine.model_trainer.version == 300 // 50 - 1 + 1  # phases at 50, 100, ..., 300
    assert len(engine.buffer) > 0
    assert engine.active
    assert torch.isfinite(engine.buffer.reward[: len(engine.buffer)]).all()
    metrics = [
        json.loads(x) for x in (tmp_path / "dream" / "metrics.jsonl").read_text().splitlines()
    ]
    dream = [m for m in metrics if "dream/acceptance" in m]
    assert [m["step"] for m in dream] == [150, 225, 300]
    for key in ("dream/threshold", "dream/uncertainty_mean", "dream/buffer_size"):
        assert key in dream[-1]
    model = {m["step"]: m for m in metrics if "model/holdout_mse" in m}
    assert sorted(model) == list(range(50, 301, 50))
    assert "model/firing_rate/block0" in model[300]
    # every dream phase logs the latest hold-out loss and the model's firing while dreaming,
    # also at step 225, where no training phase ran
    for d in dream:
        latest = model[d["step"] // 50 * 50]
        assert d["dream/model_holdout_mse"] == latest["model/holdout_mse"]
        for block in (0, 1):
            assert 0.0 <= d[f"dream/firing_rate/block{block}"] <= 1.0


def test_no_dreaming_builds_no_world_model(tmp_path: Path) -> None:
    trainer = _trainer(tmp_path, "base", "world_model.use=none")
    assert trainer.dreaming is None


def test_dreaming_on_a_terminating_env(tmp_path: Path) -> None:
    cfg = load_config(
        ROOT / "configs" / "hopper.yaml",
        [*TINY, "env.kwargs={}", "train.total_steps=200", "train.start_steps=200"],
    )
    trainer = Trainer(cfg, tmp_path / "hopper")
    trainer.run()
    assert trainer.dreaming is not None
    assert trainer.dreaming.model_trainer.version >= 1


def test_unknown_termination_is_refused_unless_opted_in(tmp_path: Path) -> None:
    from spiking_dreamer.termination import TerminationError

    args = ["env.id=Pendulum-v1", "env.kwargs={}"]
    with pytest.raises(TerminationError, match="assume_never_terminates"):
        _trainer(tmp_path, "p1", *args)
    t = _trainer(tmp_path, "p2", *args, "world_model.assume_never_terminates=true")
    assert t.dreaming is not None


def test_same_seed_gives_identical_first_updates(tmp_path: Path) -> None:
    def critic_after(name: str, seed: int) -> list[torch.Tensor]:
        t = _trainer(tmp_path, name, "train.total_steps=160", f"train.seed={seed}")
        t.run()
        return [p.detach().clone() for p in t.critic.parameters()] + [
            p.detach().clone() for p in t.actor.parameters()
        ]

    a, b, c = critic_after("a", 1), critic_after("b", 1), critic_after("c", 2)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert not all(torch.equal(x, y) for x, y in zip(a, c, strict=True))


@pytest.mark.parametrize("encoding", ["deterministic", "bernoulli"])
def test_dreaming_arm_equals_the_baseline_until_its_first_dream_phase(
    tmp_path: Path, encoding: str
) -> None:
    """The world model trains on its own RNG streams, so the arms of a comparison are paired:
    identical policies, buffers and evaluations until dreams first enter a TD3 batch. A
    Bernoulli encoder (Hopper, Walker2d) draws from the global generator when acting and in
    TD3 updates, so building the world model must not advance that generator."""
    steps = ["train.total_steps=300", "world_model.train_every=50", f"actor.encoding={encoding}"]
    runs = {}
    for name, arm in (("base", "world_model.use=none"), ("dream", "dreaming.start_step=10000")):
        t = _trainer(tmp_path, name, *steps, arm)
        t.run()
        evals = (tmp_path / name / "eval.jsonl").read_text().splitlines()
        runs[name] = (t, [json.loads(e)["returns"] for e in evals])
    (base, base_evals), (dream, dream_evals) = runs["base"], runs["dream"]
    assert dream.dreaming is not None
    assert dream.dreaming.model_trainer.version > 0  # the world model did train
    assert base_evals == dream_evals
    for net in ("actor", "critic"):
        pairs = zip(getattr(base, net).parameters(), getattr(dream, net).parameters(), strict=True)
        assert all(torch.equal(x, y) for x, y in pairs), net


def test_a_non_finite_env_transition_stops_the_run_unstored(tmp_path: Path) -> None:
    t = _trainer(tmp_path, "run", "train.total_steps=300")
    env_step = t.env.step

    def step(action: object) -> tuple:
        obs, reward, terminated, truncated, info = env_step(action)
        if t.step == 119:  # the 120th transition
            obs = obs.copy()
            obs[3] = float("nan")
        return obs, reward, terminated, truncated, info

    t.env.step = step  # type: ignore[method-assign]
    with pytest.raises(TrainingDivergedError, match="non-finite transition at env step 120"):
        t.run()
    assert len(t.buffer) == t.step == 119
    assert torch.isfinite(t.buffer.next_obs[: len(t.buffer)]).all()


def test_existing_run_dir_is_never_overwritten(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text("precious\n")
    with pytest.raises(RunDirError, match="not empty"):
        _trainer(tmp_path, "run")
    assert (run / "metrics.jsonl").read_text() == "precious\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "td3.batch_sise=3"], "did you mean 'td3.batch_size'"),
        (["--env", "HalfCheeta-v5"], "unknown environment id"),
        (["--set", "train.device=tpu"], "train.device"),
    ],
)
def test_bad_input_exits_2_before_creating_anything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    run = tmp_path / "run"
    code = main(
        ["train", "--config", str(ROOT / "configs/halfcheetah.yaml"), *args, "--run-dir", str(run)]
    )
    assert code == 2
    assert message in capsys.readouterr().err
    assert not run.exists()


def test_eval_refuses_a_mismatched_env(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    t = _trainer(tmp_path, "run", "train.total_steps=1")
    t.run()
    code = main(
        ["eval", "--checkpoint", str(tmp_path / "run/checkpoints/last.pt"), "--env", "Hopper-v5"]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "HalfCheetah-v5 (obs 17, act 6)" in err
    assert "Hopper-v5 has obs 11, act 3" in err


def test_wandb_offline_mirrors_metrics(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_SILENT", "true")
    t = _trainer(
        tmp_path, "run", "train.total_steps=60", "log.wandb=true", "log.wandb_mode=offline"
    )
    t.run()
    assert list((tmp_path / "run" / "wandb").glob("offline-run-*"))


def test_wandb_online_without_an_api_key_is_refused_before_the_run_exists(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    without_wandb_key(monkeypatch, tmp_path)
    run = tmp_path / "run"
    argv = ["train", "--config", str(ROOT / "configs/halfcheetah.yaml"), "--run-dir", str(run)]
    assert main([*argv, "--wandb"]) == 2
    assert "W&B has no API key here" in capsys.readouterr().err
    assert not run.exists()


@pytest.mark.parametrize("script", ["train.py", "eval_policy.py"])
def test_seed_compatible_scripts(script: str) -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / script), "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "--checkpoint" in out.stdout or "--config" in out.stdout


def test_mlp_reference_actor_trains_and_evaluates(tmp_path: Path) -> None:
    t = _trainer(tmp_path, "mlp", "actor.kind=mlp", "world_model.use=none", "train.total_steps=120")
    t.run()
    from spiking_dreamer.agent import MLPActor
    from spiking_dreamer.training.checkpoint import load_actor

    actor, data = load_actor(tmp_path / "mlp" / "checkpoints" / "last.pt")
    assert isinstance(actor, MLPActor)
    assert data["config"]["actor"]["kind"] == "mlp"


def test_a_run_ending_mid_episode_saves_a_fresh_episode(tmp_path: Path) -> None:
    from spiking_dreamer.training.checkpoint import load_state_file

    # 50-step episodes: step 120 is 20 steps into the third; a resume to more steps resets the
    # env, so it must not add its first episode to these 20 steps' counters
    trainer = _trainer(tmp_path, "run", "train.total_steps=120", "world_model.use=none")
    trainer.run()
    counters = load_state_file(tmp_path / "run" / "checkpoints" / "state.pt")[0]["counters"]
    assert counters["step"] == 120
    assert (counters["episode_return"], counters["episode_length"]) == (0.0, 0)


def test_bench_measures_every_arm_and_writes_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from spiking_dreamer.bench import BENCH_KEYS

    out = tmp_path / "bench.json"
    assert main(["bench", "--set", "train.threads=4"]) == 2  # set by --threads, not --set
    own = [o for o in TINY if "log_every" not in o and o.split("=")[0] not in BENCH_KEYS]
    tiny = [a for o in own for a in ("--set", o)]
    tiny += ["--set", "world_model.train_every=20", "--set", "dreaming.every=20"]
    code = main(
        ["bench", "--warmup", "120", "--steps", "60", "--repeats", "3", "--out", str(out), *tiny]
    )
    assert code == 0
    err = capsys.readouterr().err.splitlines()
    timed = [line for line in err if line.startswith("bench: ") and "env steps/s" in line]
    assert [line.split(":")[1].strip() for line in timed] == ["mlp", "baseline", "dreaming"]
    assert err.index("bench: timing mlp ...") < err.index(timed[0])  # printed as it goes
    result = json.loads(out.read_text())
    assert set(result["env_steps_per_s"]) == {"mlp", "baseline", "dreaming"}
    assert all(v > 0 for v in result["env_steps_per_s"].values())
    parts = result["parts_ms"]
    assert {"action_batch1_ms", "critic_update_ms", "actor_update_ms"} <= set(parts["baseline"])
    assert {"model_train_step_ms", "dream_phase_ms"} <= set(parts["dreaming"])
    # every start is stepped once, and at most once per step of the horizon
    assert 1.0 <= parts["dreaming"]["dream_imagined_per_start"] <= 2.0  # TINY: horizon 2
    assert result["threads"] == 1


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_dreaming_run_on_cuda_keeps_everything_on_the_device(tmp_path: Path) -> None:
    trainer = _trainer(tmp_path, "cuda", "train.total_steps=300", "train.device=cuda")
    trainer.run()
    engine = trainer.dreaming
    assert engine is not None
    assert engine.active
    tensors = {
        "replay": trainer.buffer.obs,
        "dreams": engine.buffer.obs,
        "actor": next(trainer.actor.parameters()),
        "critic": next(trainer.critic.parameters()),
        "model": next(engine.model.parameters()),
        "model normaliser": engine.model.input_normalizer.mean,
        "obs normaliser": trainer.actor.obs_normalizer.mean,
    }
    for name, t in tensors.items():
        assert t.device.type == "cuda", name
    n = len(engine.buffer)
    assert torch.isfinite(engine.buffer.reward[:n]).all()
    actor, _ = load_actor(tmp_path / "cuda" / "checkpoints" / "last.pt", "cpu")
    assert next(actor.parameters()).device.type == "cpu"


def test_the_step_0_actor_never_becomes_best_pt(tmp_path: Path) -> None:
    """Even without a random warm-up (``train.start_steps=0``) the untrained actor of step 0
    is not the best: best.pt is first written at the next evaluation."""
    run = tmp_path / "run"
    t = _trainer(
        tmp_path, "run", "train.start_steps=0", "train.total_steps=20", "world_model.use=none"
    )
    t.begin()
    assert (run / "checkpoints" / "last.pt").is_file()
    assert not (run / "checkpoints" / "best.pt").exists()
    t.close()
