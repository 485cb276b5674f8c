"""Small builders shared by the tests."""

from __future__ import annotations

import torch

from spiking_dreamer.agent import TD3, PopSpikingActor, TwinQCritic
from spiking_dreamer.config import ActorConfig, TD3Config

TINY_ACTOR = ActorConfig(hidden_sizes=(16,), spike_ts=2, encoder_pop_dim=4, decoder_pop_dim=3)


def tiny_td3(
    obs_dim: int = 3,
    act_dim: int = 2,
    seed: int = 0,
    td3: TD3Config | None = None,
    action_high: float = 1.0,
) -> TD3:
    torch.manual_seed(seed)
    high = torch.full((act_dim,), action_high)
    actor = PopSpikingActor(obs_dim, -high, high, TINY_ACTOR)
    critic = TwinQCritic(obs_dim, act_dim, (16, 16))
    return TD3(actor, critic, td3 or TD3Config(), torch.Generator().manual_seed(seed))


TINY_SETTINGS = [
    "actor.hidden_sizes=[16]",
    "actor.spike_ts=2",
    "critic.hidden_sizes=[16, 16]",
    "td3.batch_size=16",
    "train.start_steps=50",
    "train.update_after=25",
    "train.eval_every=50",
    "train.eval_episodes=1",
    "log.log_every=25",
    "log.progress=false",
    "log.tensorboard=false",
    "env.kwargs={max_episode_steps: 25}",
]
"""``--set`` overrides for a CLI run of seconds (no world model settings: baseline arms)."""
TINY_ARGS = [a for s in TINY_SETTINGS for a in ("--set", s)]
