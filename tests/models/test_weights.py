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


def test_temperature_divides_the_logits_of_both_heads(tiny_model: WaveRNN) -> None:
    """Sampling at T draws from softmax(logits / T): the reference sampler's first-step logits
    at T = 0.5 are twice those at T = 1 (same state, conditioning and uniforms)."""
    from models.samplers.base import SamplerState, conditioning_window, stack_windows
    from models.samplers.reference import ReferenceSampler

    hop = tiny_model.cfg.hop_length
    mel = torch.randn(1, 3, tiny_model.cfg.n_mels, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        gates = tiny_model.gate_conditioning(mel)
    window = stack_windows([conditioning_window(gates[0], 0, hop, hop)])
    uniforms = torch.rand(1, hop, 2, generator=torch.Generator().manual_seed(5))
    first = []
    for t in (1.0, 0.5):
        sampler = ReferenceSampler(extract_weights(tiny_model, temperature=t), record_logits=True)
        sampler.generate(SamplerState.initial(1, sampler.hidden_size), window, uniforms)
        assert sampler.last_logits is not None
        first.append([logits[:, 0] for logits in sampler.last_logits])  # later steps differ: other draws
    for head in range(2):
        torch.testing.assert_close(first[1][head], 2 * first[0][head], rtol=1e-5, atol=1e-6)


def test_temperature_one_is_the_trained_heads_and_bad_values_are_refused(tiny_model: WaveRNN) -> None:
    plain, at_one = extract_weights(tiny_model), extract_weights(tiny_model, temperature=1.0)
    assert all(torch.equal(a, b) for a, b in zip(plain.tensors().values(), at_one.tensors().values(), strict=True))
    cold = extract_weights(tiny_model, temperature=0.25)
    assert torch.equal(cold.O1, plain.O1) and torch.equal(cold.R, plain.R)  # only the last layers change
    torch.testing.assert_close(cold.O4_bias, 4 * plain.O4_bias)
    for bad in (0.0, -1.0, 2.5, float("nan"), "warm", True):
        with pytest.raises(ValueError, match=r"temperature must be a number from 0\.05 to 2"):
            extract_weights(tiny_model, temperature=bad)  # type: ignore[arg-type]
