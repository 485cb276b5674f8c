"""Dreaming: uncertainty metrics, horizon-adaptive filtering, pessimistic rewards, termination,
non-finite guards, action bounds, the adaptive threshold, start states, the dream buffer and the
engine's real/dream batch mixing.

The dreamer runs against a hand-controlled fake ensemble. Observations are ``[key, free]``:

* every member moves ``key`` by ``key_step`` (0 by default, so ``key`` is constant along a branch)
  and predicts the reward ``10 + key``;
* member ``e`` moves ``free`` by ``offsets[e] * key``. With elites ``0, 2`` at offsets ``-1, +1``
  the elites' predicted state changes are ``(key_step, -key)`` and ``(key_step, +key)``, so the
  ``variance`` uncertainty of a state is exactly ``key**2 / 2`` and ``max_deviation`` is
  ``|key|``; member 1 (offset 7) is not an elite and must never count nor be sampled.

With un-updated normalisers (identity in float32) and dyadic keys, every value below is exact.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from spiking_dreamer.agent import PopSpikingActor
from spiking_dreamer.buffers import Batch, ReplayBuffer
from spiking_dreamer.config import Config, DreamingConfig
from spiking_dreamer.dreaming import DreamBuffer, DreamEngine, Dreamer, uncertainty
from spiking_dreamer.dreaming.dreamer import rollout_horizon
from spiking_dreamer.world_model import EnsembleDynamicsModel, Prediction

from .helpers import TINY_ACTOR

LOW = (-0.4, 2.0)
HIGH = (1.2, 3.0)
OBS_DIM, ACT_DIM = 2, 2

Corrupt = Callable[[Tensor, Tensor], Tensor]


class FakeModel(EnsembleDynamicsModel):
    """Deterministic ensemble whose member means are chosen by hand (see the module docstring).

    ``corrupt(mean [E, B, 3], key [B]) -> mean`` may inject non-finite values; ``logvar`` (per
    member, ``[E, 3]``) turns it into a Gaussian head with fixed log-variances.
    """

    def __init__(
        self,
        offsets: tuple[float, ...] = (-1.0, 7.0, 1.0),
        elites: tuple[int, ...] = (0, 2),
        key_step: float = 0.0,
        corrupt: Corrupt | None = None,
        logvar: Tensor | None = None,
    ) -> None:
        super().__init__(OBS_DIM, ACT_DIM, len(offsets), len(elites), logvar is not None)
        self.elites = torch.tensor(elites)
        self.register_buffer("offsets", torch.tensor(offsets))
        self.key_step, self.corrupt, self.fixed_logvar = key_step, corrupt, logvar
        self.inputs: list[Tensor] = []

    def forward_normalized(
        self, x: Tensor, members: Tensor | None = None
    ) -> tuple[Tensor, Tensor | None]:
        assert x.dim() == 2, "predict() feeds one shared input [B, in]"
        assert members is None, "a dream phase predicts with every member"
        self.inputs.append(x.clone())
        key = x[:, 0]
        e, b = self.ensemble_size, key.shape[0]
        mean = torch.stack(
            [
                torch.full((e, b), self.key_step),
                self.offsets[:, None] * key[None, :],
                (10.0 + key).expand(e, b),
            ],
            -1,
        )
        if self.corrupt is not None:
            mean = self.corrupt(mean, key)
        if self.fixed_logvar is None:
            return mean, None
        return mean, self.fixed_logvar[:, None, :].expand(e, b, self.out_dim).clone()


class FakeActor(nn.Module):
    """Deterministic actor inside ``[LOW, HIGH]`` that records the observations it is given."""

    def __init__(self, nan_keys: tuple[float, ...] = ()) -> None:
        super().__init__()
        low, high = torch.tensor(LOW), torch.tensor(HIGH)
        self.register_buffer("action_scale", (high - low) / 2)
        self.register_buffer("action_bias", (high + low) / 2)
        self.nan_keys = nan_keys
        self.calls: list[Tensor] = []
        self.generators: list[torch.Generator | None] = []

    def forward(self, obs: Tensor, generator: torch.Generator | None = None) -> Tensor:
        self.calls.append(obs.clone())
        self.generators.append(generator)
        action = self.action_bias + self.action_scale * torch.tanh(0.3 * obs[:, :1] - 0.1)
        for k in self.nan_keys:
            action[obs[:, 0] == k] = float("nan")
        return action


def real_buffer(keys: list[float], capacity: int | None = None) -> ReplayBuffer:
    """Real buffer with one transition per key: obs ``[key, 0]``, reward 1."""
    buf = ReplayBuffer(capacity or len(keys), OBS_DIM, ACT_DIM)
    for k in keys:
        buf.add(np.array([k, 0.0]), np.zeros(ACT_DIM), 1.0, np.array([k, 0.0]), False)
    return buf


def never(obs: Tensor, action: Tensor, next_obs: Tensor) -> Tensor:
    return torch.zeros(next_obs.shape[0], dtype=torch.bool)


def dcfg(**kw: object) -> DreamingConfig:
    base: dict[str, object] = {
        "rollout_batch": 32,
        "horizon": 3,
        "threshold": 1e9,
        "threshold_decay": 1.0,
        "adaptive_threshold": False,
        "min_accept_quantile": 0.0,
        "exploration_noise": 0.0,
        "penalty": 0.0,
        "uncertainty_members": "elites",
    }
    base.update(kw)
    return DreamingConfig(**base)  # type: ignore[arg-type]


def run_phase(
    cfg: DreamingConfig,
    keys: list[float],
    model: FakeModel | None = None,
    actor: FakeActor | None = None,
    term: Callable[[Tensor, Tensor, Tensor], Tensor] = never,
    seed: int = 0,
    capacity: int = 10_000,
    env_step: int = 0,
    model_version: int = 1,
) -> tuple[Dreamer, DreamBuffer, FakeActor, dict[str, float]]:
    model = model or FakeModel()
    actor = actor or FakeActor()
    dreamer = Dreamer(model, actor, term, cfg, torch.Generator().manual_seed(seed))
    dreams = DreamBuffer(capacity, OBS_DIM, ACT_DIM)
    stats = dreamer.phase(real_buffer(keys), dreams, env_step, model_version)
    return dreamer, dreams, actor, stats


def stored(dreams: DreamBuffer) -> Batch:
    return dreams.gather(torch.arange(len(dreams)))


def u_variance(key: Tensor) -> Tensor:
    return key.double() ** 2 / 2


def test_fake_model_normalisers_are_the_identity() -> None:
    model = FakeModel()
    for norm in (model.input_normalizer, model.target_normalizer):
        assert torch.equal(norm._scale, torch.ones(norm.dim))
        assert torch.equal(norm._shift, torch.zeros(norm.dim))
    pred = model.predict(torch.tensor([[1.5, 0.25]]), torch.zeros(1, ACT_DIM))
    assert pred.next_obs[:, 0].tolist() == [[1.5, -1.25], [1.5, 10.75], [1.5, 1.75]]
    assert uncertainty(pred, model.elites, "variance").tolist() == [1.5**2 / 2]


# --------------------------------------------------------------------------- 1. uncertainty()


def _prediction() -> Prediction:
    # members x rows x (2 state dims, reward); the reward column must never enter
    # variance / max_deviation
    mean = torch.tensor(
        [
            [[1.0, 2.0, 100.0], [0.0, 0.0, 1.0]],
            [[3.0, 5.0, -50.0], [30.0, 40.0, 2.0]],
            [[5.0, 2.0, 7.0], [0.0, 6.0, 3.0]],
        ]
    )
    sigma = torch.tensor(
        [
            [[2.0, 3.0, 6.0], [1.0, 2.0, 2.0]],  # norms 7, 3
            [[20.0, 20.0, 20.0], [0.5, 0.5, 0.5]],  # norms sqrt(1200), sqrt(0.75)
            [[1.0, 2.0, 10.0], [4.0, 4.0, 7.0]],  # norms sqrt(105), 9
        ]
    )
    zeros = torch.zeros(3, 2, 2)
    return Prediction(zeros, torch.zeros(3, 2), mean, 2 * sigma.log())


def test_uncertainty_variance_by_hand() -> None:
    pred = _prediction()
    # elites 0, 2: row 0 states [1,2], [5,2] -> variances [4, 0]; row 1 [0,0], [0,6] -> [0, 9]
    u = uncertainty(pred, torch.tensor([0, 2]), "variance")
    assert u.tolist() == pytest.approx([2.0, 4.5])
    # all three: row 0 var dims (8/3, 2); row 1 dim0 values 0, 30, 0 -> 200, dim1 0, 40, 6 ->
    # 8376/27
    u = uncertainty(pred, torch.arange(3), "variance")
    assert u.tolist() == pytest.approx([(8 / 3 + 2) / 2, (200 + 8376 / 27) / 2], rel=1e-6)


def test_uncertainty_max_deviation_by_hand() -> None:
    pred = _prediction()
    u = uncertainty(pred, torch.tensor([0, 2]), "max_deviation")
    assert u.tolist() == pytest.approx([2.0, 3.0])
    # all three: row 0 mean (3, 3): deviations (-2,-1), (0,2), (2,-1); row 1 mean (10, 46/3):
    # member 1 deviates by (20, 74/3)
    u = uncertainty(pred, torch.arange(3), "max_deviation")
    assert u.tolist() == pytest.approx([math.sqrt(5), math.hypot(20, 74 / 3)], rel=1e-6)


def test_uncertainty_max_std_by_hand() -> None:
    pred = _prediction()
    u = uncertainty(pred, torch.tensor([0, 2]), "max_std")  # reward std counts (sqrt(105) > 7)
    assert u.tolist() == pytest.approx([math.sqrt(105), 9.0], rel=1e-6)
    u = uncertainty(pred, torch.arange(3), "max_std")
    assert u.tolist() == pytest.approx([math.sqrt(1200), 9.0], rel=1e-6)


def test_uncertainty_rejects_max_std_without_logvar_and_unknown_kinds() -> None:
    pred = _prediction()._replace(logvar=None)
    with pytest.raises(ValueError, match="Gaussian"):
        uncertainty(pred, torch.arange(3), "max_std")
    with pytest.raises(ValueError, match="unknown"):
        uncertainty(_prediction(), torch.arange(3), "entropy")


# ------------------------------------------------------------- 2. horizon-adaptive filtering

# threshold 8 * 0.25**h: 8, 2, 0.5, 0.125, 0.03125 at h = 0..4; u = key**2 / 2 constant along a
# branch, so its length is the number of leading steps with u <= threshold_h.
EPS = 2.0**-10
BOUNDARY_LENGTHS = {
    4.0: 1,  # u = 8: accepted at equality, rejected at h = 1
    4.0 + EPS: 0,  # u just above 8
    4.0 - EPS: 1,
    -2.0: 2,  # u = 2
    2.0 + EPS: 1,
    1.0: 3,  # u = 0.5
    1.0 + EPS: 2,
    0.5: 4,  # u = 0.125
    0.5 + EPS: 3,
    0.25: 5,  # u = 0.03125 == threshold at the last step
    0.25 + EPS: 4,
    0.0: 5,
}


def test_transition_is_stored_iff_u_within_the_decayed_threshold() -> None:
    horizon, t0, decay = 5, 8.0, 0.25
    cfg = dcfg(rollout_batch=64, horizon=horizon, threshold=t0, threshold_decay=decay)
    keys = list(BOUNDARY_LENGTHS)
    dreamer, dreams, actor, stats = run_phase(cfg, keys, seed=3)
    starts = actor.calls[0][:, 0]
    lengths = torch.tensor([BOUNDARY_LENGTHS[k] for k in starts.tolist()])
    assert set(starts.tolist()) == set(keys)  # every boundary case was drawn
    # the rule itself, independent of the table above
    for k, n in BOUNDARY_LENGTHS.items():
        u = float(u_variance(torch.tensor(k, dtype=torch.float32)))
        assert n == next((h for h in range(horizon) if u > t0 * decay**h), horizon)

    data, offset = stored(dreams), 0
    assert len(dreams) == int(lengths.sum())
    assert stats["dream/accepted"] == len(dreams)
    assert stats["dream/acceptance"] == len(dreams) / sum(c.shape[0] for c in actor.calls)
    stepped = sum(int((lengths >= h).sum()) for h in range(horizon))  # rows attempted at each h
    assert stats["dream/imagined_per_start"] == stepped / 64
    for h in range(horizon):
        alive = lengths >= h  # attempted at step h
        kept = lengths > h
        if h < len(actor.calls):
            # exactly the branches that survived step h - 1 are rolled further, in order
            assert torch.equal(actor.calls[h][:, 0], starts[alive])
        else:
            assert not alive.any()
        n = int(kept.sum())
        seg = slice(offset, offset + n)
        assert torch.equal(data.obs[seg, 0], starts[kept])
        assert (dreams.uncertainty[seg].double() <= t0 * decay**h).all()
        assert torch.equal(dreams.uncertainty[seg].double(), u_variance(starts[kept]))
        if h + 1 < len(actor.calls):
            # surviving branches continue from the stored predicted next state
            assert torch.equal(actor.calls[h + 1], data.next_obs[seg])
            assert not torch.equal(data.next_obs[seg], data.obs[seg])  # the state did move
        offset += n
    assert offset == len(dreams)
    assert dreamer.threshold == t0  # not adaptive


@pytest.mark.parametrize(("threshold", "accepted"), [(2.99, 0), (3.01, 16)])
def test_gaussian_head_max_std_filter_and_sampling(threshold: float, accepted: int) -> None:
    # elite sigmas (0.5, 0.5, 0.5) and (1, 2, 2): max ||sigma|| = 3; the non-elite's 10s never count
    sigma = torch.tensor([[0.5, 0.5, 0.5], [10.0, 10.0, 10.0], [1.0, 2.0, 2.0]])
    model = FakeModel(offsets=(0.0, 0.0, 0.0), logvar=2 * sigma.log())
    cfg = dcfg(rollout_batch=16, horizon=1, threshold=threshold, uncertainty="max_std")
    _, dreams, _, stats = run_phase(cfg, [1.0, 2.0], model)
    assert stats["dream/accepted"] == accepted
    assert stats["dream/uncertainty_max"] == pytest.approx(3.0, rel=1e-6)
    if accepted:
        data = stored(dreams)
        assert dreams.uncertainty[:accepted].tolist() == pytest.approx([3.0] * accepted, rel=1e-6)
        # the picked member's Gaussian is sampled: next states scatter around the common mean
        assert (data.next_obs[:, 0] != data.obs[:, 0]).all()
        assert (data.next_obs[:, 0] - data.obs[:, 0]).abs().max() < 2.0 * 6


def test_elite_mean_transition_averages_the_elites_without_sampling() -> None:
    # elites at offsets -1 and +3 (mean +1); the non-elite's 7 must not enter the mean; the
    # Gaussian head's log-variances must not add noise
    sigma = torch.tensor([[0.5, 0.5, 0.5], [10.0, 10.0, 10.0], [1.0, 2.0, 2.0]])
    model = FakeModel(offsets=(-1.0, 7.0, 3.0), logvar=2 * sigma.log())
    cfg = dcfg(rollout_batch=16, horizon=2, member="elite_mean")
    _, dreams, _, _ = run_phase(cfg, [1.0, -2.0, 0.5], model)
    data = stored(dreams)
    key = data.obs[:, 0]
    assert len(dreams) == 32
    assert torch.equal(data.next_obs[:, 0], key)
    assert torch.equal(data.next_obs[:, 1] - data.obs[:, 1], key)
    assert torch.equal(data.reward, 10.0 + key)
    assert DreamingConfig().member == "random_elite"  # the seed's (MBPO's) default


def test_rejected_branch_never_reappears() -> None:
    # keys 3 (u = 4.5) pass step 0 (threshold 5) and fail step 1 (threshold 2.5); key 1 passes all
    cfg = dcfg(rollout_batch=16, horizon=4, threshold=5.0, threshold_decay=0.5)
    _, dreams, actor, _ = run_phase(cfg, [3.0, 1.0], seed=1)
    data = stored(dreams)
    n3 = int((actor.calls[0][:, 0] == 3.0).sum())
    n1 = 16 - n3
    assert 0 < n3 < 16
    assert int((data.obs[:, 0] == 3.0).sum()) == n3  # only their step-0 transitions
    assert int((data.obs[:, 0] == 1.0).sum()) == 4 * n1
    assert int((actor.calls[1][:, 0] == 3.0).sum()) == n3  # attempted (and rejected) at h = 1
    assert all((c[:, 0] == 1.0).all() for c in actor.calls[2:])  # ... and never again


@pytest.mark.parametrize(
    ("step", "horizon"),
    [(0, 1), (100, 1), (150, 3), (175, 4), (199, 4), (200, 5), (10**6, 5)],
)
def test_mbpo_horizon_schedule_by_hand(step: int, horizon: int) -> None:
    # [a, b, h_a, h_b] = [100, 200, 1, 5]: floor(1 + (t - 100) / 100 * 4) between a and b
    assert rollout_horizon(dcfg(horizon=7, horizon_schedule=(100, 200, 1, 5)), step) == horizon
    assert rollout_horizon(dcfg(horizon=7), step) == 7  # no schedule: the fixed horizon


def test_phase_rolls_out_the_scheduled_horizon() -> None:
    cfg = dcfg(rollout_batch=8, horizon=5, horizon_schedule=(0, 100, 1, 4))
    _, dreams, actor, stats = run_phase(cfg, [1.0], env_step=50)  # floor(1 + 0.5 * 3) = 2
    assert stats["dream/horizon"] == 2.0
    assert len(actor.calls) == 2
    assert len(dreams) == 16  # every transition accepted, none terminated


def test_predict_chunk_splits_the_actor_and_model_forward_and_changes_no_dream() -> None:
    keys = [-1.5, 0.0, 0.5, 2.0, 3.25]
    cfg = dcfg(rollout_batch=32, horizon=2, exploration_noise=0.1)
    whole, chunked = FakeModel(), FakeModel()
    _, a, whole_actor, sa = run_phase(cfg, keys, model=whole)
    _, b, chunked_actor, sb = run_phase(replace(cfg, predict_chunk=10), keys, model=chunked)
    assert [x.shape[0] for x in whole.inputs] == [32, 32]
    # 32 rows at most 10 at a time: 4 balanced pieces
    assert [x.shape[0] for x in chunked.inputs] == [8, 8, 8, 8] * 2
    assert [x.shape[0] for x in whole_actor.calls] == [32, 32]
    assert [x.shape[0] for x in chunked_actor.calls] == [8, 8, 8, 8] * 2
    assert sa == sb
    for x, y in zip(stored(a), stored(b), strict=True):
        assert torch.equal(x, y)


def test_predict_chunk_must_not_be_negative() -> None:
    with pytest.raises(ValueError, match=r"dreaming\.predict_chunk"):
        dcfg(predict_chunk=-1)


# --------------------------------------------------------- 3. pessimistic reward, provenance


@pytest.mark.parametrize(
    ("kind", "u_fn"),
    [("variance", lambda k: k**2 / 2), ("max_deviation", lambda k: k.abs())],
)
def test_pessimistic_reward_and_provenance(kind: str, u_fn: Callable[[Tensor], Tensor]) -> None:
    cfg = dcfg(horizon=2, penalty=0.75, uncertainty=kind)
    keys = [-1.5, 0.0, 0.5, 2.0, 3.25]
    dreamer, dreams, _, _ = run_phase(cfg, keys, env_step=12_345, model_version=7)
    n1 = len(dreams)
    dreamer.phase(real_buffer(keys), dreams, 20_000, 8)
    data = stored(dreams)
    key = data.obs[:, 0]
    u = u_fn(key)
    assert torch.equal(dreams.uncertainty[: len(dreams)], u)
    assert torch.equal(data.reward, (10.0 + key) - 0.75 * u)  # model reward 10 + key
    # one random elite (offset -1 or +1, never the non-elite's 7) supplies each transition
    moved = data.next_obs[:, 1] - data.obs[:, 1]
    nonzero = key != 0
    assert ((moved == key) | (moved == -key)).all()
    assert (moved[nonzero] == key[nonzero]).any()
    assert (moved[nonzero] == -key[nonzero]).any()
    assert (dreams.created_step[:n1] == 12_345).all()
    assert (dreams.model_version[:n1] == 7).all()
    assert (dreams.created_step[n1 : len(dreams)] == 20_000).all()
    assert (dreams.model_version[n1 : len(dreams)] == 8).all()
    assert len(dreams) == 2 * 32 * 2


def test_uncertainty_over_all_members_counts_the_non_elite() -> None:
    """With ``uncertainty_members: all`` (the default) the non-elite member (offset 7) enters u:
    free-dim changes (-k, 7k, k) have population variance 312 k^2 / 27, averaged over the two
    state dims (the key dim agrees) -> 52 k^2 / 9."""
    cfg = dcfg(horizon=1, uncertainty_members="all")
    keys = [1.0, 2.0, -0.5]
    _, dreams, _, _ = run_phase(cfg, keys)
    key = stored(dreams).obs[:, 0]
    torch.testing.assert_close(dreams.uncertainty[: len(dreams)], 52 * key**2 / 9)
    assert DreamingConfig().uncertainty_members == "all"


# ------------------------------------------------------------------------- 4. termination


def test_terminated_transitions_are_stored_and_end_their_branch() -> None:
    def beyond(obs: Tensor, action: Tensor, next_obs: Tensor) -> Tensor:
        return next_obs[:, 0] > 3.5

    cfg = dcfg(rollout_batch=40, horizon=6)
    model = FakeModel(key_step=1.0)
    _, dreams, actor, _ = run_phase(cfg, [0.0, 1.0, 2.0, 3.0, 5.0], model, term=beyond, seed=2)
    data = stored(dreams)
    assert torch.equal(data.terminated, (data.next_obs[:, 0] > 3.5).float())
    starts = actor.calls[0][:, 0]
    # a branch from key k <= 3 walks k -> k + 1 -> ... -> 4 (terminal); one from 5 ends at once
    expected = torch.where(starts <= 3, 4 - starts, torch.ones_like(starts))
    assert len(dreams) == int(expected.sum())
    assert int(data.terminated.sum()) == len(starts)  # each branch ends with one terminal step
    # nothing starts from a terminal next state (4 or 6) and rollouts stop when all ended
    assert not torch.isin(data.obs[:, 0], torch.tensor([4.0, 6.0])).any()
    assert 0.0 in starts.tolist()
    assert len(actor.calls) == 4  # the branches from 0 end at h = 3, then the phase stops
    for c in actor.calls[1:]:
        assert (c[:, 0] <= 3.5).all()


# ------------------------------------------------------------------------- 5. non-finite


def _corrupter(bad: dict[float, str]) -> Corrupt:
    def corrupt(mean: Tensor, key: Tensor) -> Tensor:
        mean = mean.clone()
        for k, how in bad.items():
            rows = key == k
            if how == "nan_state":  # every member's state change
                mean[:, rows, :2] = float("nan")
            elif how == "inf_reward":
                mean[:, rows, 2] = float("inf")
            elif how == "nan_one_elite":  # the other elite may be picked: u is still NaN
                mean[0, rows, 1] = float("nan")
            elif how == "neg_inf_key":
                mean[:, rows, 0] = -float("inf")
            elif how == "nan_non_elite":  # harmless: member 1 is not an elite
                mean[1, rows] = float("nan")
        return mean

    return corrupt


KINDS = ("nan_state", "inf_reward", "nan_one_elite", "neg_inf_key", "nan_non_elite")


def test_non_finite_predictions_never_enter_the_dream_buffer() -> None:
    rng = np.random.default_rng(0)
    horizon = 4
    for trial in range(25):
        key_states = range(10)
        bad = {float(k): str(rng.choice(KINDS)) for k in key_states if rng.random() < 0.3}
        harmful = {k for k, how in bad.items() if how != "nan_non_elite"}
        model = FakeModel(key_step=1.0, corrupt=_corrupter(bad))
        # threshold 12.5: keys above 5 (u = key**2 / 2) are rejected although finite
        cfg = dcfg(rollout_batch=24, horizon=horizon, penalty=0.5, threshold=12.5)
        _, dreams, actor, stats = run_phase(cfg, [0.0, 1.0, 2.0, 3.0, 4.0, 5.0], model, seed=trial)
        # a branch from k visits k, k+1, ..., k+3 and dies at its first harmful or too uncertain
        # key; only the harmful ones count as non-finite
        n_stored = n_discarded = 0
        for k in actor.calls[0][:, 0].tolist():
            path = [k + h for h in range(horizon)]
            end = next((i for i, s in enumerate(path) if s in harmful or s > 5), None)
            n_stored += horizon if end is None else end
            n_discarded += end is not None and path[end] in harmful
        assert stats["dream/discarded_nonfinite"] == n_discarded, (trial, bad)
        assert len(dreams) == n_stored, (trial, bad)
        for name in (*Batch._fields, "uncertainty"):
            assert torch.isfinite(getattr(dreams, name)).all(), (trial, name, bad)
        assert not torch.isin(stored(dreams).obs[:, 0], torch.tensor(sorted(harmful))).any()
        assert math.isfinite(stats["dream/uncertainty_mean"]) or n_stored == 0


def test_non_finite_actions_never_enter_the_dream_buffer() -> None:
    actor = FakeActor(nan_keys=(2.0,))
    _, dreams, _, stats = run_phase(dcfg(horizon=1), [1.0, 2.0], actor=actor)
    assert torch.isfinite(dreams.action).all()
    assert stats["dream/discarded_nonfinite"] == int((actor.calls[0][:, 0] == 2.0).sum())


# ---------------------------------------------------------------------------- 6. actions


def test_actor_sees_raw_buffer_observations_and_actions_respect_bounds() -> None:
    model = FakeModel(key_step=0.25)
    # non-identity normalisers: the actor must still see raw observations
    for norm, mean, var in (
        (model.input_normalizer, [100.0, 0.0, 0.0, 0.0], [4.0, 1.0, 1.0, 1.0]),
        (model.target_normalizer, [0.5, 0.0, 0.0], [4.0, 1.0, 1.0]),
    ):
        norm.count.fill_(1.0)
        norm.mean.copy_(torch.tensor(mean, dtype=torch.float64))
        norm.m2.copy_(torch.tensor(var, dtype=torch.float64))
        norm._refresh()
    keys = [100.0 + i for i in range(8)]
    real = real_buffer(keys)
    actor = FakeActor()
    cfg = dcfg(rollout_batch=48, horizon=2, exploration_noise=100.0)
    dreamer = Dreamer(model, actor, never, cfg, torch.Generator().manual_seed(0))
    dreams = DreamBuffer(1000, OBS_DIM, ACT_DIM)
    dreamer.phase(real, dreams, 0, 1)

    first = actor.calls[0]
    assert first.shape == (48, OBS_DIM)
    # each row is exactly one of the buffer's raw obs rows
    assert (first[:, None, :] == real.obs[None]).all(-1).any(-1).all()
    assert set(first[:, 0].tolist()) <= set(keys)
    assert torch.equal(model.inputs[0][:, :OBS_DIM], (first - torch.tensor([100.0, 0.0])) / 2)
    data = stored(dreams)
    assert torch.equal(data.obs[:48], first)
    # next state in raw units: key + 2 * 0.25 + 0.5, and step 1 acts on that raw state
    assert torch.equal(data.next_obs[:48, 0], first[:, 0] + 1.0)
    assert torch.equal(actor.calls[1], data.next_obs[:48])

    # bounds are recovered as bias -/+ scale in float32, which may differ from LOW/HIGH by an ulp
    low, high = torch.tensor(LOW), torch.tensor(HIGH)
    assert ((data.action >= low - 1e-6) & (data.action <= high + 1e-6)).all()
    for d in range(ACT_DIM):  # noise 100 saturates both bounds of both dims
        assert ((data.action[:, d] - low[d]).abs() < 1e-6).any()
        assert ((data.action[:, d] - high[d]).abs() < 1e-6).any()


def test_the_actor_draws_from_the_dreamers_generator() -> None:
    """A stochastic (Bernoulli) encoder in dreams must not draw from the global RNG, which
    the agent's own updates use."""
    actor, g = FakeActor(), torch.Generator().manual_seed(0)
    dreamer = Dreamer(FakeModel(), actor, never, dcfg(horizon=2), g)
    dreamer.phase(real_buffer([0.5, 1.0]), DreamBuffer(100, OBS_DIM, ACT_DIM), 0, 1)
    assert len(actor.generators) == 2
    assert all(gen is g for gen in actor.generators)


def test_without_noise_stored_actions_are_the_actors() -> None:
    _, dreams, actor, _ = run_phase(dcfg(horizon=2), [0.5, 1.0, -3.0])
    data = stored(dreams)
    expected = torch.cat([FakeActor()(c) for c in actor.calls])
    assert torch.equal(data.action, expected)


# -------------------------------------------------------------------- 7. adaptive threshold


def test_threshold_grows_at_zero_acceptance_until_dreams_are_accepted() -> None:
    cfg = dcfg(threshold=1.0, adaptive_threshold=True, adapt_rate=0.5, horizon=1)
    dreamer = Dreamer(FakeModel(), FakeActor(), never, cfg, torch.Generator().manual_seed(0))
    real, dreams = real_buffer([2.0]), DreamBuffer(100, OBS_DIM, ACT_DIM)  # u = 2
    history = []
    for _ in range(3):
        stats = dreamer.phase(real, dreams, 0, 1)
        history.append((stats["dream/acceptance"], stats["dream/threshold"]))
    assert history == [(0.0, 1.5), (0.0, 2.25), (1.0, 2.25 * 0.5)]
    assert len(dreams) == 32


@pytest.mark.parametrize(
    ("target", "factor"), [(0.5, 1.0), (0.45, 1.0), (0.55, 1.0), (0.7, 1.1), (0.3, 0.9)]
)  # within 0.1 of the target the threshold stays
def test_threshold_adapts_toward_target_acceptance(target: float, factor: float) -> None:
    # key 1.25: u = 0.78125 passes h = 0 (threshold 1) and fails h = 1 (0.5): acceptance 1/2
    cfg = dcfg(
        threshold=1.0,
        threshold_decay=0.5,
        horizon=2,
        adaptive_threshold=True,
        adapt_rate=0.1,
        target_acceptance=target,
    )
    dreamer, _, _, stats = run_phase(cfg, [1.25])
    assert stats["dream/acceptance"] == 0.5
    assert dreamer.threshold == pytest.approx(factor)
    assert stats["dream/threshold"] == dreamer.threshold


def test_all_accepted_lowers_the_threshold() -> None:
    cfg = dcfg(threshold=10.0, adaptive_threshold=True, adapt_rate=0.2)
    dreamer, _, _, stats = run_phase(cfg, [0.5, 1.0])
    assert stats["dream/acceptance"] == 1.0
    assert dreamer.threshold == pytest.approx(8.0)


@pytest.mark.parametrize("q", [0.1, 0.25, 0.6])
def test_quantile_floor_accepts_about_q_of_the_starts(q: float) -> None:
    keys = [float(k) for k in range(1, 17)]  # u from 0.5 to 128, all above 0.01
    cfg = dcfg(threshold=0.01, horizon=1, rollout_batch=64, min_accept_quantile=q)
    dreamer, dreams, actor, stats = run_phase(cfg, keys)
    u0 = (actor.calls[0][:, 0] ** 2) / 2
    floor = torch.quantile(u0, q).item()
    assert dreamer.threshold == pytest.approx(floor)
    assert stats["dream/accepted"] == int((u0 <= dreamer.threshold).sum())
    assert stats["dream/accepted"] >= math.floor(q * 63) + 1
    assert (dreams.uncertainty[: len(dreams)] <= dreamer.threshold).all()


def test_quantile_floor_never_lowers_the_threshold() -> None:
    cfg = dcfg(threshold=1e6, horizon=1, min_accept_quantile=0.5)
    dreamer, _, _, stats = run_phase(cfg, [1.0, 2.0, 3.0])
    assert dreamer.threshold == 1e6
    assert stats["dream/acceptance"] == 1.0


# ----------------------------------------------------------------------------- 8. start states


@pytest.mark.parametrize(
    ("n_added", "capacity", "window", "expected"),
    [
        (33, 20, 5, range(28, 33)),  # wrapped around: newest 5 are 28..32
        (40, 20, 20, range(20, 40)),  # wrapped exactly twice, window = whole buffer
        (12, 20, 5, range(7, 12)),  # not yet full
        (12, 20, 50, range(12)),  # window larger than the buffer
    ],
)
def test_recent_start_states_come_from_the_newest_window(
    n_added: int, capacity: int, window: int, expected: range
) -> None:
    real = real_buffer([1000.0 + i for i in range(n_added)], capacity)  # empty slots hold 0
    cfg = dcfg(rollout_batch=64, horizon=1, recent_fraction=1.0, recent_window=window)
    actor = FakeActor()
    dreamer = Dreamer(FakeModel(), actor, never, cfg, torch.Generator().manual_seed(4))
    dreamer.phase(real, DreamBuffer(100, OBS_DIM, ACT_DIM), 0, 1)
    drawn = set(actor.calls[0][:, 0].tolist())
    assert drawn <= {1000.0 + i for i in expected}
    if len(expected) <= 8:
        assert drawn == {1000.0 + i for i in expected}


def test_uniform_start_states_cover_only_stored_transitions() -> None:
    real = real_buffer([float(i) for i in range(1, 6)], capacity=50)  # slots 5.. are empty
    actor = FakeActor()
    cfg = dcfg(horizon=1, rollout_batch=64)
    dreamer = Dreamer(FakeModel(), actor, never, cfg, torch.Generator().manual_seed(0))
    dreamer.phase(real, DreamBuffer(100, OBS_DIM, ACT_DIM), 0, 1)
    assert set(actor.calls[0][:, 0].tolist()) == {1.0, 2.0, 3.0, 4.0, 5.0}


def test_recent_fraction_splits_the_start_states() -> None:
    real = real_buffer([float(i) for i in range(100)])
    cfg = dcfg(rollout_batch=40, horizon=1, recent_fraction=0.25, recent_window=3)
    actor = FakeActor()
    dreamer = Dreamer(FakeModel(), actor, never, cfg, torch.Generator().manual_seed(0))
    dreamer.phase(real, DreamBuffer(100, OBS_DIM, ACT_DIM), 0, 1)
    keys = actor.calls[0][:, 0]
    n_recent = int((keys >= 97).sum())  # round(0.25 * 40) = 10 recent starts plus chance hits
    assert 10 <= n_recent <= 13
    assert len(set(keys[keys < 97].tolist())) >= 20  # the rest spread over the whole buffer


# -------------------------------------------------------------------------- 9. dream buffer


def _dream_batch(markers: list[float]) -> tuple[Batch, Tensor]:
    m = torch.tensor(markers)
    batch = Batch(
        m[:, None].expand(-1, OBS_DIM),
        m[:, None].expand(-1, ACT_DIM),
        m,
        m[:, None].expand(-1, OBS_DIM) + 1,
        torch.zeros(len(markers)),
    )
    return batch, m * 10  # uncertainty encodes the marker too


@pytest.mark.parametrize("sizes", [(3, 4), (3, 4, 8), (8,), (5, 5), (2, 0, 9, 1)])
def test_add_dreams_keeps_the_newest_with_aligned_provenance(sizes: tuple[int, ...]) -> None:
    capacity = 5
    buf = DreamBuffer(capacity, OBS_DIM, ACT_DIM)
    marker, added = 0.0, []  # (marker, step, version) of every added transition, in order
    for call, n in enumerate(sizes):
        markers = [marker + i for i in range(n)]
        marker += n
        batch, u = _dream_batch(markers)
        buf.add_dreams(batch, u, env_step=100 + call, model_version=call)
        added += [(mk, 100 + call, call) for mk in markers]
    total = sum(sizes)
    assert len(buf) == min(total, capacity)
    # ring order: reading from the write position (oldest) round gives the newest in order
    if total >= capacity:
        order = [buf.reward[(buf.pos + i) % capacity].item() for i in range(capacity)]
    else:
        assert buf.pos == total
        order = buf.reward[:total].tolist()
    assert order == [m for m, _, _ in added[-capacity:]]
    newest = added[-capacity:]
    assert sorted(buf.reward[: len(buf)].tolist()) == [m for m, _, _ in newest]
    for i in range(len(buf)):
        mk = buf.reward[i].item()
        _, step, version = next(a for a in newest if a[0] == mk)
        assert buf.uncertainty[i].item() == mk * 10
        assert buf.obs[i].tolist() == [mk] * OBS_DIM
        assert buf.next_obs[i].tolist() == [mk + 1] * OBS_DIM
        assert buf.created_step[i].item() == step
        assert buf.model_version[i].item() == version


# ------------------------------------------------------------------------ 10. engine mixing


@pytest.fixture(scope="module")
def engine_parts() -> tuple[Config, PopSpikingActor]:
    cfg = Config().replace(
        world_model={
            "ensemble_size": 2,
            "num_elites": 1,
            "hidden_size": 8,
            "num_blocks": 1,
            "num_scales": 1,
            "spike_ts": 1,
            "pop_dim": 2,
        },
        dreaming={"buffer_size": 50, "real_ratio": 0.3},
        td3={"batch_size": 10},
    )
    actor = PopSpikingActor(17, -torch.ones(6), torch.ones(6), TINY_ACTOR)
    return cfg, actor


def _engine(cfg: Config, actor: PopSpikingActor) -> DreamEngine:
    return DreamEngine(cfg, "HalfCheetah-v5", 17, 6, actor, torch.device("cpu"), torch.Generator())


def _markers(n: int, value: float) -> Batch:
    return Batch(
        torch.zeros(n, 17),
        torch.zeros(n, 6),
        torch.full((n,), value),
        torch.zeros(n, 17),
        torch.zeros(n),
    )


def test_engine_mixes_real_and_dream_transitions(
    engine_parts: tuple[Config, PopSpikingActor],
) -> None:
    cfg, actor = engine_parts
    engine = _engine(cfg, actor)
    real = ReplayBuffer(30, 17, 6)
    real.add_batch(_markers(30, 1.0))
    g = torch.Generator().manual_seed(0)

    engine.buffer.add_dreams(_markers(6, -1.0), torch.zeros(6), 0, 1)  # 7 are needed
    assert not engine.active
    assert engine.sample(real, 10, g).reward.tolist() == [1.0] * 10

    engine.buffer.add_dreams(_markers(1, -1.0), torch.zeros(1), 0, 1)
    assert engine.active
    for _ in range(3):
        batch = engine.sample(real, 10, g)
        assert batch.reward.tolist() == [1.0] * 3 + [-1.0] * 7
        assert all(x.shape[0] == 10 for x in batch)


@pytest.mark.parametrize(("ratio", "n_real"), [(1.0, 10), (0.0, 0), (0.55, 6)])
def test_engine_real_ratio_extremes(
    engine_parts: tuple[Config, PopSpikingActor], ratio: float, n_real: int
) -> None:
    cfg, actor = engine_parts
    engine = _engine(cfg.replace(dreaming={"real_ratio": ratio}), actor)
    real = ReplayBuffer(30, 17, 6)
    real.add_batch(_markers(30, 1.0))
    engine.buffer.add_dreams(_markers(20, -1.0), torch.zeros(20), 0, 1)
    batch = engine.sample(real, 10, torch.Generator().manual_seed(0))
    assert batch.reward.tolist() == [1.0] * n_real + [-1.0] * (10 - n_real)
    assert engine.active == (n_real < 10)


def test_calibrated_threshold_starts_at_the_target_quantile_once() -> None:
    keys = [float(k) for k in range(1, 17)]
    cfg = dcfg(
        threshold=1e6, horizon=1, rollout_batch=64, calibrate_threshold=True, target_acceptance=0.25
    )
    dreamer, dreams, actor, stats = run_phase(cfg, keys)
    u0 = (actor.calls[0][:, 0] ** 2) / 2
    assert dreamer.calibrated
    assert dreamer.threshold == pytest.approx(torch.quantile(u0, 0.25).item())
    assert stats["dream/accepted"] == int((u0 <= dreamer.threshold).sum())
    # later phases keep adapting from there instead of recalibrating
    dreamer.threshold = 123.0
    dreamer.phase(real_buffer(keys), dreams, 2, 1)
    assert dreamer.threshold == 123.0


def test_threshold_is_absolute_without_calibration() -> None:
    cfg = dcfg(threshold=1e6, horizon=1, calibrate_threshold=False)
    dreamer, _, _, stats = run_phase(cfg, [1.0, 2.0, 3.0])
    assert not dreamer.calibrated
    assert dreamer.threshold == 1e6
    assert stats["dream/acceptance"] == 1.0


def test_the_shipped_filter_bounds_long_rollouts_by_its_target_acceptance() -> None:
    """The default filter (threshold, per-step decay, adaptation, quantile floor) at horizon
    25: a branch is rejected at most once, so a phase steps the model at most once more per
    start than it keeps, and keeps at most a / (1 - a) dreams per start at its acceptance a;
    the adaptation moves the threshold whenever a phase's a is over 0.1 off its target, so a
    stays near 0.6 and rollouts short whatever the horizon (docs/results.md, Ant's plan)."""
    cfg = DreamingConfig(rollout_batch=256, horizon=25, exploration_noise=0.0)
    keys = [0.05 * k for k in range(1, 41)]  # uncertainties spread over two decades
    dreamer = Dreamer(FakeModel(), FakeActor(), never, cfg, torch.Generator().manual_seed(0))
    real, dreams = real_buffer(keys), DreamBuffer(100_000, OBS_DIM, ACT_DIM)
    history = [dreamer.phase(real, dreams, 0, 1) for _ in range(150)]
    for stats in history:
        a = stats["dream/acceptance"]
        assert stats["dream/imagined_per_start"] <= stats["dream/mean_length"] + 1
        assert stats["dream/mean_length"] <= a / (1 - a) + 1e-9
    settled = [s["dream/acceptance"] for s in history[-100:]]
    assert abs(float(np.median(settled)) - cfg.target_acceptance) <= 0.1
    assert max(s["dream/imagined_per_start"] for s in history[-100:]) < 25 / 5
