"""benchmarks/guided_sampling.py: K = 1 is plain synthesis, and the score prefers the requested spectrum."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from models.config import VoiceConfig
from models.features import log_mel
from models.samplers.base import SamplerState, conditioning_window
from models.samplers.cpu import CpuSampler
from models.voices import untrained_voice
from models.weights import extract_weights

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from guided_sampling import FrameScore, guided_copy

VOICE = VoiceConfig.tiny(hidden_size=32, n_mels=8, hop_length=30)


def _sine(n: int, hz: float) -> np.ndarray:
    return (0.4 * np.sin(2 * np.pi * hz * np.arange(n) / VOICE.features.sample_rate)).astype(np.float32)


def test_one_candidate_is_plain_synthesis_frame_by_frame() -> None:
    voice = untrained_voice(VOICE)
    sampler = CpuSampler(extract_weights(voice.model, temperature=voice.temperature), threads=1)
    mel = log_mel(_sine(900, 220.0), VOICE.features)
    hop = VOICE.features.hop_length
    score = FrameScore(VOICE.features, 2 * hop)
    got = guided_copy(voice, sampler, mel, 1, score, torch.Generator().manual_seed(5))
    # the same uniforms, frame by frame, through the sampler with its state carried
    gen = torch.Generator().manual_seed(5)
    with torch.no_grad():
        gates = voice.model.gate_conditioning(torch.from_numpy(mel).unsqueeze(0))[0]
    state, want = SamplerState.initial(1, sampler.hidden_size), []
    for start in range(0, mel.shape[0] * hop, hop):
        block, state = sampler.generate(state, conditioning_window(gates, start, hop, hop).unsqueeze(0),
                                        torch.rand(1, hop, 2, generator=gen))
        want.append(block[0].numpy())
    assert got.dtype == np.int16 and np.array_equal(got, np.concatenate(want))


def test_score_ranks_the_requested_spectrum_first() -> None:
    cfg = VOICE.features
    size = 4 * cfg.hop_length
    tone = _sine(4096, 1000.0)
    target = log_mel(tone, cfg)[40]  # a frame well inside the tone
    rng = np.random.default_rng(0)
    tails = np.stack([
        0.05 * rng.standard_normal(size),  # noise
        tone[1000 : 1000 + size],  # the tone itself
        _sine(size, 3000.0),  # another tone
    ])
    scores = FrameScore(cfg, size)(tails, target)
    assert scores.shape == (3,) and int(np.argmin(scores)) == 1
    with pytest.raises(ValueError, match="score-window"):
        FrameScore(cfg, cfg.hop_length - 2)
    with pytest.raises(ValueError, match="score-window"):
        FrameScore(cfg, cfg.n_fft + 2)


class _Quietest:
    """A score that prefers the candidate with the least energy (stands in for FrameScore)."""

    def __init__(self, size: int) -> None:
        self.size = size

    def __call__(self, tails: np.ndarray, target: np.ndarray) -> np.ndarray:
        return np.square(tails[:, -VOICE.features.hop_length :]).mean(axis=1)


def test_more_candidates_follow_the_score() -> None:
    # with a score that asks for quiet frames, keeping the best of 8 gives a quieter output than
    # plain synthesis from the same seed, frame after frame
    voice = untrained_voice(VOICE)
    sampler = CpuSampler(extract_weights(voice.model, temperature=voice.temperature), threads=1)
    mel = log_mel(_sine(3000, 220.0), VOICE.features)
    score = _Quietest(2 * VOICE.features.hop_length)
    energy = {k: float(np.square(guided_copy(voice, sampler, mel, k, score,  # type: ignore[arg-type]
                                             torch.Generator().manual_seed(1)).astype(np.float64)).mean())
              for k in (1, 8)}
    assert energy[8] < 0.9 * energy[1]
