"""PopSAN actor: bounds, gradients, determinism, normalised input pipeline."""

from __future__ import annotations

import pytest
import torch

from spiking_dreamer.agent import PopSpikingActor
from spiking_dreamer.config import ActorConfig

from .helpers import TINY_ACTOR


def _actor(cfg: ActorConfig = TINY_ACTOR, low: float = -0.4, high: float = 1.2) -> PopSpikingActor:
    torch.manual_seed(0)
    return PopSpikingActor(3, torch.full((2,), low), torch.full((2,), high), cfg)


def test_actions_within_asymmetric_bounds_for_extreme_inputs() -> None:
    actor = _actor()
    with torch.no_grad():
        for p in actor.decoder.parameters():
            p.mul_(100)  # saturate the tanh
        a = actor(torch.randn(64, 3) * 100)
    assert a.shape == (64, 2)
    assert a.min() >= -0.4 - 1e-6
    assert a.max() <= 1.2 + 1e-6


def test_gradient_reaches_every_parameter() -> None:
    actor = _actor(ActorConfig(hidden_sizes=(32, 32), spike_ts=5, v_threshold=0.1))
    actor.obs_normalizer.update(torch.randn(100, 3))
    actor(torch.randn(256, 3)).square().sum().backward()
    for name, p in actor.named_parameters():
        assert p.grad is not None, name
        assert p.grad.abs().sum() > 0, name


def test_deterministic_encoding_gives_identical_actions() -> None:
    actor = _actor()
    x = torch.randn(5, 3)
    assert torch.equal(actor(x), actor(x))


def test_bernoulli_encoding_is_driven_by_the_generator() -> None:
    actor = _actor(ActorConfig(hidden_sizes=(16,), spike_ts=3, encoding="bernoulli"))
    x = torch.randn(8, 3)
    a1 = actor(x, torch.Generator().manual_seed(1))
    a2 = actor(x, torch.Generator().manual_seed(1))
    assert torch.equal(a1, a2)


def test_observations_are_normalised_and_clipped_inside_the_actor() -> None:
    actor = _actor(ActorConfig(hidden_sizes=(16,), spike_ts=2, obs_clip=3.0))
    actor.obs_normalizer.update(torch.randn(1000, 3) * 10 + 50)
    trains = actor.spike_trains(torch.full((1, 3), 1e6))
    far = actor.spike_trains(torch.full((1, 3), 1e9))
    assert all(torch.equal(a, b) for a, b in zip(trains, far, strict=True))  # both clip at +3
    assert [t.shape[-1] for t in trains] == [3 * 10, 16, 2 * 10]


def test_state_dict_carries_the_normaliser() -> None:
    actor = _actor()
    actor.obs_normalizer.update(torch.randn(10, 3) + 7)
    keys = actor.state_dict().keys()
    assert {"obs_normalizer.mean", "obs_normalizer.m2", "obs_normalizer.count"} <= set(keys)


@pytest.mark.slow
def test_compiled_acting_path_matches_eager() -> None:
    """``train.compile`` swaps in ``torch.compile(actor)`` for acting: same actions."""
    import numpy as np

    from spiking_dreamer.agent import TD3, TwinQCritic
    from spiking_dreamer.config import TD3Config

    actor = _actor(ActorConfig(hidden_sizes=(32, 32), spike_ts=5))
    actor.obs_normalizer.update(torch.randn(100, 3))
    agent = TD3(actor, TwinQCritic(3, 2, (8,)), TD3Config(), torch.Generator())
    obs = [np.random.default_rng(i).normal(size=3).astype(np.float32) for i in range(20)]
    eager = [agent.act(o) for o in obs]
    agent.compile()
    compiled = [agent.act(o) for o in obs]
    for a, b in zip(eager, compiled, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)
