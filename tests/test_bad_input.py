"""Bad input to every subcommand: exit code 2, a message naming the problem, no traceback and
nothing written, whatever the input. The cases are also the table in docs/reliability.md
(checked below; ``python -m tests.test_bad_input`` prints it)."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import yaml

from spiking_dreamer.cli import main
from spiking_dreamer.sweep import plan_runs

from .helpers import PENDULUM, ROOT, pendulum_run

DOC = ROOT / "docs" / "reliability.md"
START, END = "<!-- bad-inputs:start -->", "<!-- bad-inputs:end -->"

FIXTURES = {
    "ck": "an actor checkpoint (PopSAN, Pendulum-v1)",
    "run": "a finished run directory (with `checkpoints/state.pt`)",
    "nobest": "a run directory without `best.pt` (it ended in the random warm-up)",
    "stopped": "a run directory stopped before its first training-state save",
    "cfg": "a valid config file (Pendulum-v1)",
    "exp": "a finished sweep of `CFG`, seed 0, baseline (with `td3.batch_size: 16`)",
    "file": "a regular file",
    "nonempty": "a directory holding a file",
    "notutf8": "a config file with a `\\xff` byte",
    "badyaml": "a config file that is not YAML",
    "bigint": "a config file holding a 5,000-digit integer",
    "badrun": "a run directory whose `config.yaml` is not UTF-8",
    "badmanifest": "an experiment directory whose `manifest.json` is binary",
    "stdir": "a directory named `d.safetensors`",
    "gifdir": "a directory named `d.gif`",
}


@dataclass(frozen=True)
class Bad:
    """One bad input: the command line (``{name}`` stands for a fixture path), the exit code
    and a part of the message it must print."""

    argv: tuple[str, ...]
    message: str
    code: int = 2
    mujoco: bool = False
    """Needs MuJoCo (the ``mujoco`` marker)."""
    cpu_only: bool = False
    """Meaningful only where CUDA is not available."""


def bad(cmd: str, message: str, **kw: bool) -> Bad:
    return Bad(tuple(cmd.split(" ")), message, **kw)


CASES = [
    # ---- train
    bad("train --seed 4294967296", "argument --seed: must lie in [0, 4294967295]"),
    bad("train --seed -1", "argument --seed: must lie in [0, 4294967295]"),
    bad("train --total-steps 0", "argument --total-steps: must be >= 1"),
    bad("train --total-steps 1e3x", "argument --total-steps: expected an integer"),
    Bad(("train", "--run-dir", ""), "argument --run-dir: the path is empty"),
    bad("train --config missing.yaml", "config file not found"),
    bad("train --config {notutf8}", "not UTF-8 text (byte 0xff"),
    bad("train --config {badyaml}", "not valid YAML"),
    bad("train --config {bigint}", "not valid YAML: Exceeds the limit"),
    Bad(
        ("train", "--set", "td3.batch_size=[&a [1, 1], *a, *a]"),
        "YAML aliases (*a) are not supported in a config",
    ),
    bad("train --set td3.batch_sise=64", "did you mean 'td3.batch_size'"),
    bad("train --set td3.batch_size=0", "td3.batch_size: must be >= 1"),
    bad("train --set td3.batch_size=1e9", "is larger than train.replay_size (1000000)"),
    bad("train --set train.replay_size=10", "train.replay_size: must be >= 1,000"),
    bad(
        "train --config {cfg} --set train.replay_size=1e9 --set td3.batch_size=1e9",
        "td3.batch_size=1000000000: this run needs about",
    ),
    bad(
        "train --set env.kwargs.frame_skip=-3",
        "env.kwargs.frame_skip for HalfCheetah-v5: must be >= 1",
    ),
    bad(
        "train --set env.kwargs.frame_skip=2.5",
        "env.kwargs.frame_skip for HalfCheetah-v5: must be an integer",
    ),
    bad(
        "train --set env.kwargs.max_episode_steps=-1",
        "env.kwargs.max_episode_steps for HalfCheetah-v5: must be >= 1",
    ),
    bad("train --set env.kwargs.reset_noise_scale=-1", "fails when it runs", mujoco=True),
    bad(
        "train --set env.kwargs.bogus=1",
        "bad env.kwargs {{'bogus': 1}} for HalfCheetah-v5",
        mujoco=True,
    ),
    bad("train --set env.kwargs=3", "env.kwargs: expected a mapping"),
    bad(
        "train --config {cfg} --set actor.hidden_sizes=[16,200000,200000]",
        "actor.hidden_sizes=(16, 200000, 200000): this run needs about",
    ),
    Bad(
        ("train", "--set", "env.kwargs={{render_mode: human}}"),
        "env.kwargs.render_mode for HalfCheetah-v5: a run renders nothing",
    ),
    bad("train --env HalfCheeta-v5", "unknown environment id 'HalfCheeta-v5'; did you mean"),
    bad("train --env Ant-v4", "Ant-v4 is not run as v5"),
    bad("train --device gpu0", "argument --device: must be auto, cpu, cuda or cuda:N"),
    bad(
        "train --config {cfg} --device cuda",
        "'cuda' requested but CUDA is not available",
        cpu_only=True,
    ),
    bad("train --set train.seed=-5", "train.seed: must lie in [0, 4294967295]"),
    bad(
        "train --set train.eval_seed_offset=-20000",
        "train.eval_seed_offset: must lie in [0, 4294967295]",
    ),
    bad("train --set train.eval_seed_offset=1e20", "train.eval_seed_offset: must lie in"),
    bad("train --set train.threads=1e12", "train.threads: must lie in [0, 1024]"),
    bad("train --set train.eval_episodes=100000", "train.eval_episodes: must lie in [1, 1000]"),
    bad("train --set td3.gamma=1.5", "td3.gamma: must lie in [0, 1)"),
    bad("train --set td3.tau=.inf", "td3.tau: must be a finite number"),
    bad("train --set td3.batch_size=!!python/name:os.system", "cannot parse the value"),
    bad("train --set nokey", "expected section.key=value"),
    bad("train --config {cfg} --run-dir {file}", "exists and is not a directory"),
    bad("train --config {cfg} --run-dir {file}/sub", "is a file, not a directory"),
    bad("train --config {cfg} --run-dir /proc/run", "cannot create a file in /proc"),
    bad("train --config {cfg} --run-dir {run}", "continue it with --resume {run}"),
    bad("train --config {cfg} --run-dir {stopped}", "stopped before its first training-state save"),
    bad("train --config {cfg} --run-dir {nonempty}", "is not empty; choose another --run-dir"),
    bad("train --resume {run} --seed 1", "drop --seed (through make: make resume RUN={run})"),
    bad("train --resume {run} --config {cfg}", "drop --config"),
    bad("train --resume missing_run", "no run directory missing_run to resume"),
    bad("train --resume {stopped}", "has no saved training state"),
    bad("train --resume {nonempty}", "is not a run directory"),
    bad("train --fork {run}", "--fork PARENT needs --run-dir"),
    bad("train --fork-step 5", "--fork-step needs --fork"),
    bad(
        "train --fork {run} --run-dir fork --set actor.hidden_sizes=[8]",
        "a fork cannot change actor.hidden_sizes",
    ),
    bad(
        "train --fork {run} --run-dir fork --set td3.batch_size=1e9",
        "is larger than train.replay_size",
    ),
    bad("train --fork {run} --run-dir {nonempty}", "is not empty"),
    bad("train --fork {run} --run-dir {run}/tb/fork", "lies inside the parent run"),
    # ---- eval
    bad(
        "eval --checkpoint {ck} --episodes -1",
        "spiking-dreamer eval: error: argument --episodes: must lie in [0, 10000]",
    ),
    bad(
        "eval --checkpoint {ck} --episodes 100000000", "argument --episodes: must lie in [0, 10000]"
    ),
    bad(
        "eval --checkpoint {ck} --episodes 0",
        "--episodes 0 (no evaluation) needs --video, --raster or --energy",
    ),
    bad("eval --checkpoint {ck} --seed -1", "argument --seed: must lie in [0, 4294967295]"),
    bad(
        "eval --checkpoint {ck} --device gpu0",
        "argument --device: must be auto, cpu, cuda or cuda:N",
    ),
    bad(
        "eval --checkpoint {ck} --device cuda",
        "--device cuda: CUDA is not available here",
        cpu_only=True,
    ),
    bad("eval --checkpoint missing.pt", "checkpoint not found: missing.pt"),
    Bad(("eval", "--checkpoint", ""), "argument --checkpoint: the path is empty"),
    bad(
        "eval --checkpoint {nobest}/checkpoints/best.pt",
        "best.pt is written at the first evaluation after train.start_steps",
    ),
    bad("eval --checkpoint {run}/checkpoints/state.pt", "not an actor checkpoint"),
    bad("eval --checkpoint {file}", "unreadable or truncated checkpoint"),
    bad("eval --checkpoint {nonempty}", "holds no actor checkpoint"),
    bad(
        "eval --checkpoint {ck} --env HalfCheetah-v5",
        "was trained on Pendulum-v1 (obs 3, act 1)",
        mujoco=True,
    ),
    bad("eval --checkpoint {ck} --env NoSuchEnv-v0", "unknown environment id 'NoSuchEnv-v0'"),
    bad("eval --checkpoint {ck} --video x.avi", "the file must end in .gif or .mp4"),
    bad("eval --checkpoint {ck} --video {file}/x.gif", "is a file, not a directory"),
    bad("eval --checkpoint {ck} --video /proc/x.gif", "cannot create a file in /proc"),
    bad("eval --checkpoint {ck} --video {gifdir}", "is a directory; give a file name"),
    bad("eval --checkpoint {ck} --video x.gif --fps -5", "argument --fps: must lie in (0, 240]"),
    bad("eval --checkpoint {ck} --video x.gif --fps 0", "argument --fps: must lie in (0, 240]"),
    bad("eval --checkpoint {ck} --video x.gif --fps nan", "argument --fps: must lie in (0, 240]"),
    bad(
        "eval --checkpoint {ck} --video x.gif --fps 200",
        "a GIF shows at most 100 frames per second",
    ),
    bad("eval --checkpoint {ck} --video x.gif --video-size 64", "expected WIDTHxHEIGHT"),
    bad(
        "eval --checkpoint {ck} --video x.gif --video-size 8x8",
        "width and height must lie in [16, 4096]",
    ),
    bad("eval --checkpoint {ck} --video-steps 0", "argument --video-steps: must be >= 1"),
    bad("eval --checkpoint {ck} --raster x.jpg", "the file must end in .png, .svg or .pdf"),
    bad("eval --checkpoint {ck} --raster /proc/r.png", "cannot create a file in /proc"),
    bad("eval --checkpoint {ck} --raster {file}/r.png", "is a file, not a directory"),
    # ---- export
    bad(
        "export --checkpoint {ck} --format nir --out a.safetensors",
        "the suffix does not match --format nir; name the file a.nir",
    ),
    bad(
        "export --checkpoint {ck} --format safetensors --out {stdir}",
        "is a directory; give a file name",
    ),
    bad("export --checkpoint {ck} --format nir --out /proc/x.nir", "cannot create a file in /proc"),
    bad(
        "export --checkpoint {ck} --format safetensors --out {file}/x.safetensors",
        "is a file, not a directory",
    ),
    bad("export --checkpoint missing.pt --format nir --out a.nir", "checkpoint not found"),
    bad(
        "export --checkpoint {ck} --format onnx --out a.onnx",
        "argument --format: invalid choice: 'onnx'",
    ),
    # ---- bench
    bad("bench --threads 0", "argument --threads: must lie in [1, 1024]"),
    bad("bench --steps 0", "argument --steps: must be >= 1"),
    bad("bench --steps -1", "argument --steps: must be >= 1"),
    bad("bench --warmup 0", "argument --warmup: must be >= 1"),
    bad("bench --repeats 0", "argument --repeats: must be >= 1"),
    bad("bench --set train.threads=4", "bench sets train.threads itself: use --threads"),
    bad("bench --out /proc/bench.json", "cannot create a file in /proc"),
    bad("bench --config {cfg} --out {cfg}", "is also an input"),
    bad("bench --device gpu0", "argument --device: must be auto, cpu, cuda or cuda:N"),
    bad(
        "bench --config {cfg} --set train.replay_size=1e9 --set td3.batch_size=1e9",
        "this run needs about",
    ),
    # ---- sweep
    bad("sweep --config {cfg} --seeds 4-2", "range '4-2' runs backwards"),
    bad("sweep --config {cfg} --seeds 99999999999", "seeds must lie in [0, 4294967295]"),
    bad("sweep --config {cfg} --seeds 0-100000", "at most 1,000 seeds"),
    bad("sweep --config {cfg} --arms dream", "each arm must be one of dreaming, baseline"),
    bad("sweep --config {cfg} --cpus-per-run 0", "argument --cpus-per-run: must lie in [1, 1024]"),
    bad("sweep --config {cfg} --cpus-per-run 100000", "argument --cpus-per-run: must lie in"),
    bad("sweep --config {cfg} --gpus-per-run -1", "argument --gpus-per-run: must lie in [0, 64]"),
    bad("sweep --config {cfg} --node-wait -5", "argument --node-wait: must lie in [0, 604800]"),
    bad(
        "sweep --config {cfg} --arms baseline --cpus-per-run 1000",
        "--cpus-per-run 1000 asks for more than there is",
    ),
    bad(
        "sweep --config {cfg} --arms baseline --gpus-per-run 64",
        "--gpus-per-run 64 asks for more than there is",
    ),
    bad("sweep --config {cfg} --exp-dir {file}", "is a file, not a directory"),
    bad(
        "sweep --config {cfg} --arms baseline --address 127.0.0.1:1",
        "--address 127.0.0.1:1: no Ray cluster answers there",
    ),
    bad("sweep --config {notutf8}", "not UTF-8 text"),
    bad(
        "sweep --config {cfg} --seeds 0 --arms baseline --exp-dir {exp} --set td3.batch_size=64",
        "cfg__baseline__s0: td3.batch_size: 16 vs 64",
    ),
    # ---- report
    bad("report missing_dir", "no experiment directory missing_dir"),
    bad("report {nonempty}", "no runs found"),
    bad("report {run} --reps 0", "argument --reps: must lie in [1, 100000]"),
    bad("report {run} --reps 1000000000", "argument --reps: must lie in [1, 100000]"),
    bad("report {run} --seed -1", "argument --seed: must lie in [0, 4294967295]"),
    bad("report {run} --budgets many", "--budgets 'many': expected steps like 100000,300k,1M"),
    bad("report {run} --budgets inf", "--budgets 'inf': expected steps like"),
    bad("report {run} --budgets -5", "--budgets '-5': steps must be >= 1"),
    bad("report {run} --thresholds halfcheetah=nan", "thresholds must be finite numbers"),
    bad("report {run} --thresholds halfcheetah", "expected ENV=X,Y"),
    bad("report {run} --out {file}", "is a file, not a directory"),
    bad("report {run} --out /proc/self", "report output: cannot create a file in /proc/self"),
    bad("report {badrun}", "config.yaml: cannot read it: UnicodeDecodeError"),
    bad("report {badmanifest}", "manifest.json: not valid JSON"),
    # ---- the command line itself
    bad("nosuch", "argument command: invalid choice: 'nosuch'"),
    bad("train --bogus", "unrecognized arguments: --bogus"),
]


def _fixtures(root: Path) -> dict[str, str]:
    """Create every fixture in ``root``; returns their paths by name."""
    run = pendulum_run(root / "run")
    pendulum_run(root / "nobest", "train.total_steps=25")
    (root / "stopped").mkdir()
    shutil.copy(run / "config.yaml", root / "stopped" / "config.yaml")
    cfg = root / "cfg.yaml"
    data: dict = {}
    for text in PENDULUM:
        key, value = text.split("=", 1)
        section, name = key.split(".")
        data.setdefault(section, {})[name] = yaml.safe_load(value)
    cfg.write_text(yaml.safe_dump(data))
    exp = root / "exp"
    (spec,) = plan_runs([str(cfg)], [0], ["baseline"], [], exp)
    spec.run_dir.mkdir(parents=True)
    (spec.run_dir / "config.yaml").write_text(yaml.safe_dump(spec.cfg))
    (spec.run_dir / "summary.json").write_text(json.dumps({"steps": spec.total_steps}))
    (exp / "manifest.json").write_text(json.dumps({"runs": []}))
    (root / "file").write_text("a regular file\n")
    (root / "nonempty").mkdir()
    (root / "nonempty" / "notes.txt").write_text("x\n")
    (root / "notutf8.yaml").write_bytes(b"train:\n  seed: 1 \xff\n")
    (root / "badyaml.yaml").write_text("td3: [unclosed\n")
    (root / "bigint.yaml").write_text("td3:\n  batch_size: " + "1" * 5000 + "\n")
    (root / "badrun").mkdir()
    (root / "badrun" / "config.yaml").write_bytes(b"env: \xff\xfe\n")
    (root / "badrun" / "eval.jsonl").write_text("")
    (root / "badmanifest").mkdir()
    (root / "badmanifest" / "manifest.json").write_bytes(bytes(range(256)))
    (root / "d.safetensors").mkdir()
    (root / "d.gif").mkdir()
    paths = {name: str(root / name) for name in FIXTURES}
    paths.update(
        ck=str(run / "checkpoints" / "last.pt"),
        cfg=str(cfg),
        notutf8=str(root / "notutf8.yaml"),
        badyaml=str(root / "badyaml.yaml"),
        bigint=str(root / "bigint.yaml"),
        stdir=str(root / "d.safetensors"),
        gifdir=str(root / "d.gif"),
    )
    return paths


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return _fixtures(tmp_path_factory.mktemp("bad_input"))


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every file and directory under ``root`` with its size and modification time."""
    out = {}
    for p in sorted(root.rglob("*")):
        st = p.stat()
        out[str(p.relative_to(root))] = (st.st_size, st.st_mtime_ns) if p.is_file() else (0, 0)
    return out


def _params() -> list:
    out = []
    for case in CASES:
        marks = [pytest.mark.mujoco] if case.mujoco else []
        if case.cpu_only:
            marks.append(pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is here"))
        out.append(pytest.param(case, id=" ".join(case.argv)[:60], marks=marks))
    return out


@pytest.mark.parametrize("case", _params())
def test_bad_input_exits_2_naming_the_problem_and_writes_nothing(
    case: Bad,
    fixtures: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)  # relative outputs and default run directories land here
    root = Path(fixtures["run"]).parent
    before = _snapshot(root)
    argv = [a.format(**fixtures) for a in case.argv]
    try:
        code = main(argv)
    except SystemExit as e:  # command-line syntax: argparse exits
        code = e.code
    out, err = capsys.readouterr()
    assert code == case.code, err
    assert case.message.format(**fixtures) in err
    assert "Traceback" not in out + err
    assert _snapshot(root) == before, "a fixture changed"
    assert list(tmp_path.iterdir()) == [], "something was written"


# ----------------------------------------------------------------------------- short, stopped runs


def _strict_json(text: str) -> dict:
    def refuse(name: str) -> None:
        raise ValueError(f"{name} is not JSON")

    return json.loads(text, parse_constant=refuse)


def test_a_run_shorter_than_the_warm_up_says_why_it_has_no_best_pt(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """It wrote ``"best_return": -Infinity`` and ended with "best -inf"."""
    run = tmp_path / "run"
    argv = ["train", "--run-dir", str(run), *[a for o in PENDULUM for a in ("--set", o)]]
    assert main([*argv, "--total-steps", "25"]) == 0  # train.start_steps is 50
    out = capsys.readouterr().out.splitlines()
    summary = _strict_json((run / "summary.json").read_text())
    assert summary["best_return"] is None
    assert summary["steps"] == 25
    assert not (run / "checkpoints" / "best.pt").exists()
    assert "no best yet" in out[-3]
    assert out[-2].startswith("no checkpoints/best.pt: the run ended before train.start_steps (50)")
    assert out[-1] == (
        f"next: spiking-dreamer eval --checkpoint {run}; spiking-dreamer report {run}"
    )  # log.tensorboard is off here; with it, tensorboard --logdir RUN/tb follows
    best = run / "checkpoints" / "best.pt"
    assert main(["eval", "--checkpoint", str(best)]) == 2
    err = capsys.readouterr().err
    assert "best.pt is written at the first evaluation after train.start_steps" in err
    assert f"use {run / 'checkpoints' / 'last.pt'}" in err


def test_the_last_line_of_a_run_names_the_next_steps(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    argv = ["train", "--run-dir", str(run), *[a for o in PENDULUM for a in ("--set", o)]]
    assert main([*argv, "--total-steps", "50", "--set", "log.tensorboard=true"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-2].startswith("done: 50 steps, final eval return ")
    assert out[-1] == (
        f"next: spiking-dreamer eval --checkpoint {run}; spiking-dreamer report {run}; "
        f"tensorboard --logdir {run / 'tb'}"
    )
    assert _strict_json((run / "summary.json").read_text())["best_return"] is not None


def test_a_run_stopped_at_once_before_its_first_save_says_how_to_start_over(
    tmp_path: Path,
) -> None:
    """A double Ctrl-C before the first state save left a directory that could be neither
    resumed nor reused, and neither message said why."""
    from spiking_dreamer.cli import _interrupted
    from spiking_dreamer.config_loading import load_config
    from spiking_dreamer.errors import RunDirError
    from spiking_dreamer.training.trainer import Trainer

    run = tmp_path / "run"
    trainer = Trainer(load_config(None, PENDULUM), run)
    trainer.begin()  # then stopped at once: no training state yet
    trainer.close()
    assert "cannot be resumed; to start over, delete it (rm -r" in _interrupted(run)
    with pytest.raises(RunDirError, match="has no saved training state"):
        Trainer.resume(run)
    with pytest.raises(RunDirError, match="stopped before its first training-state save"):
        Trainer(load_config(None, PENDULUM), run)
    assert f"continue with --resume {tmp_path}" not in _interrupted(run)
    saved = pendulum_run(tmp_path / "saved")
    assert f"continue with --resume {saved}" in _interrupted(saved)


# ----------------------------------------------------------------------------- make


def test_make_resume_continues_a_run_without_the_flags_of_make_train(tmp_path: Path) -> None:
    """``make train ARGS="--resume RUN"`` exits 2 (make adds --config and --seed);
    ``make resume RUN=...`` runs ``train --resume RUN`` alone."""
    import subprocess

    if shutil.which("make") is None:
        pytest.skip("no make here")
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / ".installed").touch()  # newer than pyproject.toml: no install step
    cmd = ["make", "-n", "--no-print-directory", "-C", str(ROOT), f"VENV={venv}", "resume"]
    done = subprocess.run(
        [*cmd, "RUN=runs/x", "ARGS=--total-steps 9"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == (
        f"{venv}/bin/spiking-dreamer train --resume runs/x --total-steps 9"
    )
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 2
    assert "make resume needs RUN=<run directory>" in done.stderr


def test_make_train_runs_the_100k_setting_and_args_override_its_length(tmp_path: Path) -> None:
    """``make train``: the best measured HalfCheetah setting for 100K env steps; a
    ``--total-steps`` in ``ARGS`` comes last, so it wins (argparse keeps the last value)."""
    import subprocess

    from spiking_dreamer.cli import build_parser

    if shutil.which("make") is None:
        pytest.skip("no make here")
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / ".installed").touch()
    cmd = ["make", "-n", "--no-print-directory", "-C", str(ROOT), f"VENV={venv}", "train"]
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    line = done.stdout.strip().splitlines()[-1]
    assert line == (
        f"{venv}/bin/spiking-dreamer train --config configs/halfcheetah_mbpo_sac_mlp.yaml"
        " --seed 0 --total-steps 100000"
    )
    done = subprocess.run(
        [*cmd, "ARGS=--total-steps 15000 --no-dreaming"], capture_output=True, text=True
    )
    argv = done.stdout.strip().splitlines()[-1].split()[1:]
    args = build_parser().parse_args(argv)
    assert args.total_steps == 15000
    assert args.no_dreaming


# ----------------------------------------------------------------------------- the docs table


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def table() -> list[str]:
    """The Markdown table of :data:`CASES` for docs/reliability.md."""
    shown = {name: name.upper() for name in FIXTURES}
    lines = ["| command (`spiking-dreamer ...`) | exit | message (excerpt) |", "|---|---|---|"]
    for case in CASES:
        argv = " ".join(repr("") if a == "" else a for a in case.argv)
        lines.append(
            f"| `{_cell(argv.format(**shown))}` | {case.code} | "
            f"{_cell(case.message.format(**shown))} |"
        )
    return lines


def test_the_docs_table_lists_exactly_these_cases() -> None:
    text = DOC.read_text()
    assert START in text, f"{DOC.name} lacks the bad-inputs table"
    assert END in text, f"{DOC.name} lacks the bad-inputs table's end"
    rows = text.split(START, 1)[1].split(END, 1)[0].strip().splitlines()
    rows = [r for r in rows if r.startswith("|")]
    assert rows == table(), "regenerate the table: python -m tests.test_bad_input"
    assert len(CASES) >= 60
    for name, meaning in FIXTURES.items():
        assert f"`{name.upper()}`: {meaning}" in text


if __name__ == "__main__":
    print("\n".join(f"- `{n.upper()}`: {m}" for n, m in FIXTURES.items()))
    print()
    print("\n".join(table()))
