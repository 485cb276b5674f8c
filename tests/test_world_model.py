"""Tests for the world-model ensembles (spiking and ANN), their trainer and the fused ALIF."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from spiking_dreamer.buffers import Batch, ReplayBuffer
from spiking_dreamer.config import WorldModelConfig
from spiking_dreamer.layers import EnsembleLinear
from spiking_dreamer.snn import (
    AdaptiveLIFParams,
    adaptive_lif_scan,
    adaptive_lif_scan_fused,
    make_surrogate,
)
from spiking_dreamer.world_model import (
    EnsembleDynamicsModel,
    GaussianMLPEnsemble,
    ModelTrainer,
    SpikingEnsembleModel,
)
from spiking_dreamer.world_model.base import split_rows

OBS, ACT = 3, 2
E, K = 3, 2  # ensemble size, elites


def tiny_cfg(**kw: object) -> WorldModelConfig:
    base: dict[str, object] = {
        "ensemble_size": E,
        "num_elites": K,
        "hidden_size": 16,
        "num_blocks": 2,
        "num_scales": 2,
        "spike_ts": 3,
        "pop_dim": 4,
        "batch_size": 32,
        "train_steps": 10,
        "holdout_every": 5,
    }
    base.update(kw)
    return WorldModelConfig(**base)  # type: ignore[arg-type]


def spiking(head: str = "deterministic", seed: int = 0, **kw: object) -> SpikingEnsembleModel:
    torch.manual_seed(seed)
    return SpikingEnsembleModel(OBS, ACT, tiny_cfg(head=head, **kw))


def ann(gaussian: bool = True, seed: int = 0) -> GaussianMLPEnsemble:
    torch.manual_seed(seed)
    return GaussianMLPEnsemble(OBS, ACT, E, K, (16, 16), gaussian=gaussian)


BUILDERS: dict[str, Callable[..., EnsembleDynamicsModel]] = {
    "spiking-det": lambda seed=0: spiking("deterministic", seed),
    "spiking-gauss": lambda seed=0: spiking("gaussian", seed),
    "ann-det": lambda seed=0: ann(gaussian=False, seed=seed),
    "ann-gauss": lambda seed=0: ann(gaussian=True, seed=seed),
}
ALL_MODELS = pytest.mark.parametrize("name", list(BUILDERS))


def random_buffer(
    n: int = 200, seed: int = 0, obs_dim: int = OBS, act_dim: int = ACT
) -> ReplayBuffer:
    g = torch.Generator().manual_seed(seed)
    obs = torch.randn(n, obs_dim, generator=g)
    action = torch.rand(n, act_dim, generator=g) * 2 - 1
    next_obs = obs + 0.1 * torch.randn(n, obs_dim, generator=g)
    reward = torch.randn(n, generator=g)
    buf = ReplayBuffer(n, obs_dim, act_dim)
    buf.add_batch(Batch(obs, action, reward, next_obs, torch.zeros(n)))
    return buf


def member_params(model: nn.Module) -> dict[str, Tensor]:
    """Parameters with a leading ensemble dimension ``E``."""
    return {n: p for n, p in model.named_parameters() if p.dim() >= 2 and p.shape[0] == E}


# --------------------------------------------------------------------------------------------
# 1. EnsembleLinear
# --------------------------------------------------------------------------------------------


def test_ensemble_linear_is_e_separate_affine_maps() -> None:
    layer = EnsembleLinear(4, 5, 6, generator=torch.Generator().manual_seed(0))
    assert layer.weight.shape == (4, 5, 6)
    assert layer.bias.shape == (4, 1, 6)
    x = torch.randn(4, 7, 5)
    out = layer(x)
    assert out.shape == (4, 7, 6)
    for e in range(4):
        expected = x[e] @ layer.weight[e] + layer.bias[e, 0]
        torch.testing.assert_close(out[e], expected)
        torch.testing.assert_close(out[e], F.linear(x[e], layer.weight[e].T, layer.bias[e, 0]))

    shared = torch.randn(7, 5)
    torch.testing.assert_close(layer(shared), layer(shared.expand(4, 7, 5)))
    for e in range(4):
        torch.testing.assert_close(layer(shared)[e], shared @ layer.weight[e] + layer.bias[e, 0])


def test_ensemble_linear_init_per_member_and_reproducible() -> None:
    a = EnsembleLinear(3, 8, 4, generator=torch.Generator().manual_seed(1))
    b = EnsembleLinear(3, 8, 4, generator=torch.Generator().manual_seed(1))
    c = EnsembleLinear(3, 8, 4, generator=torch.Generator().manual_seed(2))
    assert not torch.equal(a.weight[0], a.weight[1])
    assert not torch.equal(a.bias[0], a.bias[1])
    assert torch.equal(a.weight, b.weight)
    assert torch.equal(a.bias, b.bias)
    assert not torch.equal(a.weight, c.weight)
    bound = 1 / math.sqrt(8)
    assert a.weight.abs().max() <= bound
    assert a.bias.abs().max() <= bound
    assert a.weight.std() > 0.3 * bound  # actually spread over the range, not near zero


# --------------------------------------------------------------------------------------------
# 2. Ensemble independence
# --------------------------------------------------------------------------------------------


@ALL_MODELS
def test_member_zero_loss_only_touches_member_zero(name: str) -> None:
    model = BUILDERS[name]()
    x = torch.randn(E, 16, OBS + ACT)
    y = torch.randn(E, 16, OBS + 1)
    model.loss(x, y)[0].backward()
    params = member_params(model)
    assert any("log_tau_mem" in n for n in params) == name.startswith("spiking")
    for n, p in params.items():
        assert p.grad is not None, n
        assert p.grad[0].abs().sum() > 0, f"{n}: no gradient for member 0"
        assert torch.count_nonzero(p.grad[1:]) == 0, f"{n}: gradient leaked to other members"


@ALL_MODELS
def test_member_output_ignores_other_members_inputs(name: str) -> None:
    model = BUILDERS[name]()
    x = torch.randn(E, 16, OBS + ACT)
    mean, logvar = model.forward_normalized(x)
    x2 = x.clone()
    x2[1] = torch.randn(16, OBS + ACT) * 3
    mean2, logvar2 = model.forward_normalized(x2)
    assert torch.equal(mean[0], mean2[0])
    assert torch.equal(mean[2], mean2[2])
    assert not torch.equal(mean[1], mean2[1])
    if logvar is not None:
        assert logvar2 is not None
        assert torch.equal(logvar[0], logvar2[0])


# --------------------------------------------------------------------------------------------
# 3. Every parameter is optimised
# --------------------------------------------------------------------------------------------


@ALL_MODELS
def test_train_phase_updates_every_parameter(name: str) -> None:
    model = BUILDERS[name]()
    cfg = tiny_cfg(weight_decay=0.0, train_steps=10, holdout_every=5)  # no decay-only updates
    trainer = ModelTrainer(model, cfg, torch.Generator().manual_seed(0))
    owned = {id(p) for group in trainer.optimizer.param_groups for p in group["params"]}
    params = dict(model.named_parameters())
    assert owned == {id(p) for p in params.values()}
    before = {n: p.detach().clone() for n, p in params.items()}
    metrics = trainer.train_phase(random_buffer())
    assert metrics["model/train_steps"] == 10
    assert metrics["model/skipped_steps"] == 0
    unchanged = [n for n, p in params.items() if torch.equal(p.detach(), before[n])]
    assert unchanged == []
    assert set(trainer.optimizer.state) == set(params.values())


# --------------------------------------------------------------------------------------------
# 4. Shapes
# --------------------------------------------------------------------------------------------


@ALL_MODELS
def test_prediction_shapes(name: str) -> None:
    model = BUILDERS[name]()
    buf = random_buffer()
    data = buf.gather(torch.arange(len(buf)))
    model.fit_normalizers(data.obs, data.action, data.next_obs, data.reward)
    obs, action = torch.randn(9, OBS), torch.randn(9, ACT)
    pred = model.predict(obs, action)
    assert pred.next_obs.shape == (E, 9, OBS)
    assert pred.reward.shape == (E, 9)
    assert pred.mean.shape == (E, 9, OBS + 1)
    if model.gaussian:
        assert pred.logvar is not None
        assert pred.logvar.shape == (E, 9, OBS + 1)
    else:
        assert pred.logvar is None
    raw = model.target_normalizer.denormalize(pred.mean)
    torch.testing.assert_close(pred.next_obs, obs + raw[..., :OBS])
    torch.testing.assert_close(pred.reward, raw[..., OBS])


@ALL_MODELS
def test_forward_normalized_shared_and_per_member_inputs(name: str) -> None:
    model = BUILDERS[name]()
    x = torch.randn(6, OBS + ACT)
    mean, logvar = model.forward_normalized(x)
    mean_e, logvar_e = model.forward_normalized(x.expand(E, 6, OBS + ACT))
    assert mean.shape == mean_e.shape == (E, 6, OBS + 1)
    torch.testing.assert_close(mean, mean_e)
    if model.gaussian:
        assert logvar is not None
        assert logvar_e is not None
        assert logvar.shape == (E, 6, OBS + 1)
        torch.testing.assert_close(logvar, logvar_e)
    assert not torch.equal(mean[0], mean[1])  # members differ


# --------------------------------------------------------------------------------------------
# 5. Learning a simple system
# --------------------------------------------------------------------------------------------


def synthetic_buffer(n: int = 3000, seed: int = 0) -> ReplayBuffer:
    """O=2, A=1: s' = s + 0.1 a [1, -1] + 0.05 tanh(s), r = s_0 - a^2."""
    g = torch.Generator().manual_seed(seed)
    s = torch.randn(n, 2, generator=g)
    a = torch.rand(n, 1, generator=g) * 2 - 1
    s2 = s + 0.1 * a * torch.tensor([1.0, -1.0]) + 0.05 * torch.tanh(s)
    r = s[:, 0] - a[:, 0].square()
    buf = ReplayBuffer(n, 2, 1)
    buf.add_batch(Batch(s, a, r, s2, torch.zeros(n)))
    return buf


@pytest.mark.parametrize("name", ["spiking-det", "spiking-gauss", "ann-gauss"])
def test_models_learn_a_simple_system(name: str) -> None:
    cfg = tiny_cfg(
        hidden_size=16,
        batch_size=32,
        lr=3e-3,
        train_steps=300,
        holdout_every=50,
        patience=100,
        head="gaussian" if name.endswith("gauss") else "deterministic",
    )
    torch.manual_seed(0)
    model: EnsembleDynamicsModel
    if name.startswith("spiking"):
        model = SpikingEnsembleModel(2, 1, cfg)
    else:
        model = GaussianMLPEnsemble(2, 1, E, K, (32, 32), gaussian=True)
    buf = synthetic_buffer()
    data = buf.gather(torch.arange(len(buf)))
    model.fit_normalizers(data.obs, data.action, data.next_obs, data.reward)
    x, y = model.normalize_batch(data.obs, data.action, data.next_obs, data.reward)
    assert model.mse(x, y).min() > 0.5  # untrained: no better than predicting the mean
    metrics = ModelTrainer(model, cfg, torch.Generator().manual_seed(0)).train_phase(buf)
    assert metrics["model/train_steps"] == 300
    assert metrics["model/holdout_mse"] < 0.2
    assert metrics["model/elite_holdout_mse"] <= metrics["model/holdout_mse"]
    # the trained model also fits the (mostly training) data in raw units
    pred = model.predict(data.obs[:500], data.action[:500])
    reward_mse = (pred.reward.mean(0) - data.reward[:500]).square().mean()
    assert reward_mse < 0.2 * data.reward.var()


# --------------------------------------------------------------------------------------------
# 6. Normalisers in the state dict
# --------------------------------------------------------------------------------------------


@ALL_MODELS
def test_normalizers_travel_with_the_state_dict(name: str) -> None:
    model = BUILDERS[name]()
    buf = random_buffer()
    data = buf.gather(torch.arange(len(buf)))
    model.fit_normalizers(data.obs, data.action + 3.0, data.next_obs, data.reward * 5.0)
    state = model.state_dict()
    for norm in ("input_normalizer", "target_normalizer"):
        for stat in ("mean", "m2", "count"):
            assert f"{norm}.{stat}" in state
    assert state["input_normalizer.count"] == len(buf)
    assert "elites" in state

    other = BUILDERS[name](seed=123)
    obs, action = torch.randn(5, OBS), torch.randn(5, ACT)
    assert not torch.equal(other.predict(obs, action).next_obs, model.predict(obs, action).next_obs)
    other.load_state_dict(state)
    p, q = model.predict(obs, action), other.predict(obs, action)
    assert torch.equal(p.next_obs, q.next_obs)
    assert torch.equal(p.reward, q.reward)
    assert torch.equal(p.mean, q.mean)


# --------------------------------------------------------------------------------------------
# 7. Elites
# --------------------------------------------------------------------------------------------


def test_fitting_the_normalisers_forgets_the_previous_phases_data() -> None:
    """Each phase refits the normalisers to the data it is given: 10 rows of zeros, then 4 rows
    of twos, leave count 4, mean 2 and variance 0 (not 14, 4/7, 0.82)."""
    model = SpikingEnsembleModel(OBS, ACT, tiny_cfg())
    for rows, value in ((10, 0.0), (4, 2.0)):
        obs, action = torch.full((rows, OBS), value), torch.full((rows, ACT), value)
        model.fit_normalizers(obs, action, obs + 1.0, torch.full((rows,), value))
    for norm in (model.input_normalizer, model.target_normalizer):
        assert norm.count.item() == 4
    torch.testing.assert_close(
        model.input_normalizer.mean, torch.full((OBS + ACT,), 2.0, dtype=torch.float64)
    )
    torch.testing.assert_close(
        model.input_normalizer.var, torch.zeros(OBS + ACT, dtype=torch.float64)
    )
    target_mean = torch.tensor([1.0] * OBS + [2.0], dtype=torch.float64)  # the change, the reward
    torch.testing.assert_close(model.target_normalizer.mean, target_mean)


def test_elites_are_ranked_by_the_last_holdout_not_by_each_members_best(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Scripted hold-out scores: [1..5] at step 5, then [5..1] at step 10 and at the end. The
    members' best scores become [1, 2, 3, 2, 1], but the elites are those of the final model:
    members 4 and 3."""
    e, k = 5, 2
    cfg = tiny_cfg(ensemble_size=e, num_elites=k, train_steps=12, holdout_every=5)
    torch.manual_seed(0)
    model = SpikingEnsembleModel(OBS, ACT, cfg)
    script = iter([torch.arange(1.0, 6.0), torch.arange(5.0, 0.0, -1), torch.arange(5.0, 0.0, -1)])
    monkeypatch.setattr(model, "mse", lambda x, y: next(script))
    ModelTrainer(model, cfg, torch.Generator().manual_seed(0)).train_phase(random_buffer())
    assert model.elites.tolist() == [4, 3]


def test_keep_best_ends_the_phase_with_the_weights_of_its_last_improving_check(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Scripted hold-out scores at steps 5, 10, 15: the check at 10 is the last where a member
    improves by over 1%; with ``keep_best`` the phase ends with the weights a 10-step phase
    ends with, and elites and hold-out metrics from that check."""
    e, k = 5, 2
    scores = [torch.full((e,), 3.0), torch.arange(5.0, 0.0, -1), torch.arange(1.0, 6.0) + 4]

    def phase(keep_best: bool, steps: int) -> tuple[SpikingEnsembleModel, dict[str, float]]:
        cfg = tiny_cfg(ensemble_size=e, num_elites=k, train_steps=steps, keep_best=keep_best)
        torch.manual_seed(0)
        model = SpikingEnsembleModel(OBS, ACT, cfg)
        script = iter(scores)
        monkeypatch.setattr(model, "mse", lambda x, y: next(script))
        trainer = ModelTrainer(model, cfg, torch.Generator().manual_seed(0))
        return model, trainer.train_phase(random_buffer())

    kept, metrics = phase(True, 15)
    ten, _ = phase(False, 10)
    last, _ = phase(False, 15)
    for name, p in kept.state_dict().items():
        if name != "elites":
            torch.testing.assert_close(p, ten.state_dict()[name], rtol=0, atol=0)
    assert any(not torch.equal(p, last.state_dict()[n]) for n, p in kept.named_parameters())
    assert kept.elites.tolist() == [4, 3]  # the check at step 10, not at 15 ([0, 1])
    assert last.elites.tolist() == [0, 1]
    assert metrics["model/holdout_mse"] == pytest.approx(3.0)
    assert metrics["model/train_steps"] == 15


@pytest.mark.parametrize("offset", [None, "descending"])
def test_elites_are_lowest_holdout_members(
    monkeypatch: pytest.MonkeyPatch, offset: str | None
) -> None:
    e, k = 5, 2
    cfg = tiny_cfg(ensemble_size=e, num_elites=k, train_steps=12, holdout_every=5)
    torch.manual_seed(0)
    model = SpikingEnsembleModel(OBS, ACT, cfg)
    calls: list[Tensor] = []
    real_mse = model.mse

    def recording_mse(x: Tensor, y: Tensor) -> Tensor:
        out = real_mse(x, y)
        if offset == "descending":  # member e-1 best, member 0 worst: elites must be [4, 3]
            out = out + torch.arange(e, 0, -1, dtype=out.dtype) * 100.0
        calls.append(out.clone())
        return out

    monkeypatch.setattr(model, "mse", recording_mse)
    metrics = ModelTrainer(model, cfg, torch.Generator().manual_seed(0)).train_phase(
        random_buffer()
    )
    assert len(calls) == 3  # at steps 5 and 10 (holdout_every) and after the last step, 12
    last = calls[-1]
    assert model.elites.tolist() == torch.argsort(last)[:k].tolist()
    if offset == "descending":
        assert model.elites.tolist() == [4, 3]
    assert metrics["model/holdout_mse"] == pytest.approx(last.mean().item())
    assert metrics["model/elite_holdout_mse"] == pytest.approx(last[model.elites].mean().item())
    assert "elites" in dict(model.named_buffers())
    assert torch.equal(model.state_dict()["elites"], model.elites)
    fresh = SpikingEnsembleModel(OBS, ACT, cfg)
    fresh.load_state_dict(model.state_dict())
    assert torch.equal(fresh.elites, model.elites)


# --------------------------------------------------------------------------------------------
# 8. Non-finite guard
# --------------------------------------------------------------------------------------------


def nan_reward_buffer(n: int = 300) -> ReplayBuffer:
    buf = random_buffer(n)
    buf.reward[::25] = math.nan
    return buf


def test_nonfinite_losses_are_skipped_and_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    model = spiking()
    cfg = tiny_cfg(train_steps=10, holdout_every=100)
    trainer = ModelTrainer(model, cfg, torch.Generator().manual_seed(0))
    real_loss = model.loss
    n_calls = [0]

    def flaky_loss(x: Tensor, y: Tensor) -> Tensor:
        n_calls[0] += 1
        out = real_loss(x, y)
        return out * math.nan if n_calls[0] % 2 == 0 else out

    monkeypatch.setattr(model, "loss", flaky_loss)
    before = [p.detach().clone() for p in model.parameters()]
    metrics = trainer.train_phase(random_buffer())
    assert n_calls[0] == 10
    assert metrics["model/skipped_steps"] == 5
    assert trainer.skipped_steps == 5
    assert math.isfinite(metrics["model/train_loss"])
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert any(
        not torch.equal(p.detach(), b) for p, b in zip(model.parameters(), before, strict=True)
    )


@pytest.mark.parametrize("name", ["spiking-det", "ann-gauss"])
def test_nan_rewards_do_not_corrupt_parameters(name: str) -> None:
    model = BUILDERS[name]()
    trainer = ModelTrainer(model, tiny_cfg(train_steps=10), torch.Generator().manual_seed(0))
    trainer.train_phase(nan_reward_buffer())
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_nan_rewards_do_not_poison_normalizers_or_training() -> None:
    model = spiking()
    trainer = ModelTrainer(model, tiny_cfg(train_steps=10), torch.Generator().manual_seed(0))
    metrics = trainer.train_phase(nan_reward_buffer())
    for norm in (model.input_normalizer, model.target_normalizer):
        assert torch.isfinite(norm.mean).all()
        assert torch.isfinite(norm.m2).all()
    assert metrics["model/train_steps"] > 0
    assert math.isfinite(metrics["model/holdout_mse"])
    pred = model.predict(torch.randn(4, OBS), torch.randn(4, ACT))
    assert torch.isfinite(pred.reward).all()
    assert torch.isfinite(pred.next_obs).all()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_train_phase_on_cuda() -> None:
    device = torch.device("cuda")
    model = spiking().to(device)
    buf = random_buffer()
    gpu = ReplayBuffer(len(buf), OBS, ACT, device)
    gpu.add_batch(buf.gather(torch.arange(len(buf))))
    trainer = ModelTrainer(model, tiny_cfg(), torch.Generator(device).manual_seed(0))
    metrics = trainer.train_phase(gpu)
    assert metrics["model/train_steps"] == 10


# --------------------------------------------------------------------------------------------
# 9. Determinism
# --------------------------------------------------------------------------------------------


@ALL_MODELS
def test_predictions_are_deterministic(name: str) -> None:
    model = BUILDERS[name]()
    assert not any(isinstance(m, nn.Dropout | nn.BatchNorm1d) for m in model.modules())
    obs, action = torch.randn(8, OBS), torch.randn(8, ACT)
    model.train()
    a = model.predict(obs, action)
    b = model.predict(obs, action)
    model.eval()
    c = model.predict(obs, action)
    for p, q in ((a, b), (a, c)):
        assert torch.equal(p.next_obs, q.next_obs)
        assert torch.equal(p.reward, q.reward)
        if p.logvar is not None:
            assert q.logvar is not None
            assert torch.equal(p.logvar, q.logvar)


def test_split_rows_balances_the_pieces() -> None:
    x = torch.arange(1253)
    assert [len(p) for p in split_rows(x, 625)] == [418, 418, 417]
    assert [len(p) for p in split_rows(x, 1253)] == [1253]
    assert [len(p) for p in split_rows(x, 0)] == [1253]
    assert [len(p) for p in split_rows(torch.arange(10_000), 625)] == [625] * 16
    assert torch.equal(torch.cat(split_rows(x, 100)), x)
    assert max(len(p) for p in split_rows(x, 100)) <= 100


@pytest.mark.parametrize("head", ["deterministic", "gaussian"])
def test_chunked_predictions_equal_one_forward(head: str) -> None:
    """``predict(chunk=c)``: the rows are independent, so chunks give the same values: bitwise
    at the default sizes for pieces of 64 rows or more; smaller matrices (tiny models or
    pieces) may take other BLAS kernels and agree only to rounding (which may flip a spike).
    Rows are split into balanced pieces, so 1,253 rows in chunks of 625 are 418 + 418 + 417,
    not 625 + 625 + 3 (whose last 3 rows differed in the last bits). The Gaussian head's
    log-variance goes through softplus, whose vectorised kernel rounds the rows left over after
    its last full SIMD vector differently: it agrees to about one unit in the last place."""
    torch.manual_seed(0)
    model = SpikingEnsembleModel(17, 6, replace(WorldModelConfig(), head=head))
    obs, action = torch.randn(1253, 17), torch.rand(1253, 6) * 2 - 1
    whole = model.predict(obs, action)
    for chunk in (625, 256, 128):
        parts = model.predict(obs, action, chunk=chunk)
        for name, a, b in zip(whole._fields, whole, parts, strict=True):
            assert (a is None) == (b is None)
            if name == "logvar" and a is not None:
                torch.testing.assert_close(a, b, rtol=0, atol=4e-6)
            elif a is not None:
                assert torch.equal(a, b), (chunk, name)


@pytest.mark.parametrize("head", ["deterministic", "gaussian"])
def test_a_member_subset_predicts_what_those_members_predict_in_the_ensemble(head: str) -> None:
    torch.manual_seed(0)
    model = SpikingEnsembleModel(17, 6, replace(WorldModelConfig(), head=head))
    obs, action = torch.randn(128, 17), torch.rand(128, 6) * 2 - 1
    members = torch.tensor([3, 0, 2])
    whole, sub = model.predict(obs, action), model.predict(obs, action, members=members)
    assert sub.mean.shape == (3, 128, 18)
    for a, b in zip(whole, sub, strict=True):
        if a is not None:
            assert torch.equal(a[members], b)


@ALL_MODELS
def test_a_member_subset_of_a_small_model(name: str) -> None:
    model = BUILDERS[name]()
    obs, action = torch.randn(9, OBS), torch.randn(9, ACT)
    members = torch.tensor([2, 1])
    whole, sub = model.predict(obs, action), model.predict(obs, action, members=members)
    for a, b in zip(whole, sub, strict=True):
        if a is not None:
            torch.testing.assert_close(a[members], b)


@pytest.mark.parametrize("name", ["ann-det", "ann-gauss"])
def test_chunked_predictions_of_small_models_agree_to_rounding(name: str) -> None:
    model = BUILDERS[name]()
    obs, action = torch.randn(11, OBS), torch.randn(11, ACT)
    whole, parts = model.predict(obs, action), model.predict(obs, action, chunk=4)
    for a, b in zip(whole, parts, strict=True):
        if a is not None:
            torch.testing.assert_close(a, b)


# --------------------------------------------------------------------------------------------
# 10. Gaussian head
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["spiking-gauss", "ann-gauss"])
@pytest.mark.parametrize("scale", [1.0, 1e3, 1e6])
def test_gaussian_logvar_within_soft_bounds(name: str, scale: float) -> None:
    model = BUILDERS[name]()
    with torch.no_grad():
        for layer in model.modules():  # make the raw log-variances extreme as well
            if isinstance(layer, EnsembleLinear):
                layer.weight.mul_(10.0)
    x = torch.randn(E, 64, OBS + ACT) * scale
    _, logvar = model.forward_normalized(x)
    assert logvar is not None
    assert torch.isfinite(logvar).all()
    assert (logvar >= model.min_logvar - 1e-4).all()
    assert (logvar <= model.max_logvar + 1e-4).all()
    loss = model.loss(x, torch.randn(E, 64, OBS + 1))
    assert loss.shape == (E,)
    assert torch.isfinite(loss).all()


def test_bound_logvar_is_monotone_and_bounded() -> None:
    model = ann(gaussian=True)
    raw = torch.linspace(-1e4, 1e4, 20001).view(1, -1, 1).expand(1, -1, OBS + 1)
    out = model.bound_logvar(raw).detach()
    assert (out.diff(dim=1) >= 0).all()
    assert (out >= model.min_logvar.detach() - 1e-4).all()
    assert (out <= model.max_logvar.detach() + 1e-4).all()
    torch.testing.assert_close(out[:, 0], model.min_logvar[0].detach().expand(1, OBS + 1))
    torch.testing.assert_close(
        out[:, -1], model.max_logvar[0].detach().expand(1, OBS + 1), atol=1e-4, rtol=0
    )
    middle = model.bound_logvar(torch.linspace(-8.0, 0.0, 81).view(1, -1, 1)).detach()
    assert (middle.diff(dim=1) > 0).all()  # strictly increasing between the bounds
    # identity-like far from the bounds
    mid = model.bound_logvar(torch.full((1, 1, OBS + 1), -4.75)).detach()
    torch.testing.assert_close(mid, torch.full_like(mid, -4.75), atol=0.05, rtol=0)


# --------------------------------------------------------------------------------------------
# 11. Spikes between blocks
# --------------------------------------------------------------------------------------------


def test_blocks_exchange_binary_spikes() -> None:
    model = spiking()
    cfg = model.cfg
    recorded: dict[str, Tensor] = {}

    def after_block0(_m: nn.Module, _inp: tuple[Tensor, ...], out: tuple[Tensor, Tensor]) -> None:
        recorded["spikes0"], recorded["volts0"] = out

    def before_block1(_m: nn.Module, inp: tuple[Tensor, ...]) -> None:
        recorded["in1"] = inp[0]

    h0 = model.blocks[0].register_forward_hook(after_block0)
    h1 = model.blocks[1].register_forward_pre_hook(before_block1)
    model.reset_diagnostics()
    try:
        model.forward_normalized(torch.randn(E, 10, OBS + ACT) * 2)
    finally:
        h0.remove()
        h1.remove()
    s = recorded["spikes0"]
    assert s.shape == (cfg.spike_ts, E, 10, cfg.hidden_size)
    assert set(s.unique().tolist()) <= {0.0, 1.0}
    assert 0 < s.mean() < 1
    assert torch.equal(recorded["in1"], s)
    assert not set(recorded["volts0"].unique().tolist()) <= {0.0, 1.0}
    rates = model.diagnostics()
    assert len(rates) == cfg.num_blocks
    assert all(0.0 <= r <= 1.0 for r in rates.values())
    assert rates["firing_rate/block0"] == pytest.approx(s.mean().item())
    # a second forward of another size: the rate over both, weighted by their neuron steps
    model.forward_normalized(torch.zeros(E, 30, OBS + ACT))
    silent = model.diagnostics()["firing_rate/block0"]
    model.reset_diagnostics()
    model.forward_normalized(torch.zeros(E, 30, OBS + ACT))
    alone = model.diagnostics()["firing_rate/block0"]
    assert silent == pytest.approx((10 * s.mean().item() + 30 * alone) / 40)


# --------------------------------------------------------------------------------------------
# 12. Fused adaptive LIF equals the reference scan
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("surrogate", ["superspike", "rect", "atan"])
def test_fused_adaptive_lif_matches_reference(surrogate: str) -> None:
    t, e, b, h = 5, 3, 7, 11
    g = torch.Generator().manual_seed(0)
    dt = torch.float64
    inputs = (torch.randn(t, e, b, h, generator=g, dtype=dt) * 0.6 + 0.3).requires_grad_()
    v_decay = torch.sigmoid(torch.randn(e, 1, h, generator=g, dtype=dt)).requires_grad_()
    adapt_decay = torch.sigmoid(torch.randn(e, 1, h, generator=g, dtype=dt) + 2).requires_grad_()
    params = AdaptiveLIFParams(0.5, v_decay, 0.5, adapt_decay, 0.2)
    spike_fn = make_surrogate(surrogate)
    w_s = torch.randn(t, e, b, h, generator=g, dtype=dt)
    w_v = torch.randn(t, e, b, h, generator=g, dtype=dt)

    def grads(spikes: Tensor, volts: Tensor) -> tuple[Tensor, ...]:
        loss = (spikes * w_s).sum() + (volts * w_v).sum()
        return torch.autograd.grad(loss, (inputs, v_decay, adapt_decay))

    ref_s, ref_v, _ = adaptive_lif_scan(inputs, params, spike_fn)
    fused_s, fused_v = adaptive_lif_scan_fused(inputs, params, spike_fn)
    assert 0.05 < ref_s.mean() < 0.95  # spikes, resets and adaptation all exercised
    assert torch.equal(fused_s, ref_s)
    torch.testing.assert_close(fused_v, ref_v, rtol=1e-12, atol=1e-12)
    for ref_g, fused_g, n in zip(
        grads(ref_s, ref_v),
        grads(fused_s, fused_v),
        ("inputs", "v_decay", "adapt_decay"),
        strict=True,
    ):
        assert ref_g.abs().sum() > 0, n
        assert fused_g.shape == ref_g.shape
        torch.testing.assert_close(fused_g, ref_g, rtol=1e-5, atol=1e-10)


def test_block_uses_fused_lif_consistently_with_reference() -> None:
    model = spiking(surrogate="atan")
    block = model.blocks[0]
    x = torch.randn(E, 6, block.linear.in_features)
    spikes, volts = block(x)
    (spikes.sum() + volts.square().sum()).backward()
    fused = {n: p.grad.clone() for n, p in block.named_parameters()}
    block.zero_grad()
    current = block.linear(x).expand(block.time_steps, -1, -1, -1)
    ref_s, ref_v, _ = adaptive_lif_scan(current, block.neuron_params(), block.spike_fn)
    assert torch.equal(spikes, ref_s)
    torch.testing.assert_close(volts, ref_v)
    (ref_s.sum() + ref_v.square().sum()).backward()
    for n, p in block.named_parameters():
        torch.testing.assert_close(fused[n], p.grad, rtol=1e-4, atol=1e-6, msg=n)


# --------------------------------------------------------------------------------------------
# 13. Input coding, time scales and readout by hand
# --------------------------------------------------------------------------------------------


def test_receptive_fields_by_hand() -> None:
    model = spiking(pop_dim=3)  # centres -3, 0, 3; width 3
    x = torch.tensor([[0.0, 3.0, -1.5, 0.0, 0.0]])
    rf = model.receptive_fields(x).view(1, OBS + ACT, 3)
    g = math.exp
    expected = [[g(-0.5), 1.0, g(-0.5)], [g(-2.0), g(-0.5), 1.0], [g(-0.125), g(-0.125), g(-1.125)]]
    assert torch.allclose(rf[0, :3], torch.tensor(expected))


def test_time_constants_start_log_spaced_per_group() -> None:
    model = spiking(num_scales=4, hidden_size=16, tau_range=(2.0, 16.0))
    for block in model.blocks:
        taus = block.log_tau_mem.detach().exp()  # [E, 1, H]
        for member in taus[:, 0]:
            assert torch.allclose(member.view(4, 4), torch.tensor([2.0, 4.0, 8.0, 16.0])[:, None])
        decay = block.neuron_params().v_decay
        assert torch.allclose(decay[0, 0, ::4], torch.exp(-1 / torch.tensor([2.0, 4, 8, 16])))


def test_readout_is_mean_spike_rate_and_mean_membrane_potential() -> None:
    model = spiking()
    h = model.cfg.hidden_size
    x = torch.randn(E, 6, OBS + ACT) * 2
    spikes, volts = model.blocks[0](model.receptive_fields(x))
    spikes, volts = model.blocks[1](spikes)
    with torch.no_grad():
        model.mean_head.weight.zero_()
        model.mean_head.bias.zero_()
        model.mean_head.weight[:, 3, 0] = 1.0  # output 0 <- rate of neuron 3
        model.mean_head.weight[:, h + 5, 1] = 1.0  # output 1 <- potential of neuron 5
    mean, _ = model.forward_normalized(x)
    assert torch.allclose(mean[..., 0], spikes[..., 3].mean(0))
    assert torch.allclose(mean[..., 1], volts[..., 5].mean(0))
    assert volts[..., 5].abs().sum() > 0


def _record_training_rows(
    monkeypatch: pytest.MonkeyPatch, model: EnsembleDynamicsModel
) -> tuple[list[Tensor], list[Tensor]]:
    trained: list[Tensor] = []  # per step: inputs [E, B, in]
    held: list[Tensor] = []
    real_loss, real_mse = model.loss, model.mse

    def loss(x: Tensor, y: Tensor) -> Tensor:
        trained.append(x.detach().clone())
        return real_loss(x, y)

    def mse(x: Tensor, y: Tensor) -> Tensor:
        held.append(x.detach().clone())
        return real_mse(x, y)

    monkeypatch.setattr(model, "loss", loss)
    monkeypatch.setattr(model, "mse", mse)
    return trained, held


def test_members_draw_their_own_bootstrap_batches_and_never_the_holdout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    model = spiking()
    trained, held = _record_training_rows(monkeypatch, model)
    cfg = tiny_cfg(train_steps=6, holdout_every=3, batch_size=64)
    ModelTrainer(model, cfg, torch.Generator().manual_seed(0)).train_phase(random_buffer(100))
    hold = {tuple(r.tolist()) for r in held[0]}
    assert len(hold) == 20  # holdout_ratio 0.2 of 100
    for x in trained:
        rows = [{tuple(r.tolist()) for r in member} for member in x]
        assert all(not (r & hold) for r in rows)  # no hold-out row is trained on
        assert len({frozenset(r) for r in rows}) == E  # every member its own minibatch
        assert any(len(r) < 64 for r in rows)  # drawn with replacement
    # over the phase, every member sees most of the 80 training rows
    seen = [set().union(*({tuple(r.tolist()) for r in x[m]} for x in trained)) for m in range(E)]
    assert all(len(s) > 60 for s in seen)


@pytest.mark.parametrize(
    ("shrink", "steps"), [(1.0, 8), (0.999, 8), (0.995, 100), (0.98, 100), (1.01, 8)]
)
def test_early_stopping_after_patience_checks_without_a_1pct_gain(
    monkeypatch: pytest.MonkeyPatch, shrink: float, steps: int
) -> None:
    # the hold-out MSE is multiplied by `shrink` at every check (every 2 steps): the first
    # check improves on inf; with no gain, a 0.1% gain or a loss, 3 more checks end the phase at
    # step 8; 0.5% per check adds up past 1% of the best every third check (the best moves only
    # by > 1%, MBPO's rule), and 2% per check is a gain at every check: neither stops
    model = spiking()
    value = [1.0]

    def mse(x: Tensor, y: Tensor) -> Tensor:
        value[0] *= shrink
        return torch.full((E,), value[0])

    monkeypatch.setattr(model, "mse", mse)
    cfg = tiny_cfg(train_steps=100, holdout_every=2, patience=3)
    metrics = ModelTrainer(model, cfg, torch.Generator().manual_seed(0)).train_phase(
        random_buffer()
    )
    assert metrics["model/train_steps"] == steps


@pytest.mark.parametrize("head", ["deterministic", "gaussian"])
def test_reward_weight_scales_the_reward_outputs_loss_by_hand(
    monkeypatch: pytest.MonkeyPatch, head: str
) -> None:
    # outputs: OBS state changes, then the reward; errors 1 on every state output, 2 on the reward
    out = OBS + 1
    y = torch.zeros(E, 4, out)
    mean = torch.ones(E, 4, out)
    mean[..., -1] = 2.0
    logvar = torch.zeros(E, 4, out) if head == "gaussian" else None  # exp(-0) = 1, log-var 0
    for weight in (1.0, 3.0):
        model = spiking(head, reward_weight=weight)
        monkeypatch.setattr(model, "forward_normalized", lambda x, m=mean, v=logvar: (m, v))
        w_state, w_reward = out / (OBS + weight), weight * out / (OBS + weight)  # mean 1
        expected = (OBS * w_state * 1.0 + w_reward * 4.0) / out
        loss = model.loss(torch.zeros(E, 4, OBS + ACT), y)
        if head == "gaussian":  # the log-variance bound penalty, the same for either weight
            loss = loss - 0.01 * (model.max_logvar.sum() - model.min_logvar.sum()) / E
        assert torch.allclose(loss, torch.full((E,), expected)), (weight, loss)
    assert model.mse(torch.zeros(4, OBS + ACT), y).allclose(torch.full((E,), (OBS + 4) / out))


def test_gaussian_nll_by_hand_with_nonzero_log_variances(monkeypatch: pytest.MonkeyPatch) -> None:
    """Per output ``(mean - y)^2 exp(-logvar) + logvar`` (mbrl-lib's NLL without its constant):
    error 2 at logvar ln 2 gives 4 / 2 + ln 2; error 1 at logvar -1 gives e - 1. Its gradient
    in logvar is ``1 - err^2 exp(-logvar)``: negative where the error outgrows the variance."""
    out = OBS + 1
    y = torch.zeros(E, 4, out)
    mean = torch.full((E, 4, out), 2.0)
    mean[..., -1] = 1.0
    logvar = torch.full((E, 4, out), math.log(2.0))
    logvar[..., -1] = -1.0
    logvar.requires_grad_(True)
    model = spiking("gaussian")
    monkeypatch.setattr(model, "forward_normalized", lambda x: (mean, logvar))
    loss = model.loss(torch.zeros(E, 4, OBS + ACT), y)
    penalty = 0.01 * (model.max_logvar.sum() - model.min_logvar.sum()) / E
    expected = (OBS * (4 / 2 + math.log(2.0)) + (math.e - 1)) / out
    torch.testing.assert_close(loss - penalty, torch.full((E,), expected))
    loss.sum().backward()
    n = 4 * out  # the mean over rows and outputs
    torch.testing.assert_close(logvar.grad[0, 0, 0], torch.tensor((1 - 4 / 2) / n))
    torch.testing.assert_close(logvar.grad[0, 0, -1], torch.tensor((1 - math.e) / n))


def test_all_voltages_readout_makes_the_output_continuous_in_the_input() -> None:
    # behind binary spikes a tiny input change moves the last block's readout only where a
    # spike flips; the first block's voltages follow the receptive fields continuously
    x = torch.randn(256, OBS + ACT, generator=torch.Generator().manual_seed(1))
    nudged = x.clone()
    nudged[:, 0] += 1e-4
    moved = {}
    for readout in ("last", "all_voltages"):
        model = spiking(readout=readout)
        with torch.no_grad():
            a, _ = model.forward_normalized(x)
            b, _ = model.forward_normalized(nudged)
        moved[readout] = ((a - b).abs().amax((0, 2)) > 0).float().mean().item()
    assert moved["all_voltages"] == 1.0
    assert moved["last"] < 0.5
    # the heads read 16 more inputs per earlier block (hidden_size 16, two blocks)
    assert spiking(readout="all_voltages").mean_head.weight.shape[-2] == 3 * 16
