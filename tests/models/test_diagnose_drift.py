"""benchmarks/diagnose_drift.py: spans restarted from teacher-forced states are what they claim."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from models.audio import float_to_pcm, split_pcm
from models.config import VoiceConfig
from models.features import log_mel
from models.samplers.cpu import CpuSampler
from models.vocoder import cpu_vocoder
from models.voices import untrained_voice
from models.weights import extract_weights

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from diagnose_drift import copy_in_spans


def _setup() -> tuple:
    voice = untrained_voice(VoiceConfig.tiny(hidden_size=32, n_mels=8, hop_length=30))
    t = np.arange(2400) / voice.config.features.sample_rate
    pcm = float_to_pcm((0.4 * np.sin(2 * np.pi * 220 * t)).astype(np.float32))
    return voice, CpuSampler(extract_weights(voice.model, temperature=voice.temperature), threads=1), pcm


def test_every_span_starts_from_the_teacher_forced_state() -> None:
    # span 2 draws the first sample of each pair from the state teacher forcing reaches, with the
    # uniform that span 1 uses for that sample on the teacher-forced softmax: the same coarse
    # class; the same fine class too where the drawn coarse class is the original one (span 1
    # draws every fine class given the original coarse class, the script's stated approximation)
    voice, sampler, pcm = _setup()
    one = copy_in_spans(voice, sampler, pcm, 1, seed=3, temperature=voice.temperature)
    two = copy_in_spans(voice, sampler, pcm, 2, seed=3, temperature=voice.temperature)
    assert one.shape == two.shape and one.shape[0] >= 2400  # whole frames
    original = np.zeros_like(one)
    original[: pcm.shape[0]] = pcm
    (c1, f1), (c2, f2), (c0, _) = (split_pcm(x) for x in (one, two, original))
    first = np.arange(0, one.shape[0], 2)
    assert np.mean(c1[first] == c2[first]) > 0.995  # a draw may round across a class edge, rarely
    same = first[c2[first] == c0[first]]
    assert np.array_equal(f1[same], f2[same])
    assert not np.array_equal(one, two)  # the second sample of a pair follows span 2's own draw


def test_span_zero_is_plain_synthesis() -> None:
    voice, sampler, pcm = _setup()
    plain = copy_in_spans(voice, sampler, pcm, 0, seed=5, temperature=voice.temperature)
    mel = log_mel(pcm.astype(np.float32) / 32768, voice.config.features)
    served = cpu_vocoder(voice.model, voice.config, temperature=voice.temperature).vocode(mel, seed=5)
    np.testing.assert_array_equal(plain, served)
