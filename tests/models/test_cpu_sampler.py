"""The compiled CPU sampler matches the reference on the same inputs, and is block- and batch-invariant."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from models.config import VoiceConfig
from models.samplers.base import (
    SamplerState,
    UniformSource,
    conditioning_window,
    draw_batch,
    stack_windows,
)
from models.samplers.blocksparse import KIND_DENSE, matvec, pack_matrix
from models.samplers.cpu import CpuSampler, detect_block
from models.samplers.reference import ReferenceSampler
from models.sparsity import block_mask, gate_masks
from models.wavernn import WaveRNN
from models.weights import InferenceWeights, extract_weights
from tests.models.blocks import generate_in_blocks

#: Per-step class flips allowed against the reference (measured: 0 on these models). A flip
#: needs a draw within ~1e-7 of a CDF step, where float32 rounding of a different summation
#: order decides.
MAX_FLIP_RATE = 0.01
#: Per-step logits and state against the reference, from the same state.
ATOL = 1e-5


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _gates(model: WaveRNN, frames: int, seed: int, batch: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    mel = torch.randn(batch, frames, model.cfg.n_mels, generator=g) * 2 - 5
    with torch.no_grad():
        return model.gate_conditioning(mel)  # (B, T, 3H)


def _sparse_weights(sparsity: float, block: tuple[int, int]) -> tuple[WaveRNN, InferenceWeights]:
    """A tiny H = 64 model whose R (per gate) and heads are block-pruned."""
    torch.manual_seed(7)
    model = WaveRNN(VoiceConfig.tiny(hidden_size=64, n_mels=8, hop_length=30).model).eval()
    with torch.no_grad():
        model.O2.weight.mul_(8.0)
        model.O4.weight.mul_(8.0)
        model.rnn.weight_ih_l0.mul_(3.0)
        model.rnn.weight_hh_l0.mul_(gate_masks(model.rnn.weight_hh_l0, sparsity, block) * 4.0)
        for name in ("O1", "O2", "O3", "O4"):
            w = getattr(model, name).weight
            w.mul_(block_mask(w, 0.8, block))
    return model, extract_weights(model)


def _lockstep(ref: ReferenceSampler, fast: CpuSampler, gates: torch.Tensor, n: int, seeds: list[int]) -> int:
    """Step both samplers from the reference's state; return the count of differing samples."""
    hop = ref.hop_length
    b = gates.shape[0]
    state = SamplerState.initial(b, ref.hidden_size)
    uniforms = draw_batch([UniformSource(s) for s in seeds], n)
    flips = 0
    for k in range(n):
        window = stack_windows([conditioning_window(g, k, 1, hop) for g in gates])
        pr, sr = ref.generate(state, window, uniforms[:, k : k + 1])
        pf, sf = fast.generate(state, window, uniforms[:, k : k + 1])
        assert ref.last_logits is not None and fast.last_logits is not None
        torch.testing.assert_close(fast.last_logits[0], ref.last_logits[0], rtol=0, atol=ATOL)
        torch.testing.assert_close(fast.last_logits[1], ref.last_logits[1], rtol=0, atol=ATOL)
        torch.testing.assert_close(sf.h, sr.h, rtol=0, atol=ATOL)
        flips += int((pr != pf).sum())
        state = sr
    return flips


def test_dense_matches_reference_on_the_same_draws(tiny_model: WaveRNN) -> None:
    hop = tiny_model.cfg.hop_length
    gates = _gates(tiny_model, frames=20, seed=3, batch=3)
    weights = extract_weights(tiny_model)
    ref = ReferenceSampler(weights, record_logits=True)
    fast = CpuSampler(weights, threads=1, record_logits=True)
    assert all(d["kernel"] == "dense" for d in fast.describe().values())
    n = 20 * hop
    # whole utterances: identical audio (a flip would make everything after it differ)
    windows = stack_windows([conditioning_window(g, 0, n, hop) for g in gates])
    uniforms = draw_batch([UniformSource(s) for s in (1, 2, 3)], n)
    state = SamplerState.initial(3, weights.hidden_size)
    p_ref, s_ref = ref.generate(state, windows, uniforms)
    p_fast, s_fast = fast.generate(state, windows, uniforms)
    assert torch.equal(p_ref, p_fast)
    assert torch.equal(s_ref.coarse, s_fast.coarse) and torch.equal(s_ref.fine, s_fast.fine)
    torch.testing.assert_close(s_fast.h, s_ref.h, rtol=0, atol=ATOL)
    assert s_fast.position.tolist() == [n] * 3
    assert len(torch.unique(p_fast)) > 100  # real draws, not constants
    # step by step from the reference's state: flips bounded, logits and state within rounding
    flips = _lockstep(ref, fast, gates, 200, [4, 5, 6])
    assert flips <= MAX_FLIP_RATE * 600


@pytest.mark.parametrize("block", [(16, 1), (4, 4)])
def test_sparse_matches_reference_and_skips_zero_blocks(block: tuple[int, int]) -> None:
    model, weights = _sparse_weights(0.95, block)
    hop = model.cfg.hop_length
    fast = CpuSampler(weights, threads=1, record_logits=True)  # block detected from R
    assert fast.block == block
    packed = fast.packed["R"]
    assert packed.kind != KIND_DENSE and packed.block == block
    n_total = 3 * (64 // block[0]) * (64 // block[1])
    assert packed.n_blocks == n_total - 3 * round(0.95 * n_total / 3)  # only the kept blocks are stored
    assert packed.density == pytest.approx(0.05, abs=0.01)
    np.testing.assert_array_equal(packed.to_dense(), weights.R.numpy())
    assert fast.packed["O1"].density == pytest.approx(0.2, abs=0.02)
    ref = ReferenceSampler(weights, record_logits=True)
    gates = _gates(model, frames=10, seed=8, batch=2)
    n = 10 * hop
    windows = stack_windows([conditioning_window(g, 0, n, hop) for g in gates])
    uniforms = draw_batch([UniformSource(11), UniformSource(12)], n)
    state = SamplerState.initial(2, weights.hidden_size)
    p_ref, _ = ref.generate(state, windows, uniforms)
    p_fast, _ = fast.generate(state, windows, uniforms)
    assert torch.equal(p_ref, p_fast)
    assert _lockstep(ref, fast, gates, 150, [13, 14]) <= MAX_FLIP_RATE * 300


@pytest.mark.parametrize("sizes", [[1, 2, 3, 250, 44], [29, 31, 240], [7] * 42 + [6]])
def test_blocks_of_any_sizes_equal_whole_utterance(tiny_model: WaveRNN, sizes: list[int]) -> None:
    gates = _gates(tiny_model, frames=10, seed=5)[0]
    n = sum(sizes)
    fast = CpuSampler(extract_weights(tiny_model), threads=1)
    uniforms = UniformSource(42).draw(n)
    whole, s_whole = generate_in_blocks(fast, gates, uniforms, [n])
    parts, s_parts = generate_in_blocks(fast, gates, uniforms, sizes)
    assert torch.equal(whole, parts)
    assert torch.equal(s_whole.h, s_parts.h)
    assert int(s_parts.position[0]) == n


@pytest.mark.parametrize("threads", [1, 2])
def test_batched_streams_equal_solo_streams_exactly(threads: int) -> None:
    """Streams joining late, in batches of 1..6, on one or two cores: bit-identical audio."""
    model, weights = _sparse_weights(0.9, (16, 1))
    hop = model.cfg.hop_length
    gates = _gates(model, frames=8, seed=11, batch=6)
    fast = CpuSampler(weights, threads=threads)
    solo = CpuSampler(weights, threads=1)
    sources = [UniformSource(20 + i) for i in range(6)]
    draws = [s.draw(240) for s in sources]
    alone = [generate_in_blocks(solo, gates[i], draws[i], [240])[0] for i in range(6)]
    # stream 0 runs 70 samples alone; streams 1..5 join at their position 0
    s0 = SamplerState.initial(1, weights.hidden_size)
    first, s0 = fast.generate(s0, conditioning_window(gates[0], 0, 70, hop).unsqueeze(0), draws[0][None, :70])
    state = SamplerState.concat([s0] + [SamplerState.initial(1, weights.hidden_size)] * 5)
    windows = stack_windows([conditioning_window(gates[0], 70, 170, hop)]
                            + [conditioning_window(gates[i], 0, 170, hop) for i in range(1, 6)])
    uniforms = torch.stack([draws[0][70:]] + [draws[i][:170] for i in range(1, 6)])
    both, state = fast.generate(state, windows, uniforms)
    assert torch.equal(torch.cat([first[0], both[0]]), alone[0])
    for i in range(1, 6):
        assert torch.equal(both[i], alone[i][:170])
    assert state.position.tolist() == [240] + [170] * 5


def test_bad_inputs_raise_the_reference_errors(tiny_model: WaveRNN) -> None:
    gates = _gates(tiny_model, frames=4, seed=2)
    fast = CpuSampler(extract_weights(tiny_model), threads=1)
    state = SamplerState.initial(1, fast.hidden_size)
    with pytest.raises(ValueError, match="conditioning_window"):
        fast.generate(state, gates[:, :1], torch.rand(1, 60, 2))
    with pytest.raises(ValueError, match="uniforms must be"):
        fast.generate(state, gates, torch.rand(1, 60))
    with pytest.raises(ValueError, match=r"state\.h must be"):
        fast.generate(SamplerState.initial(1, 8), gates, torch.rand(1, 10, 2))
    with pytest.raises(ValueError, match="block"):
        CpuSampler(extract_weights(tiny_model), block=(8, 2))  # type: ignore[arg-type]


@pytest.mark.parametrize("block", [(16, 1), (4, 4)])
def test_packed_matvec_equals_plain_product(block: tuple[int, int]) -> None:
    """Sparse, dense and batched packed products agree with each other bit for bit, and with float64."""
    rng = np.random.default_rng(0)
    w = rng.standard_normal((40, 24)).astype(np.float32)  # 40 rows: the last row block is padded
    w *= block_mask(torch.from_numpy(np.concatenate([w, np.zeros((8, 24), np.float32)])), 0.7, block).numpy()[:40]
    x = rng.standard_normal((5, 30)).astype(np.float32)
    sparse, dense = pack_matrix(w, block), pack_matrix(w, dense=True)
    assert sparse.n_blocks < dense.n_blocks
    np.testing.assert_array_equal(sparse.to_dense(), w)
    outs = []
    for m in (sparse, dense):
        y = np.zeros((5, 48), np.float32)
        matvec(m.as_tuple(), x, 3, y, 0, 5)
        y1 = np.zeros_like(y)
        for b in range(5):
            matvec(m.as_tuple(), x, 3, y1, b, b + 1)
        np.testing.assert_array_equal(y, y1)  # batch-invariant
        np.testing.assert_allclose(y[:, :40], x[:, 3:27].astype(np.float64) @ w.T.astype(np.float64), atol=1e-5)
        outs.append(y[:, :40])
    if block == (16, 1):
        np.testing.assert_array_equal(outs[0], outs[1])  # same per-row summation order


def test_block_detection() -> None:
    _, w16 = _sparse_weights(0.9, (16, 1))
    _, w44 = _sparse_weights(0.9, (4, 4))
    assert detect_block(w16.R) == (16, 1)
    assert detect_block(w44.R) == (4, 4)
    dense = dataclasses.replace(w16, R=torch.randn_like(w16.R))
    assert detect_block(dense.R) is None
    assert CpuSampler(dense, threads=1).packed["R"].kind == KIND_DENSE
