"""Command-line interface: ``spiking-dreamer train | eval | export | bench | sweep | report``."""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from spiking_dreamer import __version__
from spiking_dreamer.arguments import (
    device_name,
    int_in,
    nonempty_path,
    number_in,
    positive_int,
    seed_int,
)
from spiking_dreamer.config import MAX_SEED, MAX_THREADS
from spiking_dreamer.config_loading import load_config
from spiking_dreamer.errors import (
    EXIT_BUG,
    REPORT_BUG,
    CheckpointError,
    ConfigError,
    EnvError,
    OutputPathError,
    TrainingDivergedError,
    UserError,
)
from spiking_dreamer.files import check_output_file
from spiking_dreamer.training.stopping import say

if TYPE_CHECKING:
    import torch

EXIT_STOPPED = 75
"""``train`` stopped by SIGINT/SIGTERM with its training state saved: continue with --resume."""
EXIT_OS_ERROR = 74
"""The operating system refused something during the work (a full disk, a file gone)."""
MAX_EPISODES = 10_000
"""The most ``eval --episodes`` (they run in chunks, so memory does not grow with them)."""
MAX_FPS = 240.0
"""The highest ``eval --fps``; a GIF shows at most 100 (its frame delays are in 1/100 s)."""
MAX_REPS = 100_000
"""The most ``report --reps`` (bootstrap resamples)."""


def _train_overrides(args: argparse.Namespace) -> list[str]:
    """The common flags, as ``--set`` overrides applied after the user's own."""
    flags = {
        "train.seed": args.seed,
        "env.id": args.env,
        "train.total_steps": args.total_steps,
        "train.device": args.device,
    }
    out = [f"{k}={v}" for k, v in flags.items() if v is not None]
    if args.no_dreaming:
        out.append("world_model.use=none")
    if args.wandb:
        out.append("log.wandb=true")
    if args.no_progress:
        out.append("log.progress=false")
    return out


def _resume_extras(args: argparse.Namespace) -> list[str]:
    """The flags given with --resume that a resume does not take."""
    given = {
        "--config": args.config,
        "--seed": args.seed,
        "--env": args.env,
        "--run-dir": args.run_dir,
        "--device": args.device,
        "--fork-step": args.fork_step,
    }
    out = [flag for flag, value in given.items() if value is not None]
    if args.no_dreaming:
        out.append("--no-dreaming")
    if args.set:
        out.append("--set")
    return out


def cmd_train(args: argparse.Namespace) -> int:
    from spiking_dreamer.training.run_dir import check_new_run, default_run_dir
    from spiking_dreamer.training.trainer import Trainer

    if args.fork_step is not None and not args.fork:
        raise ConfigError("--fork-step needs --fork")
    if args.fork:
        if args.resume or args.config or not args.run_dir:
            raise ConfigError("--fork PARENT needs --run-dir and takes no --config or --resume")
        if args.no_dreaming or args.seed is not None or args.env:
            raise ConfigError("a fork keeps the parent's env, seed and dreaming switch")
        trainer = Trainer.fork(
            args.fork, args.run_dir, [*args.set, *_train_overrides(args)], args.fork_step
        )
        run_dir = trainer.run_dir
        print(f"forked {args.fork} at step {trainer.step} into {run_dir}", file=sys.stderr)
    elif args.resume:
        # a resume keeps what the run trains; how it runs and logs, and its length, may change
        extras = _resume_extras(args)
        if extras:
            raise ConfigError(
                f"--resume continues with the run's stored config and takes only "
                f"--total-steps, --wandb and --no-progress; drop {', '.join(extras)} "
                f"(through make: make resume RUN={args.resume})"
            )
        settings: dict[str, object] = {}
        if args.total_steps is not None:
            settings["train.total_steps"] = args.total_steps
        if args.wandb:
            settings["log.wandb"] = True
        if args.no_progress:
            settings["log.progress"] = False
        trainer = Trainer.resume(args.resume, settings)
        run_dir = trainer.run_dir
        print(f"resuming {run_dir} at step {trainer.step}", file=sys.stderr)
    else:
        cfg = load_config(args.config, [*args.set, *_train_overrides(args)])
        run_dir = Path(args.run_dir) if args.run_dir is not None else default_run_dir(cfg)
        check_new_run(cfg, run_dir)  # env, device, memory, run directory: before creating it
        trainer = Trainer(cfg, run_dir)
        print(f"run directory: {run_dir}", file=sys.stderr)
    try:
        summary = trainer.run()
    except KeyboardInterrupt:
        say(_interrupted(run_dir))
        raise
    if summary.steps < trainer.cfg.train.total_steps:
        say(f"stopped at step {summary.steps}; continue with --resume {run_dir}", sys.stdout)
        return EXIT_STOPPED
    has_best = math.isfinite(summary.best_return)
    best = f"best {summary.best_return:.1f}" if has_best else "no best yet"
    say(
        f"done: {summary.steps} steps, final eval return {summary.final_return:.1f}, {best}, "
        f"{summary.env_steps_per_s:.1f} env steps/s, run directory {run_dir}",
        sys.stdout,
    )
    if not has_best:
        say(
            f"no checkpoints/best.pt: the run ended before train.start_steps "
            f"({trainer.cfg.train.start_steps}), and evaluations of the random warm-up never "
            "count as best; checkpoints/last.pt holds the final actor",
            sys.stdout,
        )
    say(_next_steps(run_dir, trainer.cfg.log.tensorboard), sys.stdout)
    return 0


def _next_steps(run_dir: Path, tensorboard: bool) -> str:
    """The last line of a finished run: what to do with it."""
    steps = [
        f"spiking-dreamer eval --checkpoint {run_dir}",
        f"spiking-dreamer report {run_dir}",
    ]
    if tensorboard:
        steps.append(f"tensorboard --logdir {run_dir / 'tb'}")
    return "next: " + "; ".join(steps)


def _interrupted(run_dir: Path) -> str:
    """What a run stopped at once (a second Ctrl-C) leaves, and how to go on."""
    from spiking_dreamer.training.checkpoint import has_training_state

    if has_training_state(run_dir):
        return (
            f"stopped at once; {run_dir} keeps its last saved training state: continue with "
            f"--resume {run_dir}"
        )
    return (
        f"stopped at once, before the run's first training-state save: {run_dir} cannot be "
        f"resumed; to start over, delete it (rm -r {run_dir}) and run the same command again"
    )


def _checkpoint_path(arg: str) -> Path:
    """``--checkpoint``: an actor checkpoint file, or a run directory, which means its
    ``checkpoints/best.pt``, else its ``checkpoints/last.pt`` (a note on stderr says which)."""
    path = Path(arg)
    if not path.is_dir():
        last = path.with_name("last.pt")
        if path.name == "best.pt" and not path.exists() and last.is_file():
            raise CheckpointError(
                f"checkpoint not found: {path}: best.pt is written at the first evaluation "
                "after train.start_steps (the random warm-up), and this run has none yet; use "
                f"{last} (or --checkpoint {path.parent.parent}, which falls back to it)"
            )
        return path  # a file, or a missing path that load_actor reports
    best, last = path / "checkpoints" / "best.pt", path / "checkpoints" / "last.pt"
    if best.is_file():
        print(f"note: {path} is a run directory; using its best checkpoint {best}", file=sys.stderr)
        return best
    if last.is_file():
        print(
            f"note: {path} is a run directory without checkpoints/best.pt; using {last}",
            file=sys.stderr,
        )
        return last
    hint = ""
    if (path / "checkpoints" / "state.pt").exists():
        hint = " (checkpoints/state.pt is a training state for train --resume, not an actor)"
    raise CheckpointError(
        f"{path} is a directory but holds no actor checkpoint: looked for {best} and {last}{hint}"
    )


def _check_media_args(args: argparse.Namespace) -> None:
    """Fail before any work: media formats, their writers, sizes, frame rates and output files
    (--video, --raster)."""
    from spiking_dreamer import media

    if args.video:
        fmt = media.video_format(args.video)
        media.check_video_writer(args.video)
        if args.video_size:
            media.parse_size(args.video_size)
        if fmt == ".gif" and args.fps is not None and args.fps > 100:
            raise UserError(
                f"--fps {args.fps:g}: a GIF shows at most 100 frames per second (its frame "
                "delays are in 1/100 s); use an .mp4 or a lower --fps"
            )
        check_output_file(args.video, "--video")
    if args.raster:
        if Path(args.raster).suffix.lower() not in media.RASTER_FORMATS:
            raise UserError(f"--raster {args.raster}: the file must end in .png, .svg or .pdf")
        check_output_file(args.raster, "--raster")


def _eval_device(name: str) -> torch.device:
    """``eval --device``: a CUDA device only where CUDA is available."""
    import torch

    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"--device {name}: CUDA is not available here; use --device cpu")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def cmd_eval(args: argparse.Namespace) -> int:
    if args.episodes == 0 and not (args.video or args.raster or args.energy):
        raise UserError("--episodes 0 (no evaluation) needs --video, --raster or --energy")
    _check_media_args(args)
    device = _eval_device(args.device)
    if args.video:
        from spiking_dreamer import media

        media.select_gl_backend()  # sets MUJOCO_GL before MuJoCo is imported

    import numpy as np
    import torch

    from spiking_dreamer.envs import make_env, resolve_env_id
    from spiking_dreamer.training.checkpoint import load_actor
    from spiking_dreamer.training.evaluate import evaluate_episodes

    torch.set_num_threads(1)
    checkpoint = _checkpoint_path(args.checkpoint)
    actor, data = load_actor(checkpoint, device)
    if args.energy:
        from spiking_dreamer.export import spiking_actor

        spiking_actor(actor, checkpoint, "--energy")  # fail before the episodes
    if args.raster:
        _check_raster(actor, args)
    stored = data["env"]
    if args.seed is None:
        train = data["config"]["train"]
        args.seed = train["seed"] + train.get("eval_seed_offset", 10_000)
    env_id = args.env or stored["id"]
    env_kwargs = data["config"]["env"].get("kwargs", {})
    if env_kwargs and resolve_env_id(env_id) != stored["id"]:
        print(f"note: {env_id} runs with its defaults, not {stored['id']}'s {env_kwargs}")
        env_kwargs = {}
    env = make_env(env_id, env_kwargs)
    try:
        obs_dim = env.observation_space.shape[0]
        act_dim = env.action_space.shape[0]
        if (obs_dim, act_dim) != (stored["obs_dim"], stored["act_dim"]):
            raise EnvError(
                f"checkpoint {checkpoint} was trained on {stored['id']} (obs "
                f"{stored['obs_dim']}, act {stored['act_dim']}) but {env_id} has obs {obs_dim}, "
                f"act {act_dim}"
            )
        if args.episodes > 0:
            returns, lengths = evaluate_episodes(
                actor, lambda: make_env(env_id, env_kwargs), args.episodes, args.seed
            )
            mean, std = float(np.mean(returns)), float(np.std(returns))
            print(
                f"{env_id}: return {mean:.1f} ± {std:.1f} over {len(returns)} episodes "
                f"(mean length {np.mean(lengths):.0f}; checkpoint step {data['step']})"
            )
        if args.energy:
            _print_energy(actor, env, args.seed)
        if args.video:
            _write_video(actor, env_id, env_kwargs, args)
        if args.raster:
            _write_raster(actor, env, env_id, data["step"], args)
    finally:
        env.close()
    return 0


def _check_raster(actor, args: argparse.Namespace) -> None:
    """Fail before any episode: a raster needs a PopSAN actor and matplotlib."""
    from spiking_dreamer import media
    from spiking_dreamer.errors import import_extra

    media.spiking_actor(actor, f"--raster ({args.checkpoint})")
    import_extra("matplotlib", "--raster", "report")


def _write_video(actor, env_id: str, env_kwargs: dict, args: argparse.Namespace) -> None:
    """Render one deterministic episode (reset with --seed, like the first evaluation episode)."""
    from spiking_dreamer import media

    size = media.parse_size(args.video_size) if args.video_size else None
    size = size or media.DEFAULT_VIDEO_SIZE[media.video_format(args.video)]
    env = media.make_render_env(env_id, env_kwargs, size)
    try:
        info = media.record_video(
            actor, env, args.video, args.seed, args.video_steps, args.fps, size
        )
    finally:
        env.close()
    cut = f", cut at {args.video_steps} frames" if info["cut"] else ""
    print(
        f"wrote {info['path']} ({info['frames']} frames, {size[0]}x{size[1]}, "
        f"{info['fps']:g} fps; return {info['return']:.1f} over {info['steps']} steps{cut})"
    )


def _write_raster(actor, env, env_id: str, step: int, args: argparse.Namespace) -> None:
    """The actor's spike raster over --raster-steps steps of the episode reset with --seed."""
    from spiking_dreamer import media

    record = media.record_spikes(actor, env, args.seed, args.raster_steps)
    title = (
        f"{env_id}: PopSAN spikes over {record.steps} env steps (seed {args.seed}; "
        f"{Path(args.checkpoint).name}, step {step})"
    )
    info = media.plot_raster(record, args.raster, title)
    rates = ", ".join(
        f"{n} {r:.1%}" for n, r in zip(record.names, record.firing_rates(), strict=True)
    )
    print(f"wrote {info['path']} ({info['size'][0]}x{info['size'][1]}; firing rates {rates})")


def _print_energy(actor, env, seed: int) -> None:
    """Re-run one deterministic episode, recording observations, and print the energy table."""
    import torch

    from spiking_dreamer.energy import collect_observations, energy_report, format_energy_report

    device = actor.action_scale.device
    obs = collect_observations(actor, env, seed, torch.Generator(device).manual_seed(seed))
    report = energy_report(actor, obs, generator=torch.Generator(device).manual_seed(seed))
    print(format_energy_report(report))


def cmd_export(args: argparse.Namespace) -> int:
    from spiking_dreamer.export import export_nir, export_safetensors, sidecar_path

    out = Path(args.out)
    if out.suffix.lower() != f".{args.format}":
        raise OutputPathError(
            f"--out {out}: the suffix does not match --format {args.format}; name the file "
            f"{out.with_suffix('.' + args.format).name}"
        )
    checkpoint = _checkpoint_path(args.checkpoint)
    check_output_file(out, "--out", inputs=[checkpoint])
    if args.format == "nir":
        check_output_file(sidecar_path(out), "--out (its sidecar)", inputs=[checkpoint])
    if args.format == "nir":
        info = export_nir(checkpoint, args.out)
        print(
            f"wrote {info['path']} (NIR graph {' -> '.join(info['nodes'])}, dt {info['dt']:g}) "
            f"and {info['sidecar']} (host parts: {', '.join(info['host'])})"
        )
    else:
        info = export_safetensors(checkpoint, args.out)
        print(f"wrote {info['path']} (safetensors, {len(info['tensors'])} tensors)")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    import torch

    from spiking_dreamer.bench import check_overrides, format_table, loop_arms, run_bench
    from spiking_dreamer.envs import check_env
    from spiking_dreamer.training.preflight import check_memory
    from spiking_dreamer.training.trainer import resolve_device

    if args.out:
        check_output_file(args.out, "--out", inputs=[args.config] if args.config else [])
    check_overrides(args.set)
    overrides = [*args.set, f"train.threads={args.threads}"]
    if args.env:
        overrides.append(f"env.id={args.env}")
    if args.device:
        overrides.append(f"train.device={args.device}")
    cfg = load_config(args.config, overrides)
    also = {Path(c).stem: load_config(c, overrides) for c in args.also}
    for c in [cfg, *also.values()]:
        resolve_device(c.train.device)
        check_memory(c, *check_env(c.env.id, c.env.kwargs))
    torch.set_num_threads(args.threads)
    arms = len(loop_arms(cfg)) * (2 if args.compile else 1) + len(also)
    print(
        f"bench: {arms} arms, each {args.warmup} random steps, untimed training steps, "
        f"{args.steps} timed steps, then its parts ({args.repeats} repeats)",
        file=sys.stderr,
    )
    result = run_bench(
        cfg, args.warmup, args.steps, args.repeats, args.compile, also, progress=_bench_progress
    )
    print(format_table(result))
    if args.out:
        from spiking_dreamer.files import atomic_write_json

        atomic_write_json(args.out, result)
        print(f"wrote {args.out}")
    return 0


def _bench_progress(arm: str, steps_per_s: float | None, seconds: float) -> None:
    """One line per arm on stderr: when it starts, and its loop's speed when it is timed."""
    if steps_per_s is None:
        say(f"bench: timing {arm} ...")
    else:
        say(f"bench: {arm}: {steps_per_s:.1f} env steps/s (loop); arm timed in {seconds:.0f} s")


def cmd_sweep(args: argparse.Namespace) -> int:
    from spiking_dreamer.sweep import Sweep, parse_arms, parse_seeds

    overrides = list(args.set)
    if args.wandb:
        overrides.append("log.wandb=true")
    sweep = Sweep(
        args.config,
        parse_seeds(args.seeds),
        parse_arms(args.arms),
        exp_dir=args.exp_dir,
        overrides=overrides,
        cpus_per_run=args.cpus_per_run,
        gpus_per_run=args.gpus_per_run,
        address=args.address,
        node_wait_s=args.node_wait,
    )
    manifest = sweep.run()
    counts = sweep.counts()
    print(
        f"{counts['done']}/{len(sweep.runs)} runs done, {counts['failed']} failed, "
        f"{counts['pending']} unfinished; manifest {sweep.manifest_path}; "
        f"report: spiking-dreamer report {sweep.exp_dir}"
    )
    for run in manifest["runs"]:
        if run["status"] == "failed":
            first = (run["error"] or "").splitlines()[:1]
            print(f"  failed: {run['name']}: {first[0] if first else '?'}", file=sys.stderr)
    return 0 if counts["done"] == len(sweep.runs) else 1


def cmd_report(args: argparse.Namespace) -> int:
    from spiking_dreamer.report import parse_budgets, parse_thresholds, write_report

    report = write_report(
        args.exp_dirs,
        args.out,
        thresholds=parse_thresholds(args.thresholds),
        budgets=parse_budgets(args.budgets),
        reps=args.reps,
        seed=args.seed,
    )
    files = report["files"]
    print(f"wrote {files['markdown']}, {files['json']}, {files['results_csv']}")
    for fig in files["figures"]:
        print(f"wrote {fig}")
    for note in report["notes"]:
        print(f"note: {note}", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spiking-dreamer", description="Spiking actors and spiking world models for RL."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train a PopSAN agent (TD3, or SAC: agent.kind)")
    p.add_argument(
        "--config", type=nonempty_path, help="YAML config (e.g. configs/halfcheetah.yaml)"
    )
    p.add_argument(
        "--seed", type=seed_int, help=f"run seed in [0, {MAX_SEED}], overrides train.seed"
    )
    p.add_argument("--env", help="gymnasium env id, overrides env.id")
    p.add_argument("--no-dreaming", action="store_true", help="model-free baseline")
    p.add_argument(
        "--total-steps", type=positive_int, help="env steps, overrides train.total_steps"
    )
    p.add_argument(
        "--run-dir",
        type=nonempty_path,
        help="new run directory (default runs/<env>__<arm>__s<seed>__<time>)",
    )
    p.add_argument("--device", type=device_name, help="auto | cpu | cuda | cuda:N")
    p.add_argument("--wandb", action="store_true", help="mirror metrics to Weights & Biases")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--resume", type=nonempty_path, metavar="RUN_DIR", help="continue a stopped run exactly"
    )
    p.add_argument(
        "--fork",
        type=nonempty_path,
        metavar="RUN_DIR",
        help="start a new run (--run-dir) from RUN_DIR's training state with --set changes",
    )
    p.add_argument(
        "--fork-step",
        type=int_in(0),
        help="with --fork: the state saved at this env step",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override any config key, e.g. --set td3.batch_size=256 (repeatable)",
    )
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("eval", help="evaluate a checkpoint with the deterministic policy")
    p.add_argument(
        "--checkpoint",
        type=nonempty_path,
        required=True,
        help="an actor checkpoint (checkpoints/best.pt or last.pt) or a run directory (its "
        "best.pt, else its last.pt)",
    )
    p.add_argument(
        "--episodes",
        type=int_in(0, MAX_EPISODES),
        default=10,
        help=f"deterministic episodes to evaluate, in chunks run side by side (default 10, at "
        f"most {MAX_EPISODES:,}; 0: only --video / --raster)",
    )
    p.add_argument("--env", help="env id (default: the checkpoint's)")
    p.add_argument(
        "--seed",
        type=seed_int,
        help="episode i is reset with seed + i (default: the run's own evaluation seed, "
        "train.seed + train.eval_seed_offset, so the checkpoint's recorded evaluation is repeated)",
    )
    p.add_argument(
        "--device", type=device_name, default="cpu", help="auto | cpu | cuda | cuda:N (default cpu)"
    )
    p.add_argument(
        "--energy",
        action="store_true",
        help="also print firing rates, synaptic operations and estimated energy per action "
        "(one more deterministic episode)",
    )
    p.add_argument(
        "--video",
        type=nonempty_path,
        metavar="FILE",
        help="render one deterministic episode offscreen into FILE.gif or FILE.mp4 "
        "(extra 'video'; --episodes 0 skips the evaluation)",
    )
    p.add_argument(
        "--video-steps", type=positive_int, default=1000, metavar="N", help="at most N frames"
    )
    p.add_argument(
        "--fps",
        type=number_in(0, MAX_FPS),
        help=f"frames per second, > 0 and at most {MAX_FPS:g} (a GIF: 100) (default: the env's)",
    )
    p.add_argument(
        "--video-size",
        metavar="WxH",
        help="frame size (default 320x240 for GIF, 640x480 for MP4)",
    )
    p.add_argument(
        "--raster",
        type=nonempty_path,
        metavar="FILE",
        help="draw the PopSAN actor's spike raster and actions into FILE.png (.svg, .pdf)",
    )
    p.add_argument(
        "--raster-steps",
        type=positive_int,
        default=300,
        metavar="N",
        help="env steps in the raster",
    )
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("export", help="export an actor checkpoint (NIR graph or safetensors)")
    p.add_argument(
        "--checkpoint",
        type=nonempty_path,
        required=True,
        help="an actor checkpoint, or a run directory (its best.pt, else its last.pt)",
    )
    p.add_argument(
        "--format", choices=["nir", "safetensors"], required=True, help="nir or safetensors"
    )
    p.add_argument(
        "--out",
        type=nonempty_path,
        required=True,
        help="output file, FILE.nir or FILE.safetensors (NIR also writes FILE.nir.json)",
    )
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("bench", help="throughput of training loops and their parts")
    p.add_argument(
        "--config",
        type=nonempty_path,
        default=None,
        help="YAML config (default: built-in defaults)",
    )
    p.add_argument("--env", help="env id (default HalfCheetah-v5)")
    p.add_argument(
        "--threads",
        type=int_in(1, MAX_THREADS),
        default=1,
        help="torch intra-op threads (default 1)",
    )
    p.add_argument("--device", type=device_name, help="auto | cpu | cuda | cuda:N")
    p.add_argument(
        "--warmup", type=positive_int, default=2000, help="random steps before measuring"
    )
    p.add_argument("--steps", type=positive_int, default=1000, help="measured loop steps per arm")
    p.add_argument("--repeats", type=positive_int, default=100, help="repeats of each part timing")
    p.add_argument(
        "--compile",
        action="store_true",
        help="also measure everything with train.compile (torch.compile)",
    )
    p.add_argument(
        "--also",
        type=nonempty_path,
        action="append",
        default=[],
        metavar="CONFIG",
        help="another regime's config, timed as a further dreaming arm in the same run "
        "(e.g. configs/halfcheetah_mbpo.yaml beside configs/halfcheetah_value_gradient.yaml)",
    )
    p.add_argument("--out", type=nonempty_path, help="write the result as JSON")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key the benchmark does not set itself (repeatable)",
    )
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("sweep", help="multi-seed dreaming/baseline sweep as Ray tasks")
    p.add_argument(
        "--config",
        type=nonempty_path,
        action="append",
        required=True,
        help="YAML config (repeatable)",
    )
    p.add_argument("--seeds", default="0-4", help="e.g. 0-4, 0,1,2 or 3 (default 0-4)")
    p.add_argument("--arms", default="dreaming,baseline", help="dreaming and/or baseline")
    p.add_argument(
        "--exp-dir", type=nonempty_path, help="experiment directory (default experiments/<time>)"
    )
    p.add_argument("--address", help="join this Ray cluster (default: start a local instance)")
    p.add_argument(
        "--cpus-per-run",
        type=int_in(1, MAX_THREADS),
        default=1,
        help="CPUs and torch threads per run",
    )
    p.add_argument(
        "--gpus-per-run",
        type=number_in(0, 64, lo_open=False),
        default=0.0,
        help="GPUs per run (may be < 1)",
    )
    p.add_argument(
        "--node-wait",
        type=int_in(0, 7 * 86_400),
        default=300,
        metavar="SECONDS",
        help="when no node of the cluster has room for a run any more (nodes left it), how long "
        "to wait for one to join before the unfinished runs are cancelled (default 300)",
    )
    p.add_argument("--wandb", action="store_true", help="W&B, runs grouped by experiment")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key in every run, e.g. --set train.total_steps=100000 (repeatable)",
    )
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser(
        "report", help="curves, results table and aggregates of sweeps or train runs"
    )
    p.add_argument(
        "exp_dirs",
        type=nonempty_path,
        nargs="+",
        metavar="EXP_DIR",
        help="a sweep experiment directory, a train run directory, or a folder of train run "
        "directories (repeatable: the runs of all are reported together)",
    )
    p.add_argument(
        "--out",
        type=nonempty_path,
        help="output directory (default EXP_DIR/report; several EXP_DIRs: their common parent's "
        "report/)",
    )
    p.add_argument(
        "--thresholds",
        action="append",
        default=[],
        metavar="ENV=X,Y",
        help="return thresholds for 'steps to X' (repeatable; defaults: HalfCheetah 8000,10000, "
        "Ant 3000,5000, Hopper and Walker2d 2000,3000)",
    )
    p.add_argument(
        "--budgets",
        help="steps to report returns at, e.g. 100000,300k,1M (default: 100K/300K/1M where "
        "every run has them, and the last common eval step)",
    )
    p.add_argument(
        "--reps",
        type=int_in(1, MAX_REPS),
        default=2000,
        help=f"bootstrap resamples (default 2000, at most {MAX_REPS:,})",
    )
    p.add_argument(
        "--seed", type=seed_int, default=0, help=f"bootstrap seed in [0, {MAX_SEED}] (default 0)"
    )
    p.set_defaults(func=cmd_report)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except BrokenPipeError:  # the reader of our output went away; nothing is lost
        return 0
    except UserError as e:
        say(f"error: {e}")
        return 2
    except TrainingDivergedError as e:
        say(f"error: {e}")
        return 3
    except KeyboardInterrupt:
        say("interrupted")
        return 130
    except OSError as e:  # the system refused something during the work (a full disk, ...)
        say(f"error: {e}")
        return EXIT_OS_ERROR
    except Exception:
        say(traceback.format_exc().rstrip())
        say(f"error: {REPORT_BUG}")
        return EXIT_BUG
    finally:
        _quiet_broken_streams()


def _quiet_broken_streams() -> None:
    """Point a stdout/stderr whose reader has gone (a pipe closed by Ctrl-C) at /dev/null, so
    that the interpreter's final flush does not turn a clean stop into an error."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            with contextlib.suppress(OSError, ValueError):
                os.dup2(os.open(os.devnull, os.O_WRONLY), stream.fileno())


if __name__ == "__main__":
    sys.exit(main())
