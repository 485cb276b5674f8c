"""Neuromorphic deployment of the spiking actor: NIR / safetensors export and energy accounting.

NIR export
----------
:func:`export_nir` writes a trained actor checkpoint as a ``nir.NIRGraph`` (Neuromorphic
Intermediate Representation, HDF5)::

    input [O * P_in] -> fc1 (Affine) -> lif1 (CubaLIF) -> ... -> fcL -> lifL [A * P_out] -> output

one ``nir.Affine(weight, bias)`` and one ``nir.CubaLIF`` per actor layer (hidden layers and the
output population).

**Neuron mapping.** Our current-based LIF (PopSAN), per time step::

    c_t = c_decay * c_{t-1} + I_t
    v_t = v_decay * v_{t-1} * (1 - s_{t-1}) + c_t
    s_t = H(v_t - v_threshold)        (strict >; reset to 0)

NIR's CubaLIF is the ODE pair ``tau_syn dI/dt = -I + w_in S`` and
``tau_mem dv/dt = (v_leak - v) + r I`` with threshold ``v_threshold`` and reset to ``v_reset``.
A consumer discretising it with step ``dt`` (forward Euler, the membrane seeing the updated
current, as snntorch's ``Synaptic`` does) gets::

    I_t = (1 - dt / tau_syn) I_{t-1} + (dt / tau_syn) w_in S_t
    v_t = (1 - dt / tau_mem) v_{t-1} + (dt / tau_mem) r I_t

so we export, for every neuron::

    tau_syn = dt / (1 - c_decay)      ->  1 - dt / tau_syn = c_decay
    tau_mem = dt / (1 - v_decay)      ->  1 - dt / tau_mem = v_decay
    w_in    = tau_syn / dt            ->  input scale (dt / tau_syn) w_in = 1
    r       = tau_mem / dt            ->  membrane gain (dt / tau_mem) r = 1
    v_leak  = 0,  v_reset = 0,  v_threshold = v_threshold

which reproduces the recurrences above exactly (the only arithmetic difference is the rounding
of ``1 - dt / tau`` back to the decay, below float32 resolution). ``dt`` defaults to ``1e-4``,
the step snntorch's NIR importer assumes; its importer checks ``r == tau_mem / dt`` and
``w_in * dt / tau_syn == 1``. A decay of exactly 1 (no leak) has no finite time constant and is
refused.

**Host parts.** The observation normaliser, the Gaussian receptive fields, the regular-spike
(or Bernoulli) encoder, the population decoder and the tanh/action scaling are not NIR
primitives (the Loihi realisation of PopSAN also ran them on the host CPU). Everything they need
is stored in the graph's ``metadata`` (when the installed ``nir`` supports graph metadata) and,
always, in a sidecar JSON ``<out>.json`` next to the ``.nir`` file. Host pipeline, in float32::

    z = clip((obs - normalizer.shift) * normalizer.scale, -clip, clip)
        # shift = mean, scale = 1 / sqrt(var + eps) (float32 copies of the float64 statistics)
    a[i * P_in + j] = exp(-0.5 * (z[i] - encoder.mean[i, j])^2 / encoder.std[i, j]^2)
    deterministic: v += a; s_t = (v > 0.999); v -= 0.999 * s_t      (t = 1..spike_ts, v_0 = 0)
    bernoulli:     s_t ~ Bernoulli(a)
    -> NIR graph, all neuron states reset to zero for every observation, spike_ts steps
    rate[a * P_out + j] = sum_t out_t / spike_ts
    y[a] = sum_j decoder.weight[a, j] * rate[a * P_out + j] + decoder.bias[a]
    action = tanh(y) * action.scale + action.bias

Energy accounting
-----------------
:func:`energy_report` counts synaptic operations (SOPs = input spikes x fan-out, exactly from the
spike trains) and compares ``E_AC * SOPs + E_MAC * decoder MACs`` with ``E_MAC * MACs`` of a
dense ANN actor of the same hidden sizes (operation-count convention; 45 nm FP32 constants
E_AC = 0.9 pJ, E_MAC = 4.6 pJ from Horowitz, ISSCC 2014). The caveats are in
:data:`ENERGY_CAVEATS` and in every report.
"""

from __future__ import annotations

import inspect
import json
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from spiking_dreamer import __version__
from spiking_dreamer.agent import Actor, PopSpikingActor
from spiking_dreamer.errors import MissingExtraError as MissingExtraError  # re-exported
from spiking_dreamer.errors import import_extra
from spiking_dreamer.snn.encoding import ENCODER_THRESHOLD
from spiking_dreamer.training.checkpoint import CheckpointError, load_actor

DEFAULT_DT = 1e-4
NIR_FORMAT = "spiking-dreamer/actor-nir"
SAFETENSORS_FORMAT = "spiking-dreamer/actor-safetensors"
EXPORT_FORMAT_VERSION = 1
HOST_PARTS = (
    "observation normalisation",
    "gaussian receptive fields",
    "regular-spike encoder",
    "population decoder",
    "tanh and action scaling",
)

E_AC_FP32 = 0.9e-12
E_MAC_FP32 = 4.6e-12
E_MAC_INT8 = 0.23e-12
ENERGY_CAVEATS = (
    "AC vs MAC: E_AC = 0.9 pJ and E_MAC = 4.6 pJ are 45 nm FP32 add and multiply-add estimates "
    "(Horowitz, ISSCC 2014); an INT8 ANN (0.23 pJ/MAC, row 'ANN INT8') is far cheaper than an "
    "FP32 one and beats an FP32-AC SNN unless spike rates are very low.",
    "Not counted: neuron-state updates (current/voltage decays, threshold compares, resets), the "
    "per-step bias currents, the encoder's Gaussian receptive fields (exp) and regular-spike "
    "integration, observation normalisation, tanh and action scaling, and all memory traffic "
    "(weight and state reads/writes), which often dominates.",
    "First layer: the encoder emits binary spikes, so layer 1 is counted as accumulates (AC); an "
    "analog-input first layer would be MACs.",
    "The ANN comparator is a dense actor obs_dim -> hidden sizes -> act_dim, one pass, biases "
    "and activations not counted; the population-coded SNN has more synapses and runs T steps.",
    "Firing rates and SOPs are averages over the given observations (e.g. one evaluation "
    "episode) and depend on the policy and the states visited.",
    "These are operation-count estimates, not hardware measurements; platform comparisons "
    "(e.g. PopSAN's Loihi vs Jetson TX2) measure something else.",
)


def _atomic_write(path: Path, write: Callable[[str], None]) -> None:
    """Call ``write(tmp)`` on a temporary file next to ``path``, then rename it over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _to_json(x: Any) -> Any:
    """Metadata -> JSON-able values (arrays become nested lists)."""
    if isinstance(x, dict):
        return {k: _to_json(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_to_json(v) for v in x]
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, np.generic):
        return x.item()
    return x


# --------------------------------------------------------------------------------------------
# NIR


def cuba_lif_parameters(
    c_decay: float, v_decay: float, v_threshold: float, size: int, dt: float = DEFAULT_DT
) -> dict[str, np.ndarray]:
    """Keyword arguments of ``nir.CubaLIF`` reproducing our current-based LIF exactly when
    discretised with step ``dt`` (see the module docstring)."""
    for name, decay in (("c_decay", c_decay), ("v_decay", v_decay)):
        if not 0.0 <= decay < 1.0:
            raise ValueError(
                f"{name} = {decay} has no finite CubaLIF time constant (needs 0 <= decay < 1)"
            )
    if dt <= 0:
        raise ValueError(f"dt must be > 0, got {dt}")
    tau_syn = dt / (1.0 - c_decay)
    tau_mem = dt / (1.0 - v_decay)
    full = lambda value: np.full(size, value, dtype=np.float64)  # noqa: E731
    return {
        "tau_syn": full(tau_syn),
        "tau_mem": full(tau_mem),
        "r": full(tau_mem / dt),
        "v_leak": full(0.0),
        "v_threshold": full(v_threshold),
        "v_reset": full(0.0),
        "w_in": full(tau_syn / dt),
    }


def _f32(t: Tensor) -> np.ndarray:
    return t.detach().cpu().to(torch.float32).numpy().copy()


def _f64(t: Tensor) -> np.ndarray:
    return t.detach().cpu().to(torch.float64).numpy().copy()


def host_parts(encoding: str = "deterministic") -> list[str]:
    """The parts of the actor that run on a host CPU (:data:`HOST_PARTS`; a Bernoulli encoder
    replaces the regular-spike one)."""
    parts = list(HOST_PARTS)
    if encoding == "bernoulli":
        parts[parts.index("regular-spike encoder")] = "bernoulli spike encoder"
    return parts


def host_parameters(actor: PopSpikingActor) -> dict[str, Any]:
    """What the host needs to run the non-NIR parts of ``actor`` (numpy arrays, plain values)."""
    cfg, norm = actor.cfg, actor.obs_normalizer
    return {
        "host": host_parts(actor.encoder.encoding),
        "obs_dim": actor.obs_dim,
        "act_dim": actor.act_dim,
        "spike_ts": cfg.spike_ts,
        "normalizer": {
            "mean": _f64(norm.mean),
            "var": _f64(norm.var),
            "count": float(norm.count),
            "eps": float(norm.eps),
            "clip": float(norm.clip) if norm.clip is not None else float("inf"),
            "shift": _f32(norm._shift),
            "scale": _f32(norm._scale),
            "formula": "clip((obs - shift) * scale, -clip, clip); shift = mean, "
            "scale = 1 / sqrt(var + eps), in float32",
        },
        "encoder": {
            "kind": actor.encoder.encoding,
            "pop_dim": actor.encoder.pop_dim,
            "mean": _f32(actor.encoder.mean),
            "std": _f32(actor.encoder.std),
            "threshold": ENCODER_THRESHOLD,
            "reset": "subtract",
            "formula": "a[i*P+j] = exp(-0.5 * (z[i] - mean[i,j])^2 / std[i,j]^2); "
            "deterministic: v += a, s = v > threshold, v -= threshold * s; "
            "bernoulli: s ~ Bernoulli(a)",
        },
        "decoder": {
            "pop_dim": actor.decoder.pop_dim,
            "weight": _f32(actor.decoder.weight),
            "bias": _f32(actor.decoder.bias),
            "formula": "rate = output spike count / spike_ts; "
            "y[a] = sum_j weight[a,j] * rate[a*P+j] + bias[a]",
        },
        "action": {
            "scale": _f32(actor.action_scale),
            "bias": _f32(actor.action_bias),
            "formula": "action = tanh(y) * scale + bias",
        },
    }


def actor_to_nir(
    actor: PopSpikingActor, dt: float = DEFAULT_DT, metadata: dict[str, Any] | None = None
) -> tuple[Any, bool]:
    """The spiking core of ``actor`` as a ``nir.NIRGraph``; returns it and whether ``metadata``
    was stored in the graph (graph metadata needs a ``nir`` whose ``NIRGraph`` accepts it)."""
    nir = import_extra("nir", "NIR export", "export")
    c = actor.cfg
    nodes: dict[str, Any] = {"input": nir.Input(input_type=np.array([actor.encoder.out_dim]))}
    edges, prev = [], "input"
    for i, layer in enumerate(actor.layers, start=1):
        nodes[f"fc{i}"] = nir.Affine(weight=_f32(layer.weight), bias=_f32(layer.bias))
        params = cuba_lif_parameters(c.c_decay, c.v_decay, c.v_threshold, layer.out_features, dt=dt)
        nodes[f"lif{i}"] = nir.CubaLIF(**params)
        edges += [(prev, f"fc{i}"), (f"fc{i}", f"lif{i}")]
        prev = f"lif{i}"
    nodes["output"] = nir.Output(output_type=np.array([actor.layers[-1].out_features]))
    edges.append((prev, "output"))
    with_metadata = metadata is not None and (
        "metadata" in inspect.signature(nir.NIRGraph.__init__).parameters
    )
    kwargs = {"metadata": metadata} if with_metadata else {}
    return nir.NIRGraph(nodes=nodes, edges=edges, **kwargs), with_metadata


def sidecar_path(out_path: str | Path) -> Path:
    """The JSON written next to an exported ``.nir`` file: ``<out>.json``."""
    out_path = Path(out_path)
    return out_path.with_name(out_path.name + ".json")


def spiking_actor(actor: Actor, checkpoint_path: str | Path, what: str) -> PopSpikingActor:
    """``actor`` if it is a spiking actor; else a :class:`CheckpointError` naming ``what``
    needs one."""
    if not isinstance(actor, PopSpikingActor):
        raise CheckpointError(
            f"{checkpoint_path}: {what} needs a spiking (PopSAN) actor; this checkpoint holds "
            f"an {type(actor).__name__} (actor.kind: mlp)"
        )
    return actor


def export_nir(
    checkpoint_path: str | Path, out_path: str | Path, dt: float = DEFAULT_DT
) -> dict[str, Any]:
    """Export the actor of an actor checkpoint as a NIR graph plus a sidecar JSON.

    Raises:
        CheckpointError: missing file, not an actor checkpoint, or not exportable.
        MissingExtraError: ``nir`` is not installed.

    Returns:
        a summary: ``path``, ``sidecar``, ``nodes``, ``dt``, ``metadata_in_graph``, ``host``.
    """
    actor, data = load_actor(checkpoint_path)
    actor = spiking_actor(actor, checkpoint_path, "NIR export")
    nir = import_extra("nir", "NIR export", "export")
    out_path, side = Path(out_path), sidecar_path(out_path)
    c = actor.cfg
    meta: dict[str, Any] = {
        "format": NIR_FORMAT,
        "format_version": EXPORT_FORMAT_VERSION,
        "spiking_dreamer_version": __version__,
        "dt": float(dt),
        "neuron": {
            "model": "current-based LIF (PopSAN): c = c_decay*c + I; "
            "v = v_decay*v*(1-s_prev) + c; s = v > v_threshold",
            "c_decay": float(c.c_decay),
            "v_decay": float(c.v_decay),
            "v_threshold": float(c.v_threshold),
            "state_reset": "all neuron states are zero at the start of every observation",
        },
        **host_parameters(actor),
        "config_json": json.dumps(data["config"], sort_keys=True),
        "env_json": json.dumps(data["env"], sort_keys=True),
        "checkpoint_step": int(data.get("step", -1)),
        "sidecar": side.name,
    }
    try:
        graph, in_graph = actor_to_nir(actor, dt=dt, metadata=meta)
    except ValueError as e:
        raise CheckpointError(f"{checkpoint_path}: cannot export to NIR: {e}") from None
    _atomic_write(out_path, lambda tmp: nir.write(tmp, graph))
    sidecar = {**_to_json(meta), "nir_file": out_path.name, "metadata_in_graph": in_graph}
    _atomic_write(side, lambda tmp: Path(tmp).write_text(json.dumps(sidecar, indent=1) + "\n"))
    return {
        "format": "nir",
        "path": str(out_path),
        "sidecar": str(side),
        "nodes": list(graph.nodes),
        "dt": float(dt),
        "metadata_in_graph": in_graph,
        "host": meta["host"],
    }


# --------------------------------------------------------------------------------------------
# safetensors


def export_safetensors(checkpoint_path: str | Path, out_path: str | Path) -> dict[str, Any]:
    """Export the actor's weights and normaliser statistics as safetensors (no pickle).

    Tensors: the actor's ``state_dict`` (``obs_normalizer.{count,mean,m2}`` in float64, the rest
    float32) plus ``obs_normalizer.var``. String metadata: ``format``, ``format_version``,
    ``version`` (spiking-dreamer), ``config`` and ``env`` (JSON).

    Raises:
        CheckpointError: missing file or not an actor checkpoint.
        MissingExtraError: ``safetensors`` is not installed.
    """
    actor, data = load_actor(checkpoint_path)
    st = import_extra("safetensors.torch", "safetensors export", "export")
    tensors = {k: v.detach().cpu().clone().contiguous() for k, v in actor.state_dict().items()}
    tensors["obs_normalizer.var"] = actor.obs_normalizer.var.detach().cpu().clone().contiguous()
    metadata = {
        "format": SAFETENSORS_FORMAT,
        "format_version": str(EXPORT_FORMAT_VERSION),
        "version": __version__,
        "config": json.dumps(data["config"], sort_keys=True),
        "env": json.dumps(data["env"], sort_keys=True),
        "step": str(data.get("step", "")),
    }
    out_path = Path(out_path)
    _atomic_write(out_path, lambda tmp: st.save_file(tensors, tmp, metadata=metadata))
    return {"format": "safetensors", "path": str(out_path), "tensors": sorted(tensors)}


# --------------------------------------------------------------------------------------------
# energy


def count_sops(spike_trains: Sequence[Tensor], fan_outs: Sequence[int]) -> list[int]:
    """Synaptic operations triggered by each input population: (number of spikes, i.e. non-zero
    entries, over all time steps and samples) x fan-out of the layer it feeds.

    Equals ``sum_t (spikes_t @ ones[in, out]).sum()`` for binary spikes.
    """
    if len(spike_trains) != len(fan_outs):
        raise ValueError(f"{len(spike_trains)} spike trains but {len(fan_outs)} fan-outs")
    return [
        int(torch.count_nonzero(s)) * int(f) for s, f in zip(spike_trains, fan_outs, strict=True)
    ]


def _population_names(n_hidden: int) -> list[str]:
    return ["encoder", *[f"hidden-{i}" for i in range(1, n_hidden + 1)], "output"]


@torch.no_grad()
def energy_report(
    actor: PopSpikingActor,
    obs_batch: Tensor | np.ndarray,
    e_ac: float = E_AC_FP32,
    e_mac: float = E_MAC_FP32,
    e_mac_int8: float = E_MAC_INT8,
    generator: torch.Generator | None = None,
) -> dict[str, Any]:
    """Per-action synaptic operations, firing rates and estimated energy of ``actor``.

    Args:
        actor: the spiking actor.
        obs_batch: raw observations ``[N, O]`` (e.g. one evaluation episode); every count is
            per action, i.e. averaged over the ``N`` observations.
        e_ac: energy of one accumulate (J), charged per SOP.
        e_mac: energy of one multiply-accumulate (J), charged per decoder MAC and ANN MAC.
        e_mac_int8: energy of one INT8 MAC (J), for the INT8 ANN row.
        generator: drives a Bernoulli encoder.

    Returns:
        ``populations`` (name, neurons, firing_rate, spikes_per_action), ``layers`` (per
        ``nn.Linear``: SNN and ANN sizes, input population and its rate, sops_per_action,
        dense_sops_per_action = T x in x out, ann_macs_per_action), ``totals`` (SOPs, decoder
        MACs, ANN MACs, energies in J and the ratios ANN / SNN), ``constants`` and ``caveats``.
    """
    obs = torch.as_tensor(obs_batch, dtype=torch.float32, device=actor.action_scale.device)
    if obs.dim() != 2 or obs.shape[1] != actor.obs_dim or obs.shape[0] == 0:
        raise ValueError(f"obs_batch must be [N >= 1, {actor.obs_dim}], got {tuple(obs.shape)}")
    n = obs.shape[0]
    steps = actor.cfg.spike_ts
    trains = actor.spike_trains(obs, generator)
    names = _population_names(len(actor.cfg.hidden_sizes))
    populations = []
    for name, s in zip(names, trains, strict=True):
        spikes = int(torch.count_nonzero(s))
        populations.append(
            {
                "name": name,
                "neurons": int(s.shape[-1]),
                "firing_rate": spikes / s.numel(),
                "spikes_per_action": spikes / n,
            }
        )
    fan_outs = [layer.out_features for layer in actor.layers]
    sops = count_sops(trains[:-1], fan_outs)
    ann_sizes = [actor.obs_dim, *actor.cfg.hidden_sizes, actor.act_dim]
    layers = []
    for i, layer in enumerate(actor.layers):
        ann_in, ann_out = ann_sizes[i], ann_sizes[i + 1]
        layers.append(
            {
                "name": f"{names[i]} -> {names[i + 1]}",
                "in_features": layer.in_features,
                "out_features": layer.out_features,
                "input_population": names[i],
                "input_firing_rate": populations[i]["firing_rate"],
                "sops_per_action": sops[i] / n,
                "dense_sops_per_action": steps * layer.in_features * layer.out_features,
                "ann_in_features": ann_in,
                "ann_out_features": ann_out,
                "ann_macs_per_action": ann_in * ann_out,
            }
        )
    total_sops = sum(sops) / n
    decoder_macs = actor.act_dim * actor.decoder.pop_dim
    ann_macs = sum(layer["ann_macs_per_action"] for layer in layers)
    snn_energy = e_ac * total_sops + e_mac * decoder_macs
    ann_energy = e_mac * ann_macs
    ann_int8_energy = e_mac_int8 * ann_macs
    return {
        "n_observations": n,
        "time_steps": steps,
        "constants": {"e_ac_j": e_ac, "e_mac_j": e_mac, "e_mac_int8_j": e_mac_int8},
        "populations": populations,
        "layers": layers,
        "totals": {
            "sops_per_action": total_sops,
            "dense_sops_per_action": sum(layer["dense_sops_per_action"] for layer in layers),
            "decoder_macs_per_action": decoder_macs,
            "ann_macs_per_action": ann_macs,
            "snn_energy_j": snn_energy,
            "ann_energy_j": ann_energy,
            "ann_int8_energy_j": ann_int8_energy,
            "ann_over_snn": ann_energy / snn_energy if snn_energy > 0 else float("inf"),
            "ann_int8_over_snn": (ann_int8_energy / snn_energy if snn_energy > 0 else float("inf")),
        },
        "caveats": list(ENERGY_CAVEATS),
    }


@torch.no_grad()
def collect_observations(
    actor: PopSpikingActor,
    env: Any,
    seed: int,
    generator: torch.Generator | None = None,
) -> np.ndarray:
    """Observations ``[N, O]`` the deterministic policy acts on during one episode of ``env``
    (a gymnasium env, reset with ``seed``)."""
    device = actor.action_scale.device
    obs, _ = env.reset(seed=seed)
    seen = []
    while True:
        seen.append(np.asarray(obs, dtype=np.float32))
        x = torch.as_tensor(seen[-1], device=device).unsqueeze(0)
        action = actor(x, generator)[0].cpu().numpy()
        obs, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            return np.stack(seen)


def format_energy_report(report: dict[str, Any]) -> str:
    """A plain-text table of :func:`energy_report`'s result."""
    c, t = report["constants"], report["totals"]
    lines = [
        f"energy per action over {report['n_observations']} observations, "
        f"T = {report['time_steps']} (E_AC {c['e_ac_j'] * 1e12:g} pJ, "
        f"E_MAC {c['e_mac_j'] * 1e12:g} pJ)",
        f"{'population':<12} {'neurons':>8} {'firing rate':>12} {'spikes/action':>14}",
    ]
    for p in report["populations"]:
        lines.append(
            f"{p['name']:<12} {p['neurons']:>8d} {p['firing_rate']:>11.1%} "
            f"{p['spikes_per_action']:>14.1f}"
        )
    lines.append(
        f"{'layer':<22} {'neurons':>8} {'input rate':>11} {'SOPs/action':>12} "
        f"{'dense SOPs':>11} {'ANN layer':>10} {'MACs/action':>12}"
    )
    for layer in report["layers"]:
        ann = f"{layer['ann_in_features']}x{layer['ann_out_features']}"
        lines.append(
            f"{layer['name']:<22} {layer['out_features']:>8d} "
            f"{layer['input_firing_rate']:>10.1%} {layer['sops_per_action']:>12.1f} "
            f"{layer['dense_sops_per_action']:>11d} {ann:>10} "
            f"{layer['ann_macs_per_action']:>12d}"
        )
    lines.append(
        f"{'total':<22} {'':>8} {'':>11} {t['sops_per_action']:>12.1f} "
        f"{t['dense_sops_per_action']:>11d} {'':>10} {t['ann_macs_per_action']:>12d}"
    )
    lines += [
        f"population decoder (host, float): {t['decoder_macs_per_action']} MACs/action",
        f"energy/action: SNN {t['snn_energy_j'] * 1e9:.3f} nJ (E_AC x SOPs + E_MAC x decoder MACs)",
        f"               ANN FP32 {t['ann_energy_j'] * 1e9:.3f} nJ "
        f"-> ANN/SNN = {t['ann_over_snn']:.2f}x",
        f"               ANN INT8 {t['ann_int8_energy_j'] * 1e9:.3f} nJ "
        f"-> ANN/SNN = {t['ann_int8_over_snn']:.2f}x",
        "caveats:",
        *[f"  - {cav}" for cav in report["caveats"]],
    ]
    return "\n".join(line.rstrip() for line in lines)
