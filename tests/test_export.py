"""Neuromorphic deployment: NIR / safetensors export, SOP and energy accounting, firing-rate
penalty, and the ``export`` / ``eval --energy`` CLI."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import Tensor

from spiking_dreamer.agent import MLPActor, PopSpikingActor
from spiking_dreamer.agent.regularization import firing_rate_penalty
from spiking_dreamer.cli import main
from spiking_dreamer.config import ActorConfig, Config
from spiking_dreamer.export import (
    DEFAULT_DT,
    HOST_PARTS,
    NIR_FORMAT,
    MissingExtraError,
    count_sops,
    cuba_lif_parameters,
    energy_report,
    export_nir,
    export_safetensors,
    format_energy_report,
    host_parts,
)
from spiking_dreamer.snn import CurrentLIFParams, current_lif_scan
from spiking_dreamer.training.checkpoint import CheckpointError, actor_checkpoint, atomic_torch_save

# two hidden layers, T = 5; weights scaled up below so that spikes are common everywhere
SPIKY = ActorConfig(hidden_sizes=(32, 24), spike_ts=5, encoder_pop_dim=5, decoder_pop_dim=4)
OBS_DIM = 4


def _spiky_actor(seed: int = 0, cfg: ActorConfig = SPIKY) -> PopSpikingActor:
    torch.manual_seed(seed)
    actor = PopSpikingActor(OBS_DIM, torch.tensor([-2.0, -1.0]), torch.tensor([1.0, 3.0]), cfg)
    with torch.no_grad():
        for layer in actor.layers:
            layer.weight.mul_(3.0)
        actor.encoder.std.uniform_(0.3, 1.2)
        actor.decoder.weight.mul_(2.0)
    actor.obs_normalizer.update(torch.randn(500, OBS_DIM) * torch.tensor([1.0, 2.0, 0.5, 3.0]) + 1)
    return actor.eval()


def _config(actor_cfg: ActorConfig, env_id: str) -> Config:
    actor = json.loads(json.dumps(dataclasses.asdict(actor_cfg)))
    return Config().replace(actor=actor, env={"id": env_id})


def _save(path: Path, actor: PopSpikingActor, env_id: str = "Dummy-v0") -> Path:
    atomic_torch_save(actor_checkpoint(actor, _config(actor.cfg, env_id), env_id, 7, 1.5), path)
    return path


def _obs(n: int = 300, seed: int = 1) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, OBS_DIM, generator=g) * torch.tensor([1.0, 2.0, 0.5, 3.0]) * 1.5 + 1


def _f32(x: Any) -> Tensor:
    return torch.tensor(x, dtype=torch.float32)


def _reset_neurons(net: torch.nn.Module) -> None:
    """snntorch's importer builds its neurons with ``init_hidden=True``: their state lives inside
    the modules (the state dict the graph module returns is all ``None``) and persists across
    calls, so it has to be zeroed before every new observation batch."""
    for m in net.modules():
        if hasattr(m, "reset_mem"):
            m.reset_mem()


def _run_exported(net: torch.nn.Module, meta: dict[str, Any], obs: Tensor) -> Tensor:
    """The host parts re-implemented from the exported metadata around the imported NIR graph."""
    norm, enc, dec, act = meta["normalizer"], meta["encoder"], meta["decoder"], meta["action"]
    assert enc["kind"] == "deterministic"
    z = ((obs - _f32(norm["shift"])) * _f32(norm["scale"])).clamp(-norm["clip"], norm["clip"])
    rf = torch.exp(
        -0.5 * (z.unsqueeze(-1) - _f32(enc["mean"])).square() / _f32(enc["std"]).square()
    )
    rf = rf.flatten(-2)
    volt = torch.zeros_like(rf)
    count: Tensor | int = 0
    state = None
    _reset_neurons(net)
    with torch.no_grad():
        for _ in range(meta["spike_ts"]):
            volt += rf
            spikes = (volt > enc["threshold"]).float()
            volt -= enc["threshold"] * spikes
            out, state = net(spikes, state)  # state passed back, as NIR consumers expect
            count = count + out
    rate = count / meta["spike_ts"]
    grouped = rate.unflatten(-1, (meta["act_dim"], dec["pop_dim"]))
    y = (grouped * _f32(dec["weight"])).sum(-1) + _f32(dec["bias"])
    return torch.tanh(y) * _f32(act["scale"]) + _f32(act["bias"])


# --------------------------------------------------------------------------------------------
# NIR


@pytest.mark.parametrize(
    "neuron", [{}, {"c_decay": 0.3, "v_decay": 0.9, "v_threshold": 0.7}], ids=["default", "other"]
)
def test_nir_round_trip_through_snntorch_reproduces_actions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], neuron: dict[str, float]
) -> None:
    """Export -> nir.read -> snntorch's import_from_nir, with the host parts (normaliser,
    receptive fields, regular-spike encoder, decoder, tanh, scaling) run from the exported
    metadata: the actions of 300 random observations match ``actor(obs)`` to 1e-5 (max abs),
    with PopSAN's neuron constants and with others (the export reads the actor's)."""
    nir = pytest.importorskip("nir")
    import_nir = pytest.importorskip("snntorch.import_nir")
    actor = _spiky_actor(cfg=dataclasses.replace(SPIKY, **neuron))
    info = export_nir(_save(tmp_path / "actor.pt", actor), tmp_path / "actor.nir")
    assert info["nodes"] == ["input", "fc1", "lif1", "fc2", "lif2", "fc3", "lif3", "output"]
    graph = nir.read(info["path"])
    meta = json.loads(Path(info["sidecar"]).read_text())
    assert meta["host"] == list(HOST_PARTS)
    assert info["metadata_in_graph"]
    gm = graph.metadata
    assert gm["format"] == NIR_FORMAT
    assert [h.decode() if isinstance(h, bytes) else h for h in gm["host"]] == list(HOST_PARTS)
    np.testing.assert_array_equal(gm["encoder"]["mean"], actor.encoder.mean.detach().numpy())
    assert json.loads(gm["env_json"])["id"] == "Dummy-v0"
    for i, layer in enumerate(actor.layers, start=1):
        np.testing.assert_array_equal(graph.nodes[f"fc{i}"].weight, layer.weight.detach().numpy())
        assert isinstance(graph.nodes[f"lif{i}"], nir.CubaLIF)

    capsys.readouterr()
    net = import_nir.import_from_nir(graph)
    assert "warning" not in capsys.readouterr().out.lower()  # input scaling accepted as 1

    obs = _obs()
    with torch.no_grad():
        expected = actor(obs)
        rates = [s.mean().item() for s in actor.spike_trains(obs)]
    assert all(0.05 < r < 0.95 for r in rates), rates  # spikes are common in every population
    got = _run_exported(net, meta, obs)
    assert (got - expected).abs().max().item() <= 1e-5


def test_a_wrong_decay_mapping_breaks_the_round_trip(tmp_path: Path) -> None:
    """Swapping the current and voltage time constants (r kept consistent, so snntorch accepts
    the graph) must change the actions: the round-trip test above can fail."""
    nir = pytest.importorskip("nir")
    import_nir = pytest.importorskip("snntorch.import_nir")
    actor = _spiky_actor()
    info = export_nir(_save(tmp_path / "actor.pt", actor), tmp_path / "actor.nir")
    graph = nir.read(info["path"])
    for node in graph.nodes.values():
        if isinstance(node, nir.CubaLIF):
            node.tau_syn, node.tau_mem = node.tau_mem.copy(), node.tau_syn.copy()
            node.r, node.w_in = node.tau_mem / DEFAULT_DT, node.tau_syn / DEFAULT_DT
    meta = json.loads(Path(info["sidecar"]).read_text())
    obs = _obs()
    with torch.no_grad():
        expected = actor(obs)
    got = _run_exported(import_nir.import_from_nir(graph), meta, obs)
    assert (got - expected).abs().max().item() > 1e-2


def test_cuba_lif_parameters() -> None:
    p = cuba_lif_parameters(0.5, 0.75, 0.5, 3, dt=1e-4)
    np.testing.assert_allclose(p["tau_syn"], 2e-4)
    np.testing.assert_allclose(p["tau_mem"], 4e-4)
    np.testing.assert_allclose(1 - 1e-4 / p["tau_syn"], 0.5)
    np.testing.assert_allclose(1 - 1e-4 / p["tau_mem"], 0.75)
    np.testing.assert_allclose(p["w_in"] * 1e-4 / p["tau_syn"], 1.0)
    np.testing.assert_allclose(p["r"] * 1e-4 / p["tau_mem"], 1.0)
    assert p["v_threshold"].shape == (3,)
    assert not p["v_leak"].any()
    assert not p["v_reset"].any()
    with pytest.raises(ValueError, match="no finite CubaLIF time constant"):
        cuba_lif_parameters(1.0, 0.75, 0.5, 3)


def test_host_parts_name_the_encoder() -> None:
    assert host_parts() == list(HOST_PARTS)
    assert "bernoulli spike encoder" in host_parts("bernoulli")
    assert "regular-spike encoder" not in host_parts("bernoulli")


@pytest.mark.parametrize("export", [export_nir, export_safetensors])
def test_export_refuses_non_actor_checkpoints(tmp_path: Path, export: Any) -> None:
    out = tmp_path / "out.bin"
    with pytest.raises(CheckpointError, match="not found"):
        export(tmp_path / "missing.pt", out)
    path = tmp_path / "state.pt"
    torch.save({"format": "spiking-dreamer/training-state", "step": 3}, path)
    with pytest.raises(CheckpointError, match="not an actor checkpoint"):
        export(path, out)
    torch.save({"weights": torch.zeros(2)}, path)
    with pytest.raises(CheckpointError, match="not a spiking-dreamer checkpoint"):
        export(path, out)
    assert not out.exists()


def test_missing_optional_package_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _save(tmp_path / "actor.pt", _spiky_actor())
    monkeypatch.setitem(sys.modules, "nir", None)  # import nir -> ImportError
    with pytest.raises(MissingExtraError, match=r"pip install 'spiking-dreamer\[export\]'"):
        export_nir(path, tmp_path / "a.nir")
    code = main(["export", "--checkpoint", str(path), "--format", "nir", "--out", "x.nir"])
    assert code == 2
    assert "spiking-dreamer[export]" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------
# safetensors


def test_safetensors_export(tmp_path: Path) -> None:
    st = pytest.importorskip("safetensors.torch")
    safetensors = pytest.importorskip("safetensors")
    actor = _spiky_actor()
    out = tmp_path / "actor.safetensors"
    export_safetensors(_save(tmp_path / "actor.pt", actor), out)
    tensors = st.load_file(out)
    for i, layer in enumerate(actor.layers):
        assert torch.equal(tensors[f"layers.{i}.weight"], layer.weight.detach())
        assert torch.equal(tensors[f"layers.{i}.bias"], layer.bias.detach())
    norm = actor.obs_normalizer
    assert tensors["obs_normalizer.mean"].dtype == torch.float64
    assert torch.equal(tensors["obs_normalizer.mean"], norm.mean)
    assert torch.equal(tensors["obs_normalizer.var"], norm.var)
    assert torch.equal(tensors["encoder.std"], actor.encoder.std.detach())
    with safetensors.safe_open(out, "pt") as f:
        meta = f.metadata()
    assert json.loads(meta["config"])["actor"]["hidden_sizes"] == [32, 24]
    assert json.loads(meta["env"])["id"] == "Dummy-v0"
    assert meta["version"]
    # the tensors rebuild the actor exactly
    rebuilt = PopSpikingActor(OBS_DIM, torch.tensor([-2.0, -1.0]), torch.tensor([1.0, 3.0]), SPIKY)
    tensors.pop("obs_normalizer.var")
    rebuilt.load_state_dict(tensors)
    obs = _obs(20)
    with torch.no_grad():
        assert torch.equal(rebuilt(obs), actor(obs))


# --------------------------------------------------------------------------------------------
# synaptic operations and energy


def test_count_sops_matches_brute_force() -> None:
    g = torch.Generator().manual_seed(0)
    trains = [(torch.rand(5, 7, n, generator=g) < 0.3).float() for n in (12, 9)]
    fan_outs = [9, 4]
    brute = [
        int(sum((s[t] @ torch.ones(s.shape[-1], f)).sum().item() for t in range(s.shape[0])))
        for s, f in zip(trains, fan_outs, strict=True)
    ]
    assert count_sops(trains, fan_outs) == brute
    assert count_sops([torch.zeros(3, 2, 4)], [10]) == [0]
    assert count_sops([torch.ones(3, 2, 4)], [10]) == [3 * 2 * 4 * 10]


def _hand_built_actor() -> PopSpikingActor:
    """Known spikes for zero observations: encoder neurons 0 and 5 (of 6) fire every step,
    hidden-1 neurons 0-1 (of 4), hidden-2 neuron 0 (of 3), output neurons 0-2 (of 4)."""
    cfg = ActorConfig(hidden_sizes=(4, 3), spike_ts=4, encoder_pop_dim=3, decoder_pop_dim=2)
    actor = PopSpikingActor(2, -torch.ones(2), torch.ones(2), cfg)
    with torch.no_grad():
        actor.encoder.mean.copy_(torch.tensor([[0.0, 100.0, 100.0], [100.0, 100.0, 0.0]]))
        for layer, bias in zip(
            actor.layers, ([10, 10, -10, -10], [10, -10, -10], [10, 10, 10, -10]), strict=True
        ):
            layer.weight.zero_()
            layer.bias.copy_(torch.tensor(bias, dtype=torch.float32))
    return actor


def test_energy_report_on_a_hand_built_network() -> None:
    actor = _hand_built_actor()
    report = energy_report(actor, torch.zeros(5, 2))
    assert report["n_observations"] == 5
    assert report["time_steps"] == 4
    pops = {p["name"]: p for p in report["populations"]}
    assert list(pops) == ["encoder", "hidden-1", "hidden-2", "output"]
    assert [pops[k]["neurons"] for k in pops] == [6, 4, 3, 4]
    assert pops["encoder"]["firing_rate"] == pytest.approx(2 / 6)
    assert pops["hidden-1"]["firing_rate"] == pytest.approx(2 / 4)
    assert pops["hidden-2"]["firing_rate"] == pytest.approx(1 / 3)
    assert pops["output"]["firing_rate"] == pytest.approx(3 / 4)
    assert [pops[k]["spikes_per_action"] for k in pops] == [8, 8, 4, 12]
    layers = report["layers"]
    # spikes per action x fan-out: 8 x 4, 8 x 3, 4 x 4
    assert [la["sops_per_action"] for la in layers] == [32, 24, 16]
    assert [la["input_population"] for la in layers] == ["encoder", "hidden-1", "hidden-2"]
    assert [la["input_firing_rate"] for la in layers] == pytest.approx([2 / 6, 2 / 4, 1 / 3])
    assert [la["dense_sops_per_action"] for la in layers] == [4 * 6 * 4, 4 * 4 * 3, 4 * 3 * 4]
    # ANN 2 -> 4 -> 3 -> 2
    assert [la["ann_macs_per_action"] for la in layers] == [8, 12, 6]
    t = report["totals"]
    assert t["sops_per_action"] == 72
    assert t["decoder_macs_per_action"] == 4
    assert t["ann_macs_per_action"] == 26
    assert t["snn_energy_j"] == pytest.approx(0.9e-12 * 72 + 4.6e-12 * 4)
    assert t["ann_energy_j"] == pytest.approx(4.6e-12 * 26)
    assert t["ann_over_snn"] == pytest.approx(4.6 * 26 / (0.9 * 72 + 4.6 * 4))
    assert t["ann_int8_energy_j"] == pytest.approx(0.23e-12 * 26)
    custom = energy_report(actor, np.zeros((3, 2), dtype=np.float32), e_ac=1.0, e_mac=10.0)
    assert custom["totals"]["snn_energy_j"] == pytest.approx(72 + 40)
    assert custom["totals"]["ann_energy_j"] == pytest.approx(260)
    assert any("INT8" in c for c in report["caveats"])
    table = format_energy_report(report)
    assert "SOPs/action" in table
    assert "hidden-2 -> output" in table
    assert "4 MACs/action" in table
    with pytest.raises(ValueError, match="obs_batch"):
        energy_report(actor, torch.zeros(5, 3))


def test_energy_report_counts_match_the_spike_trains() -> None:
    actor = _spiky_actor()
    obs = _obs(50)
    report = energy_report(actor, obs)
    with torch.no_grad():
        trains = actor.spike_trains(obs)
    for layer, s, lin in zip(report["layers"], trains[:-1], actor.layers, strict=True):
        assert layer["sops_per_action"] == pytest.approx(s.sum().item() * lin.out_features / 50)


# --------------------------------------------------------------------------------------------
# firing-rate penalty


def test_firing_rate_penalty_value_skips_the_encoder() -> None:
    enc = torch.ones(2, 1, 5)
    hidden = torch.zeros(2, 1, 3)
    hidden[0, 0, :2] = 1
    hidden[1, 0, 0] = 1
    out = torch.ones(2, 1, 1)
    assert firing_rate_penalty([enc, hidden, out]).item() == pytest.approx(5 / 8)
    actor = _hand_built_actor()
    with torch.no_grad():
        trains = actor.spike_trains(torch.zeros(3, 2))
    # per sample and step: 2 + 1 + 3 spikes of 4 + 3 + 4 neurons
    assert firing_rate_penalty(trains).item() == pytest.approx(6 / 11)
    with pytest.raises(ValueError, match="at least one spiking layer"):
        firing_rate_penalty([enc])


def test_firing_rate_penalty_gradient_flows_through_the_surrogate() -> None:
    actor = _spiky_actor()
    obs = _obs(64)
    penalty = firing_rate_penalty(actor.spike_trains(obs))
    penalty.backward()
    grads = [layer.weight.grad.clone() for layer in actor.layers]
    assert all(g.abs().sum() > 0 and torch.isfinite(g).all() for g in grads)
    # reference: the same network stepped with the unfused neuron and the surrogate spike fn
    actor.zero_grad()
    params = CurrentLIFParams(SPIKY.c_decay, SPIKY.v_decay, SPIKY.v_threshold)
    spikes = actor.encoder(actor.obs_normalizer(obs), SPIKY.spike_ts)
    trains = [spikes]
    for layer in actor.layers:
        spikes, _ = current_lif_scan(layer(spikes), params, actor.spike_fn)
        trains.append(spikes)
    firing_rate_penalty(trains).backward()
    for g, layer in zip(grads, actor.layers, strict=True):
        torch.testing.assert_close(g, layer.weight.grad, rtol=1e-4, atol=1e-7)


# --------------------------------------------------------------------------------------------
# CLI


def test_cli_export(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("nir")
    pytest.importorskip("safetensors")
    path = _save(tmp_path / "actor.pt", _spiky_actor())
    out = tmp_path / "deploy" / "actor.nir"
    assert main(["export", "--checkpoint", str(path), "--format", "nir", "--out", str(out)]) == 0
    assert out.is_file()
    assert (tmp_path / "deploy" / "actor.nir.json").is_file()
    printed = capsys.readouterr().out
    assert "wrote" in printed
    assert str(out) in printed
    st_out = tmp_path / "actor.safetensors"
    args = ["export", "--checkpoint", str(path), "--format", "safetensors", "--out", str(st_out)]
    assert main(args) == 0
    assert st_out.is_file()
    missing = ["export", "--checkpoint", str(tmp_path / "no.pt"), "--format", "nir"]
    assert main([*missing, "--out", str(tmp_path / "x.nir")]) == 2
    assert "not found" in capsys.readouterr().err
    # a checkpoint named like the NIR file's sidecar is not overwritten by it
    odd = tmp_path / "odd.nir.json"
    odd.write_bytes(path.read_bytes())
    args = ["export", "--checkpoint", str(odd), "--format", "nir"]
    assert main([*args, "--out", str(tmp_path / "odd.nir")]) == 2
    assert "is also an input" in capsys.readouterr().err
    assert odd.read_bytes() == path.read_bytes()
    assert not (tmp_path / "odd.nir").exists()


def test_cli_eval_energy_on_pendulum(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = ActorConfig(hidden_sizes=(16, 16), spike_ts=5, encoder_pop_dim=10, decoder_pop_dim=10)
    torch.manual_seed(0)
    actor = PopSpikingActor(3, torch.tensor([-2.0]), torch.tensor([2.0]), cfg)
    actor.obs_normalizer.update(torch.randn(100, 3))
    path = _save(tmp_path / "pendulum.pt", actor, env_id="Pendulum-v1")
    args = ["eval", "--checkpoint", str(path), "--episodes", "1", "--energy"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "Pendulum-v1: return" in out
    assert "over 200 observations" in out
    for word in ("encoder", "hidden-2 -> output", "SOPs/action", "MACs/action", "ANN/SNN"):
        assert word in out
    assert main(["eval", "--checkpoint", str(path), "--episodes", "0", "--energy"]) == 0
    out = capsys.readouterr().out
    assert "return" not in out  # the energy episode only
    assert "SOPs/action" in out


def test_spiking_only_tools_refuse_an_mlp_actor_clearly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = ActorConfig(kind="mlp", hidden_sizes=(16, 16))
    actor = MLPActor(3, torch.tensor([-2.0]), torch.tensor([2.0]), cfg)
    path = _save(tmp_path / "mlp.pt", actor, env_id="Pendulum-v1")  # type: ignore[arg-type]
    assert main(["eval", "--checkpoint", str(path), "--episodes", "1", "--energy"]) == 2
    captured = capsys.readouterr()
    assert "--energy needs a spiking (PopSAN) actor" in captured.err
    assert "return" not in captured.out  # refused before running any episode
    pytest.importorskip("nir")
    with pytest.raises(CheckpointError, match=r"NIR export needs a spiking \(PopSAN\) actor"):
        export_nir(path, tmp_path / "out.nir")
