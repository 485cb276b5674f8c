"""Neuromorphic deployment of the spiking actor: NIR and safetensors export.

NIR export
----------
:func:`export_nir` writes a trained actor checkpoint as a ``nir.NIRGraph`` (Neuromorphic
Intermediate Representation, HDF5)::

    input [O * P_in] -> fc1 (Affine) -> lif1 (CubaLIF) -> ... -> fcL -> lifL [A * P_out] -> output

one ``nir.Affine(weight, bias)`` and one ``nir.CubaLIF`` per actor layer (hidden layers and the
output population). For a SAC actor (PopSAN-SAC) this is the mean path, i.e. the deterministic
action an evaluation takes: the log-std network (or, fully spiking, the log-std population) only
shapes the exploration noise while training and is not exported to NIR (the safetensors export
holds every weight).

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
the step snntorch's NIR importer assumes; its importer asserts ``r == tau_mem / dt`` and
``v_leak == 0``, and rescales the threshold (with a warning) unless ``w_in * dt / tau_syn == 1``,
which holds here. A decay of exactly 1 (no leak) has no finite time constant and is
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

Energy accounting lives in :mod:`spiking_dreamer.energy`; its names are re-exported here.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from spiking_dreamer import __version__
from spiking_dreamer.agent import Actor, PopSpikingActor
from spiking_dreamer.energy import E_AC_FP32 as E_AC_FP32  # energy names, re-exported
from spiking_dreamer.energy import E_MAC_FP32 as E_MAC_FP32
from spiking_dreamer.energy import E_MAC_INT8 as E_MAC_INT8
from spiking_dreamer.energy import ENERGY_CAVEATS as ENERGY_CAVEATS
from spiking_dreamer.energy import collect_observations as collect_observations
from spiking_dreamer.energy import count_sops as count_sops
from spiking_dreamer.energy import energy_report as energy_report
from spiking_dreamer.energy import format_energy_report as format_energy_report
from spiking_dreamer.errors import MissingExtraError as MissingExtraError  # re-exported
from spiking_dreamer.errors import import_extra
from spiking_dreamer.files import atomic_write, atomic_write_json
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
    atomic_write(out_path, lambda tmp: nir.write(str(tmp), graph))
    sidecar = {**_to_json(meta), "nir_file": out_path.name, "metadata_in_graph": in_graph}
    atomic_write_json(side, sidecar)
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
    atomic_write(out_path, lambda tmp: st.save_file(tensors, str(tmp), metadata=metadata))
    return {"format": "safetensors", "path": str(out_path), "tensors": sorted(tensors)}
