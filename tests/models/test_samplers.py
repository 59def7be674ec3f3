"""The reference sampler agrees with teacher forcing, is block-invariant, and carries its state."""

from __future__ import annotations

import pytest
import torch

from models.audio import split_pcm
from models.samplers.base import (
    SamplerState,
    UniformSource,
    conditioning_window,
    draw_batch,
    sample_classes,
    stack_windows,
)
from models.samplers.reference import ReferenceSampler
from models.wavernn import WaveRNN
from models.weights import extract_weights
from tests.models.blocks import generate_in_blocks

#: Teacher-forced (nn.GRU) and step-by-step logits differ only by float32 rounding of a
#: different summation order (interpolating before vs after the input projection).
LOGIT_ATOL = 1e-5


def _utterance(model: WaveRNN, frames: int, seed: int, batch: int = 1):
    g = torch.Generator().manual_seed(seed)
    mel = torch.randn(batch, frames, model.cfg.n_mels, generator=g) * 2 - 5
    with torch.no_grad():
        gates = model.gate_conditioning(mel)  # (B, T, 3H)
    return mel, gates


def test_teacher_forced_and_sampler_logits_agree(tiny_model: WaveRNN) -> None:
    hop = tiny_model.cfg.hop_length
    mel, gates = _utterance(tiny_model, frames=6, seed=3, batch=2)
    n = 6 * hop
    sampler = ReferenceSampler(extract_weights(tiny_model), record_logits=True)
    windows = stack_windows([conditioning_window(g, 0, n, hop) for g in gates])
    uniforms = torch.rand(2, n, 2, generator=torch.Generator().manual_seed(9))
    pcm, state = sampler.generate(SamplerState.initial(2, sampler.hidden_size), windows, uniforms)
    coarse, fine = split_pcm(pcm)
    with torch.no_grad():
        lc, lf, h_n = tiny_model(mel, coarse, fine)
    assert sampler.last_logits is not None
    torch.testing.assert_close(sampler.last_logits[0], lc, rtol=0, atol=LOGIT_ATOL)
    torch.testing.assert_close(sampler.last_logits[1], lf, rtol=0, atol=LOGIT_ATOL)
    torch.testing.assert_close(state.h, h_n, rtol=0, atol=LOGIT_ATOL)
    # the sampled classes are real draws, not constants
    assert len(torch.unique(coarse)) > 5 and len(torch.unique(fine)) > 20


@pytest.mark.parametrize("sizes", [[1, 2, 3, 250, 44], [29, 31, 240], [7] * 42 + [6], [150, 150]])
def test_blocks_of_any_sizes_equal_whole_utterance(tiny_model: WaveRNN, sizes: list[int]) -> None:
    hop = tiny_model.cfg.hop_length
    _, gates = _utterance(tiny_model, frames=10, seed=5)
    n = 10 * hop
    assert sum(sizes) == n
    sampler = ReferenceSampler(extract_weights(tiny_model))
    uniforms = UniformSource(42).draw(n)
    whole, s_whole = generate_in_blocks(sampler, gates[0], uniforms, [n])
    parts, s_parts = generate_in_blocks(sampler, gates[0], uniforms, sizes)
    assert torch.equal(whole, parts)
    assert torch.equal(s_whole.h, s_parts.h)
    assert torch.equal(s_whole.coarse, s_parts.coarse) and torch.equal(s_whole.fine, s_parts.fine)
    assert int(s_parts.position[0]) == n


def test_uniform_source_is_block_invariant() -> None:
    a = UniformSource(7)
    chunks = torch.cat([a.draw(3), a.draw(1), a.draw(96)])
    whole = UniformSource(7).draw(100)
    assert torch.equal(chunks, whole)
    assert not torch.equal(UniformSource(8).draw(100), whole)
    assert float(whole.min()) >= 0.0 and float(whole.max()) < 1.0
    with pytest.raises(ValueError, match="non-negative integer"):
        UniformSource(-1)


def test_streams_at_different_positions_share_one_batched_call(tiny_model: WaveRNN) -> None:
    """Continuous batching: a stream joining late equals the same stream generated alone."""
    hop = tiny_model.cfg.hop_length
    _, gates = _utterance(tiny_model, frames=8, seed=11, batch=2)
    sampler = ReferenceSampler(extract_weights(tiny_model))
    src = [UniformSource(1), UniformSource(2)]
    u0, u1 = src[0].draw(240), src[1].draw(130)
    alone0, _ = generate_in_blocks(sampler, gates[0], u0, [240])
    alone1, _ = generate_in_blocks(sampler, gates[1], u1, [130])
    # stream 0 runs 110 samples alone, then stream 1 joins at its position 0
    s0 = SamplerState.initial(1, sampler.hidden_size)
    first, s0 = sampler.generate(s0, conditioning_window(gates[0], 0, 110, hop).unsqueeze(0), u0[None, :110])
    state = SamplerState.concat([s0, SamplerState.initial(1, sampler.hidden_size)])
    windows = stack_windows([conditioning_window(gates[0], 110, 130, hop), conditioning_window(gates[1], 0, 130, hop)])
    both, state = sampler.generate(state, windows, torch.stack([u0[110:], u1]))
    assert torch.equal(torch.cat([first[0], both[0]]), alone0)
    assert torch.equal(both[1], alone1)
    assert state.position.tolist() == [240, 130]
    assert state.select([1]).position.tolist() == [130]


def test_state_carries_previous_sample_and_hidden_vector(tiny_model: WaveRNN) -> None:
    hop = tiny_model.cfg.hop_length
    _, gates = _utterance(tiny_model, frames=4, seed=2)
    sampler = ReferenceSampler(extract_weights(tiny_model))
    uniforms = UniformSource(3).draw(60)
    pcm, state = generate_in_blocks(sampler, gates[0], uniforms, [60])
    last_c, last_f = split_pcm(pcm[-1:])
    assert int(state.coarse[0]) == int(last_c[0]) and int(state.fine[0]) == int(last_f[0])
    # a different carried hidden vector changes what comes next
    window = conditioning_window(gates[0], 60, 30, hop).unsqueeze(0)
    nxt = UniformSource(4).draw(30).unsqueeze(0)
    a, _ = sampler.generate(state, window, nxt)
    other = SamplerState(state.h + 0.5, state.coarse, state.fine, state.position)
    b, _ = sampler.generate(other, window, nxt)
    assert not torch.equal(a, b)


def test_inverse_cdf_sampling_follows_the_distribution() -> None:
    logits = torch.full((1, 256), -1e9)
    logits[0, 10], logits[0, 200] = 0.0, 0.0  # two equally likely classes
    u = torch.tensor([0.0, 0.25, 0.4999, 0.5001, 0.99])
    classes = sample_classes(logits.expand(5, -1), u)
    assert classes.tolist() == [10, 10, 10, 200, 200]
    assert int(sample_classes(torch.zeros(1, 256), torch.tensor([0.999999]))[0]) == 255


def test_bad_block_inputs_raise_clear_errors(tiny_model: WaveRNN) -> None:
    hop = tiny_model.cfg.hop_length
    _, gates = _utterance(tiny_model, frames=4, seed=2)
    sampler = ReferenceSampler(extract_weights(tiny_model))
    state = SamplerState.initial(1, sampler.hidden_size)
    short = gates[0][:1].unsqueeze(0)
    with pytest.raises(ValueError, match="conditioning_window"):
        sampler.generate(state, short, torch.rand(1, 60, 2))
    with pytest.raises(ValueError, match="uniforms must be"):
        sampler.generate(state, gates, torch.rand(1, 60))
    with pytest.raises(ValueError, match="past the utterance end"):
        conditioning_window(gates[0], 4 * hop, 10, hop)
    with pytest.raises(ValueError, match="at least one"):
        SamplerState.concat([])


def test_draw_batch_rows_are_each_streams_own_draws() -> None:
    batch = draw_batch([UniformSource(1), UniformSource(2)], 5)
    assert torch.equal(batch[1], UniformSource(2).draw(5))
