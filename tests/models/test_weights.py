"""The inference-weights contract: layout, mask and validation."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from models.wavernn import WaveRNN
from models.weights import InferenceWeights, extract_weights


def test_gate_rows_follow_the_papers_u_r_e_order(tiny_model: WaveRNN) -> None:
    w = extract_weights(tiny_model)
    h = w.hidden_size
    r, z, n = tiny_model.rnn.weight_hh_l0.detach().split(h)
    assert torch.equal(w.R[:h], z) and torch.equal(w.R[h : 2 * h], r) and torch.equal(w.R[2 * h :], n)


def test_mask_is_applied_in_the_contract(tiny_model: WaveRNN) -> None:
    with torch.no_grad():
        tiny_model.rnn.weight_ih_l0[:, 2] = 5.0
    w = extract_weights(tiny_model)
    h, half = w.hidden_size, w.hidden_size // 2
    for g in range(3):
        assert torch.all(w.I_coarse[g * h : g * h + half] == 0)
        assert torch.all(w.I_coarse[g * h + half : (g + 1) * h] == 5.0)


def test_contract_refuses_wrong_shapes_and_unmasked_weights(tiny_model: WaveRNN) -> None:
    w = extract_weights(tiny_model)
    with pytest.raises(ValueError, match="O2 has shape"):
        dataclasses.replace(w, O2=torch.zeros(3, 3))
    bad = w.I_coarse.clone()
    bad[0] = 1.0
    with pytest.raises(ValueError, match="I\\* mask"):
        dataclasses.replace(w, I_coarse=bad)


def test_to_device_keeps_values(tiny_model: WaveRNN) -> None:
    w = extract_weights(tiny_model)
    w2 = w.to("cpu")
    assert isinstance(w2, InferenceWeights)
    assert all(torch.equal(a, b) for a, b in zip(w.tensors().values(), w2.tensors().values(), strict=True))
