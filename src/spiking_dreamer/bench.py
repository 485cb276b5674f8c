"""Throughput benchmark: full training loops and their parts, measured side by side in one run.

Loops (steady state: a random warm-up that fills the buffer, then 250 untimed training steps in
which any compiling happens; evaluation excluded):

* ``mlp``: the config's agent with the MLP reference actor of the same width (the ANN
  reference);
* ``baseline``: the PopSAN actor and the config's agent (PopSAN-TD3, or PopSAN-SAC under
  ``agent.kind: sac``) without dreaming;
* ``dreaming``: the same with the world model used as configured (dream phases at their
  configured frequency, dreams right after the warm-up; or learning through the model);
* ``td3`` (only when the config's agent is SAC): PopSAN-TD3 without dreaming at SAC's batch
  size, discount, target rate and update arrangement (``td3_counterpart``), so the two agents'
  updates are timed side by side in one run.

All arms use the config's update schedule, so with ``--config configs/halfcheetah_mbpo.yaml``
``dreaming`` is MBPO's regime and ``baseline`` its real-only control at the same G.

Parts: action latency at batch 1, critic update (a TD target and a critic step), actor update
(an actor step, SAC's temperature step, and the Polyak update of the targets), one TD3 step
(``td3_step_ms``: a critic step and ``1 / policy_delay`` actor steps) or SAC step
(``sac_step_ms``: a critic and an actor step), one env step's updates
(``updates_per_env_step_ms``: G = ``Config.updates_per_step`` as the schedule arranges them),
world-model gradient step and training phase, dream phase; the model training and dreams per
env step (``*_per_env_step_ms``: a phase's cost over its period).

With ``compile=True`` every loop and part is measured a second time with ``train.compile``
(``torch.compile`` of acting and of the update's network forwards), as ``<arm>_compiled``.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from spiking_dreamer.agent import SAC
from spiking_dreamer.config import KEY_RULES, Config, ConfigError
from spiking_dreamer.config_loading import parse_override
from spiking_dreamer.provenance import result_header
from spiking_dreamer.training.trainer import Trainer


def _sync() -> None:
    """Wait for queued GPU work, so that host clocks time what the device did."""
    if torch.cuda.is_initialized():
        torch.cuda.synchronize()


def median_ms(fn: Callable[[], Any], repeats: int, warmup: int = 5) -> float:
    """Median wall time of one call of ``fn`` in ms, over ``repeats`` calls after ``warmup``
    (GPU work included: the device is synchronised around each call)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        _sync()
        start = time.perf_counter()
        fn()
        _sync()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


BENCH_KEYS = {k: r.bench for k, r in KEY_RULES.items() if r.bench}
"""Config keys the benchmark sets itself, and the flag that sets each."""


def check_overrides(overrides: list[str]) -> None:
    """Refuse ``--set`` overrides of keys the benchmark sets itself (:data:`BENCH_KEYS`)."""
    for text in overrides:
        key = ".".join(parse_override(text)[0])
        if key in BENCH_KEYS:
            raise ConfigError(f"bench sets {key} itself: use {BENCH_KEYS[key]}, not --set")


def td3_counterpart(cfg: Config) -> Config:
    """``cfg`` (a SAC config) with PopSAN-TD3 in SAC's place: SAC's batch size, discount, target
    rate, activity penalty and update arrangement (``sac`` -> ``td3``, ``per_env_step`` ->
    ``per_env_step``), TD3's defaults otherwise (its exploration noise included)."""
    s, default = cfg.sac, Config()
    td3: dict[str, Any] = {
        "batch_size": s.batch_size,
        "gamma": s.gamma,
        "tau": s.tau,
        "firing_rate_penalty": s.firing_rate_penalty,
    }
    if s.schedule == "per_env_step":
        td3 |= {
            "schedule": "per_env_step",
            "actor_updates_per_step": s.actor_updates_per_step,
            "batched_targets": s.batched_targets,
            "target_tau_per": s.target_tau_per,
        }
    return cfg.replace(
        agent={"kind": "td3"},
        sac=default.to_dict()["sac"],
        td3=td3,
        dreaming={"exploration_noise": default.dreaming.exploration_noise},
        value_gradient={"exploration_noise": default.value_gradient.exploration_noise},
    )


def _step_key(cfg: Config) -> str:
    """The part that is one update of ``cfg``'s agent and schedule."""
    if cfg.agent.kind == "sac":
        return "sac_step_ms" if cfg.sac.schedule == "sac" else "updates_per_env_step_ms"
    return "td3_step_ms" if cfg.td3.schedule == "td3" else "updates_per_env_step_ms"


def _trainer(cfg: Config, arm: str, warmup: int, root: Path, compile: bool) -> Trainer:
    actor = {"kind": "mlp"} if arm == "mlp" else {}
    if arm == "td3":
        cfg = td3_counterpart(cfg)
    use = cfg.world_model.use if arm == "dreaming" else "none"
    value_gradient = {"start_step": warmup} if use == "value_gradient" else {}
    train = {"start_steps": warmup, "update_after": warmup, "eval_every": 10**9}
    cfg = cfg.replace(
        actor=actor,
        train={**train, "compile": compile},
        world_model={"use": use},
        dreaming={"start_step": warmup},
        value_gradient=value_gradient,
        log={"tensorboard": False, "wandb": False, "progress": False},
    )
    return Trainer(cfg, root / f"{arm}_{compile}")


def loop_steps_per_s(trainer: Trainer, warmup: int, steps: int, settle: int = 250) -> float:
    """Env steps/s of ``steps`` training-loop iterations after ``warmup`` random steps and
    ``settle`` untimed training steps (compiling happens there, not in the timed window)."""
    trainer.begin()
    while trainer.step < warmup + settle:
        trainer.advance()
    _sync()
    start = time.perf_counter()
    for _ in range(steps):
        trainer.advance()
    _sync()
    return steps / (time.perf_counter() - start)


def part_timings(trainer: Trainer, repeats: int) -> dict[str, float]:
    """Medians in ms of the parts of one training step (trainer already warmed up); the
    ``*_per_env_step_ms`` parts are what one env step costs on average."""
    agent, buf, g, cfg = trainer.agent, trainer.buffer, trainer.sample_generator, trainer.cfg
    settings = cfg.agent_settings
    batch_size = settings.batch_size
    obs = buf.obs[0].cpu().numpy()
    out = {"action_batch1_ms": median_ms(lambda: agent.act(obs), repeats * 5)}

    def critic_only() -> None:  # a TD target and a critic step
        agent.critic_update(buf.sample(batch_size, g))

    def actor_only() -> None:  # an actor (and temperature) step and the Polyak update
        agent.actor_update(buf.sample(batch_size, g))
        agent.soft_update_targets(settings.tau)

    out["critic_update_ms"] = median_ms(critic_only, repeats)
    out["actor_update_ms"] = median_ms(actor_only, repeats)
    if cfg.agent.kind == "td3" and cfg.td3.schedule == "td3":
        delay = cfg.td3.policy_delay
        out["td3_step_ms"] = out["critic_update_ms"] + out["actor_update_ms"] / delay
    if cfg.agent.kind == "sac" and cfg.sac.schedule == "sac":
        out["sac_step_ms"] = out["critic_update_ms"] + out["actor_update_ms"]
    n = cfg.updates_per_step(trainer.dreaming is not None and trainer.dreaming.active)
    vg = trainer.dreaming.value_gradient if trainer.dreaming is not None else None

    def env_step_updates() -> None:
        agent.train(
            n, lambda: buf.sample(batch_size, g), vg if vg is not None and vg.ready else None
        )

    out["updates_per_env_step_ms"] = median_ms(env_step_updates, max(repeats // max(n, 1), 3))
    if vg is not None:
        out.update(value_gradient_timings(trainer, max(repeats // 5, 3)))
    if trainer.dreaming is not None:
        engine = trainer.dreaming
        model, wm = engine.model, trainer.cfg.world_model
        data = buf.sample(wm.batch_size * wm.ensemble_size, g)
        x, y = model.normalize_batch(data.obs, data.action, data.next_obs, data.reward)
        x = x.view(wm.ensemble_size, wm.batch_size, -1)
        y = y.view(wm.ensemble_size, wm.batch_size, -1)
        opt = engine.model_trainer.optimizer

        def model_step() -> None:
            loss = model.loss(x, y).sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        out["model_train_step_ms"] = median_ms(model_step, max(repeats // 5, 3))
        out["model_train_phase_ms"] = median_ms(lambda: engine.train_model(buf), 3, warmup=0)
        out["model_training_per_env_step_ms"] = out["model_train_phase_ms"] / wm.train_every
        if vg is None:  # learning through the model runs no dream phases
            stats: dict[str, float] = {}

            def dream_phase() -> None:
                stats.update(engine.dreamer.phase(buf, engine.buffer, trainer.step, 1))

            out["dream_phase_ms"] = median_ms(dream_phase, max(repeats // 20, 3), warmup=1)
            out["dreams_per_env_step_ms"] = out["dream_phase_ms"] / cfg.dreaming.every
            out["dream_imagined_per_start"] = stats["dream/imagined_per_start"]  # the last phase's
    return out


def value_gradient_timings(trainer: Trainer, repeats: int) -> dict[str, float]:
    """The value-gradient regime's parts: the differentiable training rollout and its loss
    (forward), the backward through model and actor, one whole update (with its critic step),
    and the distribution rollouts (a phase, and per env step)."""
    from spiking_dreamer.dreaming.value_gradient import value_gradient_loss

    engine, agent, cfg = trainer.dreaming, trainer.agent, trainer.cfg
    vg, buf, g = engine.value_gradient, trainer.buffer, trainer.sample_generator
    vc = cfg.value_gradient

    def loss() -> torch.Tensor:
        start = vg.pool.sample(vc.batch_size, vg.generator)
        args = (engine.model, agent.actor, agent.critic, agent.actor.obs_normalizer)
        return value_gradient_loss(
            *args,
            vg.termination_fn,
            start,
            horizon=vc.horizon,
            member=vc.member,
            gamma=cfg.agent_settings.gamma,
            generator=vg.generator,
            alpha=agent.alpha if isinstance(agent, SAC) else None,
        )[0]

    def forward_backward() -> None:
        agent.actor.zero_grad(set_to_none=True)
        loss().backward()

    out = {"vg_rollout_forward_ms": median_ms(loss, repeats)}
    out["vg_backward_ms"] = median_ms(forward_backward, repeats) - out["vg_rollout_forward_ms"]
    out["vg_update_ms"] = median_ms(
        lambda: agent.train(1, lambda: buf.sample(cfg.agent_settings.batch_size, g), vg), repeats
    )
    out["distribution_phase_ms"] = median_ms(
        lambda: vg.distribution_phase(buf, agent.actor), max(repeats // 2, 3), warmup=1
    )
    out["distributions_per_env_step_ms"] = out["distribution_phase_ms"] / vc.distribution_every
    return out


def loop_arms(cfg: Config) -> tuple[str, ...]:
    """The arms :func:`run_bench` times for ``cfg`` (eagerly; again compiled with ``compile``):
    the MLP actor, the spiking baseline and dreaming, and for SAC its TD3 counterpart."""
    arms = ("mlp", "baseline", "dreaming")
    return (*arms, "td3") if cfg.agent.kind == "sac" else arms


def run_bench(
    cfg: Config,
    warmup: int = 2000,
    steps: int = 1000,
    repeats: int = 100,
    compile: bool = False,
    also: dict[str, Config] | None = None,
    progress: Callable[[str, float | None, float], None] | None = None,
) -> dict:
    """Run every loop and part timing (eager, and compiled too if ``compile``); ``also``:
    further dreaming arms by name (other regimes' configs), timed eagerly in the same run.
    ``progress(arm, None, 0)`` is called as an arm starts and ``progress(arm, env steps/s,
    seconds)`` once it is timed. Returns a JSON-ready dict."""
    report = progress or (lambda arm, sps, seconds: None)
    loops, parts = {}, {}
    ratios: dict[str, float] = {}
    if compile:  # no background compile workers competing with the timed loops
        import torch._inductor.config as inductor_config

        inductor_config.compile_threads = 1
    sac = cfg.agent.kind == "sac"
    arms = loop_arms(cfg)
    key, step_name = _step_key(cfg), "sac_step" if sac else "td3_step"
    with tempfile.TemporaryDirectory() as tmp:
        for compiled in (False, True) if compile else (False,):
            suffix = "_compiled" if compiled else ""
            for arm in arms:
                report(arm + suffix, None, 0.0)
                start = time.perf_counter()
                trainer = _trainer(cfg, arm, warmup, Path(tmp), compiled)
                loops[arm + suffix] = loop_steps_per_s(trainer, warmup, steps)
                parts[arm + suffix] = part_timings(trainer, repeats)
                trainer.close()
                report(arm + suffix, loops[arm + suffix], time.perf_counter() - start)
            step = {a: parts[a + suffix][key] for a in ("mlp", "baseline")}
            ratios[f"popsan_over_mlp_{step_name}" + suffix] = step["baseline"] / step["mlp"]
            ratios["baseline_over_mlp_loop_time" + suffix] = (
                loops["mlp" + suffix] / loops["baseline" + suffix]
            )
            ratios["dreaming_over_baseline_throughput" + suffix] = (
                loops["dreaming" + suffix] / loops["baseline" + suffix]
            )
            if sac:  # the two agents' updates, side by side (PopSAN actor, no world model)
                sac_parts, td3_parts = parts["baseline" + suffix], parts["td3" + suffix]
                td3_key = _step_key(td3_counterpart(cfg))
                ratios["sac_over_td3_update" + suffix] = sac_parts[key] / td3_parts[td3_key]
                for part in ("critic_update_ms", "actor_update_ms", "action_batch1_ms"):
                    ratios[f"sac_over_td3_{part[:-3]}" + suffix] = sac_parts[part] / td3_parts[part]
                ratios["sac_over_td3_loop_time" + suffix] = (
                    loops["td3" + suffix] / loops["baseline" + suffix]
                )
    with tempfile.TemporaryDirectory() as tmp:
        for name, other in (also or {}).items():
            report(name, None, 0.0)
            start = time.perf_counter()
            trainer = _trainer(other, "dreaming", warmup, Path(tmp) / name, False)
            loops[name] = loop_steps_per_s(trainer, warmup, steps)
            parts[name] = part_timings(trainer, repeats)
            trainer.close()
            report(name, loops[name], time.perf_counter() - start)
            ratios[f"{name}_over_dreaming_throughput"] = loops[name] / loops["dreaming"]
    if compile:  # each actor at its faster setting: the spiking overhead a user pays
        best = {a: min(parts[a][key], parts[a + "_compiled"][key]) for a in ("mlp", "baseline")}
        ratios[f"popsan_over_mlp_{step_name}_best"] = best["baseline"] / best["mlp"]
    return {
        **result_header("throughput"),
        "env": cfg.env.id,
        "agent": cfg.agent.kind,
        "threads": torch.get_num_threads(),
        "device": cfg.train.device,
        "warmup_steps": warmup,
        "measured_steps": steps,
        "env_steps_per_s": loops,
        "parts_ms": parts,
        "ratios": ratios,
    }


def format_table(result: dict) -> str:
    loops, parts = result["env_steps_per_s"], result["parts_ms"]
    keys = sorted({k for p in parts.values() for k in p})
    popsan = "popsan-sac" if result.get("agent") == "sac" else "popsan"
    names = {
        a: a.replace("baseline", popsan).replace("td3", "popsan-td3").replace("_compiled", "/c")
        for a in loops
    }
    w = {a: max(12, len(names[a]) + 2) for a in loops}
    lines = [f"{'':32}" + "".join(f"{names[a]:>{w[a]}}" for a in loops)]
    lines.append(f"{'env steps/s (loop)':32}" + "".join(f"{loops[a]:{w[a]}.1f}" for a in loops))
    for k in keys:
        row = "".join(
            f"{parts[a][k]:{w[a]}.3f}" if k in parts[a] else f"{'-':>{w[a]}}" for a in loops
        )
        lines.append(f"{k:32}{row}")
    lines.append("")
    lines += [f"{k}: {v:.2f}" for k, v in result["ratios"].items()]
    if any(a.endswith("_compiled") for a in loops):
        lines.append("(/c: train.compile, torch.compile of acting and of the update)")
    return "\n".join(lines)
