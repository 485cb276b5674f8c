"""Tests for the population decoder in ``spiking_dreamer.snn.decoding``."""

from __future__ import annotations

import math

import torch

from spiking_dreamer.snn.decoding import PopulationDecoder


def hand_decoder() -> PopulationDecoder:
    dec = PopulationDecoder(out_dim=2, pop_dim=3)
    with torch.no_grad():
        dec.weight.copy_(torch.tensor([[1.0, 2.0, 3.0], [-1.0, 0.5, 0.0]]))
        dec.bias.copy_(torch.tensor([0.1, -0.2]))
    return dec


def test_hand_computed_weighted_sum() -> None:
    """Rates are grouped output-major: neurons 0-2 feed output 0, neurons 3-5 feed output 1."""
    rates = torch.tensor([[1.0, 0.0, 1.0, 0.5, 0.5, 1.0], [0.0, 0.0, 0.0, 1.0, 1.0, 1.0]])
    # row 0: y_0 = 1*1 + 2*0 + 3*1 + 0.1 = 4.1;   y_1 = -1*0.5 + 0.5*0.5 + 0*1 - 0.2 = -0.45
    # row 1: y_0 = 0 + 0.1 = 0.1;                  y_1 = -1 + 0.5 + 0 - 0.2 = -0.7
    out = hand_decoder()(rates)
    assert out.shape == (2, 2)
    torch.testing.assert_close(out, torch.tensor([[4.1, -0.45], [0.1, -0.7]]))


def test_outputs_depend_only_on_their_group() -> None:
    dec = hand_decoder()
    base = dec(torch.zeros(1, 6))
    torch.testing.assert_close(base, torch.tensor([[0.1, -0.2]]))
    bumped = dec(torch.tensor([[0.0, 0.0, 0.0, 0.0, 2.0, 0.0]]))  # neuron 1 of output 1
    torch.testing.assert_close(bumped, torch.tensor([[0.1, -0.2 + 0.5 * 2.0]]))


def test_gradient_is_block_weight() -> None:
    dec = hand_decoder()
    rates = torch.rand(4, 6, generator=torch.Generator().manual_seed(0), requires_grad=True)
    upstream = torch.tensor([2.0, -3.0])
    (dec(rates) * upstream).sum().backward()
    expected = torch.cat([2.0 * dec.weight[0], -3.0 * dec.weight[1]]).detach().expand(4, 6)
    assert rates.grad is not None
    torch.testing.assert_close(rates.grad, expected)


def test_output_shape_and_init_bounds() -> None:
    dec = PopulationDecoder(out_dim=4, pop_dim=10)
    rates = torch.rand(5, 40, generator=torch.Generator().manual_seed(1))
    assert dec(rates).shape == (5, 4)
    assert dec.weight.shape == (4, 10)
    assert dec.bias.shape == (4,)
    bound = 1.0 / math.sqrt(10)
    assert dec.weight.abs().max() <= bound
    assert dec.bias.abs().max() <= bound
