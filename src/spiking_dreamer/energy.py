"""Energy accounting of the spiking actor: synaptic operations, firing rates, energy per action.

:func:`energy_report` counts synaptic operations (SOPs = input spikes x fan-out, exactly from the
spike trains) and compares ``E_AC * SOPs + E_MAC * decoder MACs`` with ``E_MAC * MACs`` of a
dense ANN actor of the same hidden sizes (operation-count convention; 45 nm FP32 constants
E_AC = 0.9 pJ, E_MAC = 4.6 pJ from Horowitz, ISSCC 2014). The caveats are in
:data:`ENERGY_CAVEATS` and in every report; :func:`format_energy_report` prints it as a table
(``spiking-dreamer eval --energy``). For a SAC actor the report counts the mean path, the
deterministic action: the log-std head runs only while training.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from spiking_dreamer.agent import PopSpikingActor

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
