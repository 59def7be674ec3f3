"""The spectral-envelope post-filter: streaming parity with the reference, what it corrects, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from models.checkpoint import save_checkpoint
from models.config import FeatureConfig, VoiceConfig
from models.features import log_mel
from models.postfilter import StreamingPostFilter, check_max_gain_db, envelope_postfilter, postfilter_gain_db
from models.vocoder import Vocoder
from models.voices import card_postfilter, load_voice, untrained_voice
from models.voices.pack import pack_voice
from models.wavernn import WaveRNN

CFG = FeatureConfig()  # the voices' recipe: n_fft 2048, window 1200, hop 300, 80 mels


def _signal(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-0.3, 0.3, n)


def _streamed(x: np.ndarray, mel: np.ndarray, cfg: FeatureConfig, rng: np.random.Generator) -> np.ndarray:
    """The streaming filter fed in random pieces, targets arriving a few frames at a time ahead of the samples."""
    post = StreamingPostFilter(cfg)
    added = min(3, mel.shape[0])
    post.add_target(mel[:added])
    outs, pos = [], 0
    while pos < x.shape[0]:
        k = int(rng.integers(1, 3 * cfg.win_length))
        outs.append(post.push(x[pos : pos + k]))
        pos += k
        if added < mel.shape[0]:
            step = int(rng.integers(1, 12))
            post.add_target(mel[added : added + step])
            added += step
    post.add_target(mel[added:])
    outs.append(post.flush())
    assert post.delay == 0
    return np.concatenate(outs)


@pytest.mark.parametrize("n", [0, 1, 700, 1024, 1025, 2000, 300 * 40, 300 * 40 + 17])
def test_streaming_equals_the_whole_utterance_reference(n: int) -> None:
    x = _signal(n, seed=n)
    mel = np.random.default_rng(1).normal(-4.0, 1.5, (max(1, n // CFG.hop_length), CFG.n_mels))
    ref = envelope_postfilter(x, mel, CFG)
    for trial in range(3):
        out = _streamed(x, mel, CFG, np.random.default_rng(trial))
        assert out.shape == (n,)
        np.testing.assert_allclose(out, ref, atol=1e-12, err_msg=f"trial {trial}")


def test_streaming_output_lags_by_less_than_a_window() -> None:
    post = StreamingPostFilter(CFG)
    post.add_target(np.full((200, CFG.n_mels), -4.0))
    for _ in range(20):
        post.push(_signal(2400, seed=3))
        assert post.delay < max(CFG.win_length, CFG.n_fft // 2 + 1)


def _above(x: np.ndarray, hz: float) -> np.ndarray:
    """``x`` with everything below ``hz`` removed (whole-signal FFT)."""
    spec = np.fft.rfft(x)
    spec[np.fft.rfftfreq(x.shape[0], 1.0 / CFG.sample_rate) < hz] = 0
    return np.fft.irfft(spec, n=x.shape[0])


def test_a_signal_pulled_to_its_own_features_is_unchanged() -> None:
    x = _above(_signal(24_000, seed=5), 500.0)  # nothing near the cut below fmin
    mel = log_mel(x.astype(np.float32), CFG)[:-1]  # what a vocoder of these T frames was asked for
    out = envelope_postfilter(x, mel, CFG)
    # the last frame is pulled to the previous frame's target; the first frames see the reflect
    # padding, whose fold has content below fmin that the filter removes
    edge = CFG.n_fft
    np.testing.assert_allclose(out[edge:-edge], x[edge:-edge], atol=1e-5)


def test_a_weakened_band_is_restored_within_the_gain_limit() -> None:
    rng = np.random.default_rng(7)
    n = 24_000
    t = np.arange(n) / CFG.sample_rate
    speech = 0.2 * np.sin(2 * np.pi * 220 * t) + 0.2 * np.sin(2 * np.pi * 2500 * t) + 0.01 * rng.normal(size=n)
    target = log_mel(speech.astype(np.float32), CFG)[:-1]  # (T, M)
    weak = 0.2 * np.sin(2 * np.pi * 220 * t) + 0.02 * np.sin(2 * np.pi * 2500 * t) + 0.01 * rng.normal(size=n)
    band = int(np.argmax(target.mean(0)[40:])) + 40  # the 2.5 kHz band

    def level(a: np.ndarray) -> float:
        return float(log_mel(a.astype(np.float32), CFG)[5:-5, band].mean())

    restored = envelope_postfilter(weak, target, CFG, max_gain_db=30.0)
    assert abs(level(restored) - level(speech)) < 0.3  # natural-log units: within 30%
    limited = envelope_postfilter(weak, target, CFG, max_gain_db=6.0)
    gain_db = 20 * (level(limited) - level(weak)) / np.log(10)
    assert 4.0 < gain_db < 6.5  # wanted 20 dB, allowed 6


def test_what_lies_below_fmin_is_removed_and_speech_above_it_kept() -> None:
    # the network's own output wanders slowly around an offset (docs/quality.md section 17); the
    # features say nothing below fmin (40 Hz), so the post-filter lets nothing through there
    n = 48_000
    t = np.arange(n) / CFG.sample_rate
    speech = 0.2 * np.sin(2 * np.pi * 110 * t) + 0.1 * np.sin(2 * np.pi * 2500 * t)
    wander = 0.05 + 0.1 * np.sin(2 * np.pi * 3 * t) + 0.05 * np.sin(2 * np.pi * 17 * t)
    target = log_mel(speech.astype(np.float32), CFG)[:-1]
    out = envelope_postfilter(speech + wander, target, CFG, max_gain_db=20.0)
    body = slice(CFG.n_fft, -CFG.n_fft)
    freqs = np.fft.rfftfreq(n - 2 * CFG.n_fft, 1.0 / CFG.sample_rate)

    def power(a: np.ndarray, lo: float, hi: float) -> float:
        spec = np.abs(np.fft.rfft(a[body] * np.hanning(n - 2 * CFG.n_fft))) ** 2
        return float(spec[(freqs >= lo) & (freqs < hi)].sum())

    assert 10 * np.log10(power(out, 0, CFG.fmin) / power(speech + wander, 0, CFG.fmin)) < -40.0
    assert abs(10 * np.log10(power(out, 100, 120) / power(speech, 100, 120))) < 0.5  # a low voice's F0 kept
    assert abs(10 * np.log10(power(out, 2400, 2600) / power(speech, 2400, 2600))) < 0.5


def test_silence_asked_for_is_attenuated_not_amplified() -> None:
    noise = _signal(12_000, seed=9) * 0.05
    quiet = np.full((40, CFG.n_mels), np.log(CFG.log_floor))
    out = envelope_postfilter(noise, quiet, CFG, max_gain_db=20.0)
    ratio = np.sqrt(np.mean(out[2000:-2000] ** 2) / np.mean(noise[2000:-2000] ** 2))
    assert 0.09 < ratio < 0.12  # the full 20 dB cut


@pytest.mark.parametrize("bad", [0, -3, 61, float("nan"), "20", True, None])
def test_bad_gain_limits_are_refused_with_the_range(bad: object) -> None:
    with pytest.raises(ValueError, match=r"\(0, 60\] dB"):
        check_max_gain_db(bad)


def test_zero_or_none_means_no_post_filter() -> None:
    assert postfilter_gain_db(None) is None and postfilter_gain_db(0) is None and postfilter_gain_db(0.0) is None
    assert postfilter_gain_db(20) == 20.0
    with pytest.raises(ValueError, match="0 turns the post-filter off"):
        postfilter_gain_db(-1)


def test_shape_errors_name_the_expected_shape() -> None:
    with pytest.raises(ValueError, match=r"mel \(T, 80\)"):
        envelope_postfilter(np.zeros(100), np.zeros((3, 40)), CFG)
    post = StreamingPostFilter(CFG)
    with pytest.raises(ValueError, match=r"\(T, 80\)"):
        post.add_target(np.zeros(80))
    with pytest.raises(ValueError, match="NaN or inf"):
        post.add_target(np.full((2, 80), np.nan))
    post.push(np.zeros(10))
    with pytest.raises(ValueError, match="no target frames"):
        post.flush()
    with pytest.raises(ValueError, match="flushed"):
        post.push(np.zeros(10))


def test_card_entries_are_checked() -> None:
    assert card_postfilter({}) is None
    assert card_postfilter({"postfilter": {"max_gain_db": 20}}) == 20.0
    assert card_postfilter({"postfilter": {"max_gain_db": 0}}) is None
    with pytest.raises(ValueError, match="max_gain_db"):
        card_postfilter({"name": "v", "postfilter": 20})
    with pytest.raises(ValueError, match="voice card of 'v'"):
        card_postfilter({"name": "v", "postfilter": {"max_gain_db": 99}})


def test_pack_voice_writes_the_post_filter_and_load_voice_reads_it(tmp_path: Path, tiny_voice: VoiceConfig) -> None:
    torch.manual_seed(0)
    ckpt = tmp_path / "step.pt"
    save_checkpoint(ckpt, WaveRNN(tiny_voice.model), tiny_voice, meta={"step": 1, "data": ["synthetic:1"]})
    card = pack_voice(ckpt, tmp_path / "v", "pf", description="d", reproduce="r", postfilter_db=18)
    assert json.loads(card.read_text())["postfilter"] == {"max_gain_db": 18.0}
    assert load_voice(str(tmp_path / "v")).postfilter_db == 18.0
    plain = pack_voice(ckpt, tmp_path / "w", "plain", description="d", reproduce="r")
    assert "postfilter" not in json.loads(plain.read_text())


def test_the_vocoder_streams_the_post_filtered_utterance() -> None:
    voice = untrained_voice(VoiceConfig.tiny(), seed=0)
    cfg = voice.config.features
    mel = np.random.default_rng(2).normal(-5.0, 1.5, (15, cfg.n_mels)).astype(np.float32)
    plain = Vocoder(voice.model, voice.config).vocode(mel, seed=4, block_samples=100)
    blocks = list(Vocoder(voice.model, voice.config, postfilter_db=20).stream(mel, seed=4, block_samples=100))
    out = np.concatenate(blocks)
    assert out.dtype == np.int16 and out.shape == plain.shape
    assert max(b.shape[0] for b in blocks) < 100 + max(cfg.win_length, cfg.n_fft // 2 + 1)
    expected = envelope_postfilter(plain / 32768.0, mel, cfg, 20.0)
    np.testing.assert_allclose(out / 32767.0, expected, atol=2 / 32767)
    assert not np.array_equal(out, plain)
