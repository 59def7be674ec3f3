"""Fold-and-crossfade: segment plans, click-free seams, and generation that matches single-stream."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from models.config import VoiceConfig
from models.samplers.fold import (
    FoldVocoder,
    Segment,
    crossfade_join,
    fade_curves,
    join_range,
    plan_segments,
    segment_seed,
)
from models.samplers.reference import ReferenceSampler
from models.vocoder import Vocoder
from models.wavernn import WaveRNN
from models.weights import extract_weights


def test_plan_covers_the_utterance_with_fixed_overlaps() -> None:
    for total in range(1, 40):
        for S, O in [(1, 0), (4, 0), (4, 1), (5, 3), (10, 2)]:
            plan = plan_segments(total, S, O)
            assert plan[0].start_frame == 0 and plan[-1].end_frame == total
            assert [seg.index for seg in plan] == list(range(len(plan)))
            for a, b in itertools.pairwise(plan):
                assert b.start_frame == a.start_frame + S
                assert a.end_frame - b.start_frame == O  # neighbours share exactly O frames
                assert a.num_frames == S + O
            assert O < plan[-1].num_frames <= S + O or len(plan) == 1
            assert (len(plan) == 1) == (total <= S + O)


def test_plan_edge_cases_and_errors() -> None:
    assert plan_segments(3, 10, 2) == [Segment(0, 0, 3)]  # shorter than one segment
    assert plan_segments(13, 5, 2) == [Segment(0, 0, 7), Segment(1, 5, 12), Segment(2, 10, 13)]  # last shorter
    with pytest.raises(ValueError, match="overlap_frames"):
        plan_segments(20, 4, 4)
    with pytest.raises(ValueError, match="overlap_frames"):
        plan_segments(20, 4, -1)
    with pytest.raises(ValueError, match="segment_frames"):
        plan_segments(20, 0, 0)
    with pytest.raises(ValueError, match="total_frames"):
        plan_segments(0, 4, 1)
    with pytest.raises(ValueError, match="fade"):
        fade_curves(4, "cubic")
    with pytest.raises(ValueError):
        segment_seed(-1, 0)


@pytest.mark.parametrize("kind", ["linear", "equal_power"])
def test_fade_curves(kind: str) -> None:
    out, inn = fade_curves(64, kind)
    assert np.all(np.diff(out) < 0) and np.all(np.diff(inn) > 0)
    assert 0 < inn[0] < 0.05 and 0.95 < out[0] < 1
    power = out + inn if kind == "linear" else out**2 + inn**2
    np.testing.assert_allclose(power, 1.0, atol=1e-12)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _max_jump(x: np.ndarray) -> float:
    return float(np.abs(np.diff(x.astype(np.float64))).max())


@pytest.mark.parametrize("kind", ["linear", "equal_power"])
def test_seams_are_click_free_on_smooth_signals(kind: str) -> None:
    hop, plan = 100, plan_segments(22, 6, 3)  # 4 segments, 300-sample crossfades
    assert len(plan) == 4
    segs = []
    for k, seg in enumerate(plan):
        n = np.arange(seg.num_frames * hop)
        freq, phase, amp = 150 + 40 * k, 1.3 * k + 0.4, 9000 - 1000 * k
        segs.append(np.rint(amp * np.sin(2 * np.pi * freq * n / 24000 + phase)).astype(np.int16))
    out = crossfade_join(segs, plan, hop, kind)
    assert out.shape == (22 * hop,) and out.dtype == np.int16
    inside = max(_max_jump(s) for s in segs)
    assert _max_jump(out) <= 1.5 * inside
    # a hard cut at the same places clicks
    hard = np.concatenate(
        [segs[k][: (plan[k + 1].start_frame - seg.start_frame) * hop] for k, seg in enumerate(plan[:-1])]
    )
    hard = np.concatenate([hard, segs[-1]])
    assert _max_jump(hard) > 5 * inside


def test_join_range_pieces_equal_the_whole() -> None:
    hop, plan = 10, plan_segments(17, 5, 2)
    rng = np.random.default_rng(0)
    segs = [rng.integers(-3000, 3000, seg.num_frames * hop).astype(np.int16) for seg in plan]
    whole = crossfade_join(segs, plan, hop)
    cuts = [0, 7, 50, 51, 99, 170]
    pieces = [join_range(segs, plan, hop, a, b) for a, b in itertools.pairwise(cuts)]
    np.testing.assert_array_equal(np.concatenate(pieces), whole)
    with pytest.raises(ValueError, match="start"):
        join_range(segs, plan, hop, 0, 171)
    with pytest.raises(ValueError, match="segments for a plan"):
        crossfade_join(segs[:-1], plan, hop)


def _gates(model: WaveRNN, frames: int, seed: int = 5) -> tuple[np.ndarray, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    mel = (torch.randn(frames, model.cfg.n_mels, generator=g) * 2 - 5).numpy()
    with torch.no_grad():
        gates = model.gate_conditioning(torch.from_numpy(mel).unsqueeze(0))[0]  # (T, 3H)
    return mel, gates


def test_one_segment_equals_single_stream_generation(tiny_model: WaveRNN, tiny_voice: VoiceConfig) -> None:
    mel, gates = _gates(tiny_model, frames=5)
    vocoder = Vocoder(tiny_model, tiny_voice)
    fold = FoldVocoder(vocoder.sampler, segment_frames=8, overlap_frames=2, block_samples=64)
    assert len(fold.plan(5)) == 1
    torch.testing.assert_close(vocoder.gate_frames(mel), gates)
    expected = vocoder.vocode(mel, seed=11, block_samples=64)
    np.testing.assert_array_equal(fold.generate(gates, seed=11), expected)


def test_fold_generation_end_to_end(tiny_model: WaveRNN) -> None:
    hop = tiny_model.cfg.hop_length
    _, gates = _gates(tiny_model, frames=8)
    sampler = ReferenceSampler(extract_weights(tiny_model))
    fold = FoldVocoder(sampler, segment_frames=3, overlap_frames=1, block_samples=25, fade="linear")
    plan = fold.plan(8)
    assert [(s.start_frame, s.end_frame) for s in plan] == [(0, 4), (3, 7), (6, 8)]
    out = fold.generate(gates, seed=3)
    assert out.shape == (8 * hop,) and out.dtype == np.int16
    np.testing.assert_array_equal(fold.generate(gates, seed=3), out)  # deterministic
    assert not np.array_equal(fold.generate(gates, seed=4), out)
    segs = fold.generate_segments(gates, seed=3)
    assert [s.shape[0] for s in segs] == [4 * hop, 4 * hop, 2 * hop]
    np.testing.assert_array_equal(crossfade_join(segs, plan, hop, "linear"), out)
    # outside overlaps the segments' own samples; inside, the weighted mix of both
    np.testing.assert_array_equal(out[: 3 * hop], segs[0][: 3 * hop])
    np.testing.assert_array_equal(out[4 * hop : 6 * hop], segs[1][hop : 3 * hop])
    np.testing.assert_array_equal(out[7 * hop :], segs[2][hop:])
    fo, fi = fade_curves(hop, "linear")
    mix = np.rint(fo * segs[0][3 * hop :] + fi * segs[1][:hop])
    np.testing.assert_array_equal(out[3 * hop : 4 * hop], mix.astype(np.int16))
    # segment 0 is the same stream single-stream generation of its frames would give
    solo = FoldVocoder(sampler, segment_frames=100, overlap_frames=0, block_samples=25)
    np.testing.assert_allclose(solo.generate(gates[:4], seed=3).astype(float), segs[0].astype(float), atol=0)
    # streaming yields the same samples; segment 0 comes out block by block
    pieces = list(fold.stream(gates, seed=3))
    np.testing.assert_array_equal(np.concatenate(pieces), out)
    assert len(pieces) > 2 and pieces[0].shape[0] == 25


def test_fold_vocoder_errors(tiny_model: WaveRNN) -> None:
    sampler = ReferenceSampler(extract_weights(tiny_model))
    with pytest.raises(ValueError, match="overlap_frames"):
        FoldVocoder(sampler, segment_frames=2, overlap_frames=2)
    with pytest.raises(ValueError, match="block_samples"):
        FoldVocoder(sampler, segment_frames=4, overlap_frames=1, block_samples=0)
    with pytest.raises(ValueError, match="fade"):
        FoldVocoder(sampler, segment_frames=4, overlap_frames=1, fade="hard")
    fold = FoldVocoder(sampler, segment_frames=4, overlap_frames=1)
    with pytest.raises(ValueError, match="gate conditioning"):
        fold.generate(torch.zeros(5, 7))
    with pytest.raises(ValueError, match="gate conditioning"):
        fold.generate(torch.zeros(0, 3 * sampler.hidden_size))
