"""Dream fidelity: how far a run's dreams are from what the real env would have done.

Loads a dreaming run's training state, draws start states from its real buffer as the dreamer
does, and rolls out ``--horizon`` steps twice: in the world model (the dreamer's own
:meth:`Dreamer.imagine_step`: actor + exploration noise, a random elite per transition) and in
the real MuJoCo env set to the same start state, applying the same actions. The env state is
rebuilt from the observation (the excluded x/y positions set to 0, which the dynamics and the
velocity-based rewards do not depend on), so this works for the locomotion envs whose
observation is ``qpos[k:] ++ qvel`` (HalfCheetah, Hopper, Walker2d, Ant without contact forces).

Per rollout step ``h`` it reports the dream's error against the real outcome (MSE of the state in
observation-normaliser units, reward bias and MAE, penalised-reward bias), the uncertainty, the
Spearman correlation between uncertainty and state error, the fraction the filter would keep
at the run's current threshold, and what a calibrated threshold would keep (step-0 threshold at
the ``target_acceptance`` quantile of the step-0 uncertainties, decayed per step, branches
stopped at their first rejection, as ``dreaming.calibrate_threshold`` does) with its errors.
It also reports what the errors do to the critic: its TD target computed from the dream's
``(s', r - lambda*u)`` against the real ``(s', r)`` (TD3's ``r + gamma * min Q'(s', pi'(s'))``
of the run's target networks, no smoothing noise; SAC's ``r + gamma * (min Q'(s', a') -
alpha log pi(a'|s'))`` with ``a'`` drawn with the same noise for both next states), next to the
critic's own TD error on the real transitions ``|y_real - Q_1(s, a)|``: the noise a dream adds
to a critic target, in units of the critic's current error:

    python benchmarks/dream_fidelity.py --run benchmarks/runs/halfcheetah_dreaming_100000_s0 \\
        --step 50000 --out benchmarks/results/dream_fidelity_halfcheetah_s0_50k.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from world_model import spearman

from spiking_dreamer.agent import SAC, TwinQCritic, build_agent, build_policy
from spiking_dreamer.arguments import existing_dir, int_in, output_file, positive_int, seed_int
from spiking_dreamer.buffers import Batch, ReplayBuffer
from spiking_dreamer.config_loading import config_from_dict
from spiking_dreamer.dreaming import DreamEngine
from spiking_dreamer.envs import make_env
from spiking_dreamer.errors import CheckpointError
from spiking_dreamer.files import atomic_write_json
from spiking_dreamer.provenance import result_header
from spiking_dreamer.training.checkpoint import load_state_file, read_state


def set_env_state(env: gym.Env, obs: np.ndarray) -> None:
    """Put the MuJoCo env in the state that produced ``obs`` (excluded positions = 0)."""
    u = env.unwrapped
    nq, nv = u.model.nq, u.model.nv
    k = nq + nv - obs.shape[0]
    if k < 0:
        raise ValueError(f"observation of size {obs.shape[0]} is not qpos[k:] ++ qvel")
    qpos = np.concatenate([np.zeros(k), obs[: nq - k]])
    u.set_state(qpos, obs[nq - k : nq - k + nv])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=existing_dir, required=True, help="a dreaming run directory")
    parser.add_argument(
        "--step", type=int_in(0), help="the state saved at this env step (else newest)"
    )
    parser.add_argument("--starts", type=positive_int, default=256)
    parser.add_argument("--horizon", type=positive_int, default=5)
    parser.add_argument("--seed", type=seed_int, default=0)
    parser.add_argument(
        "--member",
        "--transition",  # its older name, with "sample" for random_elite
        choices=["random_elite", "elite_mean", "sample"],
        help="dreaming.member to dream with (default: the run's)",
    )
    parser.add_argument("--out", type=output_file, required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)

    ckpt = Path(args.run) / "checkpoints" / "state.pt"
    if args.step is None:
        try:
            state = load_state_file(ckpt)[0]
        except CheckpointError as e:
            parser.error(f"--run {args.run}: {e}")
    else:
        found = [
            s
            for p in (ckpt, ckpt.with_name("state.pt.prev"))
            if p.exists() and (s := read_state(p))["counters"]["step"] == args.step
        ]
        if not found:
            print(f"no state at step {args.step} in {ckpt.parent}", file=sys.stderr)
            return 2
        state = found[0]
    cfg = config_from_dict(state["config"], f"{ckpt} (stored config)")
    if args.member:
        member = "random_elite" if args.member == "sample" else args.member
        cfg = cfg.replace(dreaming={"member": member})
    if state["dreaming"] is None:
        parser.error(f"--run {args.run}: not a dreaming run")
    env = make_env(state["env"]["id"], cfg.env.kwargs)
    obs_dim, act_dim = state["env"]["obs_dim"], state["env"]["act_dim"]
    low = torch.as_tensor(env.action_space.low)
    high = torch.as_tensor(env.action_space.high)
    actor = build_policy(obs_dim, low, high, cfg)
    critic = TwinQCritic(obs_dim, act_dim, cfg.critic.hidden_sizes)
    target_noise = torch.Generator().manual_seed(args.seed + 1)  # apart from the dreamer's
    agent = build_agent(cfg, actor, critic, torch.Generator().manual_seed(args.seed))
    agent.load_state_dict({**state, "num_updates": state["counters"]["num_updates"]})
    actor.eval()

    def td_target(
        next_obs: torch.Tensor, reward: torch.Tensor, done: torch.Tensor, eps: torch.Tensor
    ) -> torch.Tensor:
        """The critic's target ``[N]``: TD3's ``r + gamma (1 - done) min_i Q'_i(s', pi'(s'))``
        (no smoothing noise), SAC's own with ``eps`` the noise of its sampled next action."""
        if isinstance(agent, SAC):
            batch = Batch(next_obs, torch.zeros_like(eps), reward, next_obs, done.float())
            return agent.critic_target_value(batch, eps=eps)
        next_q = agent.critic_target(norm(next_obs), agent.actor_target(next_obs)).min(0).values
        return reward + cfg.td3.gamma * (1.0 - done.float()) * next_q

    generator = torch.Generator().manual_seed(args.seed)

    engine = DreamEngine(cfg, env.spec.id, obs_dim, act_dim, actor, torch.device("cpu"), generator)
    engine.load_state_dict(state["dreaming"])
    engine.generator.manual_seed(args.seed)
    real = ReplayBuffer(state["buffer"]["capacity"], obs_dim, act_dim, torch.device("cpu"))
    real.load_state_dict(state["buffer"])
    dreamer, dc = engine.dreamer, cfg.dreaming

    idx = torch.randint(len(real), (args.starts,), generator=generator)
    dream_obs = real.obs[idx]
    true_obs = dream_obs.numpy().astype(np.float64)
    norm = actor.obs_normalizer
    env.reset(seed=args.seed)
    # self-check: replaying the stored real transitions from the rebuilt states
    recon, recon_r = 0.0, 0.0
    for i in idx.tolist():
        set_env_state(env, real.obs[i].numpy().astype(np.float64))
        o, r, *_ = env.step(real.action[i].numpy())
        recon = max(recon, float(np.abs(o - real.next_obs[i].numpy()).max()))
        recon_r = max(recon_r, abs(r - real.reward[i].item()))
    print(f"rebuilt env states replay the stored transitions to {recon:.2e} (reward {recon_r:.2e})")
    rows = []
    alive = torch.ones(len(idx), dtype=torch.bool)  # branches the calibrated filter keeps
    calibrated = None
    with torch.no_grad():
        for h in range(args.horizon):
            (action, next_obs, reward, u, _), done = dreamer.imagine_step(dream_obs)
            if calibrated is None:
                calibrated = torch.quantile(u, dc.target_acceptance).item()
            alive = alive & (u <= calibrated * dc.threshold_decay**h)
            true_next, true_r = np.empty_like(true_obs), np.empty(len(true_obs))
            true_done = np.empty(len(true_obs), dtype=bool)
            for i in range(len(true_obs)):
                set_env_state(env, true_obs[i])
                o, r, terminated, *_ = env.step(action[i].numpy())
                true_next[i], true_r[i], true_done[i] = o, r, terminated
            t_next = torch.as_tensor(true_next, dtype=torch.float32)
            err = ((norm(next_obs) - norm(t_next)) ** 2).mean(-1)
            r_err = reward - torch.as_tensor(true_r, dtype=torch.float32)
            threshold = dreamer.threshold * dc.threshold_decay**h
            t_r = torch.as_tensor(true_r, dtype=torch.float32)
            eps = torch.randn(action.shape, generator=target_noise)  # both targets: common noise
            y_real = td_target(t_next, t_r, torch.as_tensor(true_done), eps)
            y_err = td_target(next_obs, reward - dc.penalty * u, done, eps) - y_real
            t_obs = torch.as_tensor(true_obs, dtype=torch.float32)
            td_real = (y_real - critic(norm(t_obs), action)[0]).abs()
            rows.append(
                {
                    "h": h + 1,
                    "state_mse_normalised": err.mean().item(),
                    "state_mse_median": err.median().item(),
                    "reward_bias": r_err.mean().item(),
                    "reward_mae": r_err.abs().mean().item(),
                    "penalised_reward_bias": (r_err - dc.penalty * u).mean().item(),
                    "true_reward_mean": float(true_r.mean()),
                    "uncertainty_mean": u.mean().item(),
                    "spearman_u_state_error": spearman(u.numpy(), err.numpy()),
                    "kept_at_threshold": (u <= threshold).float().mean().item(),
                    "kept_calibrated": alive.float().mean().item(),
                    "state_mse_kept_calibrated": err[alive].mean().item(),
                    "reward_bias_kept_calibrated": r_err[alive].mean().item(),
                    "reward_mae_kept_calibrated": r_err[alive].abs().mean().item(),
                    "td_target_bias": y_err.mean().item(),
                    "td_target_mae": y_err.abs().mean().item(),
                    "critic_td_error_real_mae": td_real.mean().item(),
                    "q_real_target_mean": y_real.mean().item(),
                }
            )
            rows[-1] = {k: None if v != v else v for k, v in rows[-1].items()}  # NaN: none kept
            print(json.dumps(rows[-1]))
            dream_obs, true_obs = next_obs, true_next

    result = {
        **result_header("dream_fidelity"),
        "run": str(args.run),
        "state_step": state["counters"]["step"],
        "model_version": state["dreaming"]["version"],
        "threshold": dreamer.threshold,
        "calibrated_threshold": calibrated,
        "dreaming": cfg.to_dict()["dreaming"],
        "starts": args.starts,
        "replay_check_max_abs_error": {"next_obs": recon, "reward": recon_r},
        "per_step": rows,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
