"""How well the world model's action Jacobian matches the real env's (HalfCheetah-v5).

Value-gradient learning (``spiking_dreamer.dreaming.value_gradient``) pushes the actor along
``d s' / d a`` and ``d r / d a`` of the world model, computed through the spiking model's
surrogate gradients (or the MLP kind's exact ones). This measures, per state, the cosine
similarity between that Jacobian (of the elites' mean prediction, ``[O, A]``) and the real one,
estimated in MuJoCo by central finite differences: the simulator is put back into the recorded
full state (``qpos`` including the x position the observation leaves out, ``qvel`` and the
solver's warm start), each action dimension is perturbed by ``±eps`` (clipped to the bounds;
the difference is divided by the actual step) and the env is stepped once from the same state.

Sources of model and states:

* ``--state PATH`` (a run's ``checkpoints/state.pt``): the run's world model; states visited by
  the run's actor with its exploration noise, at the actor's noisy actions;
* otherwise: states visited by a uniformly random policy, at random actions; the world model is
  trained here (``configs/halfcheetah.yaml`` architecture, ``--kind spiking | mlp``) for
  ``--train-steps`` gradient steps on ``--random-steps`` random-policy transitions, a proxy for
  an early-run model; both kinds see the same states with the same ``--seed``.

Reported per state (mean, median, quartiles over states): cosine of the flattened ``d s'/d a``
in raw units (dominated by the large velocity entries), the same with each row divided by the
std of that state-change dimension (every observation dimension counts alike), cosine of
``d r/d a``, the norm ratio ``|J_model| / |J_env|``; the norm ratio of the model's forward
response (its own central differences at ``eps`` against the env's at ``eps``, and at
``10 eps`` against the env's at ``10 eps``: how far dreams move when the action moves, which is
what data made of dreams carries, whatever the surrogate gradient says) and the cosines of that
response at ``10 eps`` with the env's, whole and state-dependent; the same cosines for central
differences of the model's own forward against the env's Jacobian at ``eps`` (what the model
predicts, versus what its surrogate gradient says; at ``eps`` and ``10 eps``, since the spiking
forward is piecewise constant in its spikes); as a baseline, the cosine of each state's env
Jacobian with the mean env Jacobian over the measured states (what a state-independent
Jacobian would score), and therefore also the cosine of the state-dependent parts (each
Jacobian minus its mean over the states, ``centred``); and, as the noise floor of the finite
differences, the cosine between the env's Jacobians at ``eps`` and ``eps / 10``::

    python benchmarks/model_jacobian.py --states 200 --out benchmarks/results/model_jacobian.json

``--set world_model.surrogate=atan --set world_model.surrogate_scale=10`` (repeatable) shapes
the model trained here, e.g. to compare surrogate gradients.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from spiking_dreamer.agent import build_policy
from spiking_dreamer.arguments import nonempty_path, number_in, output_file, positive_int, seed_int
from spiking_dreamer.buffers import Batch, ReplayBuffer
from spiking_dreamer.config_loading import config_from_dict, load_config
from spiking_dreamer.dreaming.model_env import model_transition
from spiking_dreamer.envs import make_env
from spiking_dreamer.errors import CheckpointError, ConfigError
from spiking_dreamer.files import atomic_write_json
from spiking_dreamer.provenance import result_header
from spiking_dreamer.training.checkpoint import load_state_file
from spiking_dreamer.world_model import EnsembleDynamicsModel, ModelTrainer, build_world_model

ROOT = Path(__file__).resolve().parents[1]


def sim_state(env: gym.Env) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    d = env.unwrapped.data
    return d.qpos.copy(), d.qvel.copy(), d.qacc_warmstart.copy()


def restore(env: gym.Env, state: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    qpos, qvel, warm = state
    u = env.unwrapped
    u.set_state(qpos, qvel)
    u.data.qacc_warmstart[:] = warm


def step_from(env: gym.Env, state: tuple, action: np.ndarray) -> tuple[np.ndarray, float]:
    """Observation and reward of one step from the recorded simulator ``state``."""
    restore(env, state)
    obs, reward, *_ = env.unwrapped.step(action)
    return obs, float(reward)


def collect(env: gym.Env, steps: int, policy, rng: np.random.Generator, seed: int) -> dict:
    """Run ``policy(obs) -> action`` for ``steps`` steps; record obs, simulator state, action,
    next obs, reward, terminated at every step."""
    rec: dict[str, list] = {k: [] for k in ("obs", "sim", "action", "next_obs", "reward", "done")}
    obs, _ = env.reset(seed=seed)
    for _ in range(steps):
        action = policy(obs, rng)
        rec["sim"].append(sim_state(env))
        next_obs, reward, terminated, truncated, _ = env.step(action)
        for k, v in (
            ("obs", obs),
            ("action", action),
            ("next_obs", next_obs),
            ("reward", reward),
            ("done", terminated),
        ):
            rec[k].append(v)
        obs = next_obs
        if terminated or truncated:
            obs, _ = env.reset()
    return rec


def env_jacobian(
    env: gym.Env, sim: tuple, action: np.ndarray, eps: float, low: np.ndarray, high: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Central differences ``d s'/d a`` ``[O, A]`` and ``d r/d a`` ``[A]`` from one state."""
    cols, rcols = [], []
    for j in range(len(action)):
        hi, lo = action.copy(), action.copy()
        hi[j] = min(action[j] + eps, high[j])
        lo[j] = max(action[j] - eps, low[j])
        (o_hi, r_hi), (o_lo, r_lo) = step_from(env, sim, hi), step_from(env, sim, lo)
        cols.append((o_hi - o_lo) / (hi[j] - lo[j]))
        rcols.append((r_hi - r_lo) / (hi[j] - lo[j]))
    return np.stack(cols, 1), np.array(rcols)


def model_jacobians(
    model: EnsembleDynamicsModel, obs: Tensor, action: Tensor, eps: float
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Surrogate-gradient and finite-difference Jacobians of the elites' mean prediction:
    ``d s'/d a`` ``[N, O, A]`` and ``d r/d a`` ``[N, A]`` each."""
    g = torch.Generator()
    a = action.clone().requires_grad_(True)
    next_obs, reward, _ = model_transition(model, obs, a, "elite_mean", g)
    outputs = [next_obs[:, o] for o in range(obs.shape[1])] + [reward]
    grads = [torch.autograd.grad(y.sum(), a, retain_graph=True)[0] for y in outputs]
    jac = torch.stack(grads[:-1], 1)
    with torch.no_grad():
        fd_cols, fd_r = [], []
        for j in range(action.shape[1]):
            d = torch.zeros_like(action)
            d[:, j] = eps
            s_hi, r_hi, _ = model_transition(model, obs, action + d, "elite_mean", g)
            s_lo, r_lo, _ = model_transition(model, obs, action - d, "elite_mean", g)
            fd_cols.append((s_hi - s_lo) / (2 * eps))
            fd_r.append((r_hi - r_lo) / (2 * eps))
    return jac.detach(), grads[-1].detach(), torch.stack(fd_cols, 2), torch.stack(fd_r, 1)


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine of ``[N, ...]`` arrays flattened per row."""
    a, b = a.reshape(len(a), -1), b.reshape(len(b), -1)
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-12)


def summary(x: np.ndarray) -> dict[str, float]:
    q25, q50, q75 = np.quantile(x, [0.25, 0.5, 0.75])
    return {"mean": float(x.mean()), "median": float(q50), "q25": float(q25), "q75": float(q75)}


def train_model_on_random_data(cfg, rec: dict, steps: int, seed: int) -> tuple:
    obs_dim, act_dim = len(rec["obs"][0]), len(rec["action"][0])
    wm = dataclasses.replace(cfg.world_model, patience=10**9, holdout_every=max(steps // 10, 1))
    torch.manual_seed(seed)
    model = build_world_model(obs_dim, act_dim, wm)
    buf = ReplayBuffer(len(rec["obs"]), obs_dim, act_dim)
    f32 = lambda k: torch.as_tensor(np.asarray(rec[k]), dtype=torch.float32)  # noqa: E731
    batch = Batch(f32("obs"), f32("action"), f32("reward"), f32("next_obs"), f32("done"))
    buf.add_batch(batch)
    trainer = ModelTrainer(model, wm, torch.Generator().manual_seed(seed))
    metrics = trainer.train_phase(buf, max_steps=steps)
    return model.eval(), metrics


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--state", type=nonempty_path, help="a run's checkpoints/state.pt (model and policy)"
    )
    parser.add_argument("--states", type=positive_int, default=200, help="states measured")
    parser.add_argument("--eps", type=number_in(0, 1), default=1e-2, help="finite-difference step")
    parser.add_argument("--random-steps", type=positive_int, default=20_000)
    parser.add_argument("--train-steps", type=positive_int, default=2_000)
    parser.add_argument("--seed", type=seed_int, default=0)
    parser.add_argument(
        "--kind",
        choices=["spiking", "mlp"],
        default="spiking",
        help="world-model kind trained on random data (without --state)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="world-model overrides for the model trained here (e.g. world_model.surrogate=atan)",
    )
    parser.add_argument("--out", type=output_file, required=True)
    args = parser.parse_args()
    if args.state and args.set:
        parser.error("--set shapes the model trained here; a --state run brings its own")
    torch.set_num_threads(1)
    t0 = time.time()
    rng = np.random.default_rng(args.seed)
    info: dict = {}

    if args.state:
        try:
            state = load_state_file(Path(args.state))[0]
        except CheckpointError as err:
            parser.error(f"--state {args.state}: {err}")
        cfg = config_from_dict(state["config"], f"{args.state} (stored config)")
        if state["dreaming"] is None:
            parser.error(f"--state {args.state}: no world model (not a dreaming run)")
        env = make_env(state["env"]["id"], cfg.env.kwargs)
        obs_dim, act_dim = state["env"]["obs_dim"], state["env"]["act_dim"]
        low, high = env.action_space.low, env.action_space.high
        actor = build_policy(obs_dim, torch.as_tensor(low), torch.as_tensor(high), cfg)
        actor.load_state_dict(state["actor"])
        actor.eval()
        model = build_world_model(obs_dim, act_dim, cfg.world_model)
        model.load_state_dict(state["dreaming"]["model"])
        model.eval()
        noise, half = cfg.td3.exploration_noise, (high - low) / 2

        def policy(obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
            with torch.no_grad():
                a = actor(torch.as_tensor(obs, dtype=torch.float32)[None])[0].numpy()
            return np.clip(a + rng.normal(0, noise, a.shape) * half, low, high).astype(np.float32)

        source = f"states visited by the run's actor (exploration noise {noise}) at step "
        source += str(state["counters"]["step"])
        info = {"state": args.state, "state_step": state["counters"]["step"]}
    else:
        overrides = [f"world_model.kind={args.kind}", *args.set]
        try:
            cfg = load_config(ROOT / "configs" / "halfcheetah.yaml", overrides)
        except ConfigError as err:
            parser.error(str(err))
        env = make_env(cfg.env.id, cfg.env.kwargs)
        low, high = env.action_space.low, env.action_space.high

        def policy(obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
            return rng.uniform(low, high).astype(np.float32)

        data = collect(env, args.random_steps, policy, rng, args.seed)
        model, metrics = train_model_on_random_data(cfg, data, args.train_steps, args.seed)
        source = "states visited by a uniformly random policy, at random actions"
        info = {
            "model": (
                f"trained here for {args.train_steps} gradient steps on {args.random_steps} "
                f"random-policy transitions (configs/halfcheetah.yaml world_model, kind "
                f"{args.kind}{', ' + ', '.join(args.set) if args.set else ''})"
            ),
            "overrides": args.set,
            "model_training": metrics,
            "train_seconds": time.time() - t0,
        }
    print(source)

    # measured states: a fresh trajectory (seed + 1), every 5th step
    rec = collect(env, 5 * args.states, policy, rng, args.seed + 1)
    pick = range(0, 5 * args.states, 5)
    sims = [rec["sim"][i] for i in pick]
    obs = torch.as_tensor(np.asarray([rec["obs"][i] for i in pick]), dtype=torch.float32)
    action = torch.as_tensor(np.asarray([rec["action"][i] for i in pick]), dtype=torch.float32)
    replay = max(
        float(np.abs(step_from(env, rec["sim"][i], rec["action"][i])[0] - rec["next_obs"][i]).max())
        for i in pick
    )
    print(f"restored simulator states replay the recorded steps to {replay:.1e}")
    j_env, r_env, j_env_fine, j_env10 = [], [], [], []
    for sim, a in zip(sims, action.numpy(), strict=True):
        j, r = env_jacobian(env, sim, a, args.eps, low, high)
        j_env.append(j)
        r_env.append(r)
        j_env_fine.append(env_jacobian(env, sim, a, args.eps / 10, low, high)[0])
        j_env10.append(env_jacobian(env, sim, a, 10 * args.eps, low, high)[0])
    j_env, r_env = np.stack(j_env), np.stack(r_env)
    j_env_fine, j_env10 = np.stack(j_env_fine), np.stack(j_env10)
    jac, r_jac, j_fd, r_fd = (x.numpy() for x in model_jacobians(model, obs, action, args.eps))
    _, _, j_fd10, r_fd10 = (x.numpy() for x in model_jacobians(model, obs, action, 10 * args.eps))
    j_mean = np.broadcast_to(j_env.mean(0), j_env.shape)
    r_mean = np.broadcast_to(r_env.mean(0), r_env.shape)
    std = model.target_normalizer.var[: obs.shape[1]].sqrt().numpy()[None, :, None]

    def norm_ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.linalg.norm(a.reshape(len(a), -1), axis=1) / np.linalg.norm(
            b.reshape(len(b), -1), axis=1
        )

    per_state = {
        "cos_dsda_raw": cosine(jac, j_env),
        "cos_dsda_normalised": cosine(jac / std, j_env / std),
        "cos_drda": cosine(r_jac, r_env),
        "norm_ratio_dsda_raw": norm_ratio(jac, j_env),
        # the forward response: what dreams see when the action changes, step eps and 10 eps
        "model_fd_norm_ratio_dsda_raw": norm_ratio(j_fd, j_env),
        "model_fd10_norm_ratio_dsda_raw": norm_ratio(j_fd10, j_env10),
        "model_fd10_vs_env_fd10_cos_dsda_raw": cosine(j_fd10, j_env10),
        "model_fd10_vs_env_fd10_centred_cos_dsda_normalised": cosine(
            (j_fd10 - j_fd10.mean(0)) / std, (j_env10 - j_env10.mean(0)) / std
        ),
        "model_fd_cos_dsda_raw": cosine(j_fd, j_env),
        "model_fd_cos_dsda_normalised": cosine(j_fd / std, j_env / std),
        "model_fd_cos_drda": cosine(r_fd, r_env),
        "model_fd10_cos_dsda_raw": cosine(j_fd10, j_env),
        "model_fd10_cos_dsda_normalised": cosine(j_fd10 / std, j_env / std),
        "model_fd10_cos_drda": cosine(r_fd10, r_env),
        "surrogate_vs_model_fd_cos_dsda_normalised": cosine(jac / std, j_fd / std),
        "surrogate_vs_model_fd10_cos_dsda_normalised": cosine(jac / std, j_fd10 / std),
        "centred_cos_dsda_normalised": cosine(
            (jac - jac.mean(0)) / std, (j_env - j_env.mean(0)) / std
        ),
        "baseline_mean_env_jacobian_cos_dsda_raw": cosine(j_mean, j_env),
        "baseline_mean_env_jacobian_cos_dsda_normalised": cosine(j_mean / std, j_env / std),
        "baseline_mean_env_jacobian_cos_drda": cosine(r_mean, r_env),
        "env_fd_eps_vs_eps_over_10_cos_dsda_raw": cosine(j_env, j_env_fine),
    }
    result = {
        **result_header("model_jacobian", threads=1),
        "env": env.spec.id,
        "states_source": source,
        **info,
        "states": len(sims),
        "eps": args.eps,
        "replay_check_max_abs_error": replay,
        "summary": {k: summary(v) for k, v in per_state.items()},
        "per_state": {k: [round(float(x), 5) for x in v] for k, v in per_state.items()},
        "seconds": time.time() - t0,
    }
    for k, v in result["summary"].items():
        print(f"{k:45s} " + "  ".join(f"{n} {x:+.3f}" for n, x in v.items()))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.out, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
