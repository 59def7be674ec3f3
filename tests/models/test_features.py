"""Tests for models.features: mel filterbank, log-mel analysis and feature validation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from models.audio import float_to_pcm, write_wav
from models.config import FeatureConfig, VoiceConfig
from models.features import (
    MAX_ABS_LOG_MEL,
    features_from_file,
    hz_to_mel,
    log_mel,
    mel_band_centres,
    mel_filterbank,
    mel_to_hz,
    validate_features,
)

CFG = FeatureConfig()
REAL_SPEECH = Path(__file__).resolve().parents[3] / "shared" / "real-speech"


def _tone(freq: float, seconds: float = 0.5, rate: int = 24000, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _speech_like(seconds: float, rate: int, seed: int = 0) -> np.ndarray:
    """Harmonic source with a gliding pitch, syllable-rate envelope and a little noise."""
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    t = np.arange(n) / rate
    f0 = 120.0 + 30.0 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / rate
    x = sum(np.sin(k * phase) / k for k in range(1, 25) if k * 150 < rate / 2)
    envelope = 0.5 * (1 + np.sin(2 * np.pi * 4.0 * t)) ** 2
    return (0.1 * envelope * x + 0.003 * rng.standard_normal(n)).astype(np.float32)


def test_mel_scale_is_slaney() -> None:
    assert hz_to_mel(1000.0) == pytest.approx(15.0)  # linear part: 3 mels per 200 Hz
    assert hz_to_mel(200.0) == pytest.approx(3.0)
    assert hz_to_mel(6400.0) == pytest.approx(42.0)  # log part: 27 mels per factor 6.4
    f = np.array([0.0, 40.0, 700.0, 1000.0, 5000.0, 12000.0])
    np.testing.assert_allclose(mel_to_hz(hz_to_mel(f)), f, rtol=1e-12, atol=1e-9)


def test_mel_filterbank_shape_and_normalisation() -> None:
    fb = mel_filterbank(CFG)
    assert fb.shape == (CFG.n_mels, CFG.n_freqs) and fb.dtype == np.float32
    assert (fb >= 0).all() and (fb.sum(axis=1) > 0).all()
    # Slaney normalisation: each triangle has unit area over frequency in Hz.
    bin_hz = CFG.sample_rate / CFG.n_fft
    area = fb.sum(axis=1) * bin_hz
    np.testing.assert_allclose(area, 1.0, rtol=0.05)
    # Nothing outside fmin..fmax.
    freqs = np.linspace(0, CFG.sample_rate / 2, CFG.n_freqs)
    assert fb[:, (freqs < CFG.fmin) | (freqs > CFG.fmax)].max() == 0
    fb[0, 0] = 1.0  # the returned array is the caller's own copy
    assert mel_filterbank(CFG)[0, 0] == 0


@pytest.mark.parametrize("freq", [500.0, 1000.0, 3000.0, 6000.0])
def test_tone_peaks_in_nearest_mel_band(freq: float) -> None:
    mel = log_mel(_tone(freq), CFG)
    band = int(np.argmax(mel[2:-2].mean(axis=0)))  # interior frames
    assert band == int(np.argmin(np.abs(mel_band_centres(CFG) - freq)))


@pytest.mark.parametrize("n", [0, 1, 299, 300, 1024, 1025, 2048, 24_001])
def test_frame_count_formula(n: int) -> None:
    x = _speech_like(n / 24000 + 1e-9, 24000)[:n]
    mel = log_mel(x, CFG)
    assert mel.shape == (CFG.n_frames(n), CFG.n_mels) == (n // CFG.hop_length + 1, CFG.n_mels)
    assert mel.dtype == np.float32 and np.isfinite(mel).all()


def test_frame_count_odd_fft_and_tiny_config() -> None:
    odd = FeatureConfig(n_fft=1023, win_length=1000, hop_length=250)
    assert log_mel(np.zeros(5000, np.float32), odd).shape == (odd.n_frames(5000), odd.n_mels)
    tiny = VoiceConfig.tiny().features
    assert log_mel(_speech_like(0.3, 24000), tiny).shape == (tiny.n_frames(7200), tiny.n_mels)


def test_log_mel_matches_numpy_reference() -> None:
    """The torch.stft path equals a direct numpy transcription of the recipe."""
    x = _speech_like(0.2, 24000, seed=3)
    fast = log_mel(x, CFG)
    half = CFG.n_fft // 2
    padded = np.pad(x.astype(np.float64), half, mode="reflect")
    n_win = CFG.win_length
    hann = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_win) / n_win)  # periodic Hann
    window = np.zeros(CFG.n_fft)
    window[(CFG.n_fft - n_win) // 2 : (CFG.n_fft - n_win) // 2 + n_win] = hann
    frames = np.stack(
        [padded[i * CFG.hop_length : i * CFG.hop_length + CFG.n_fft] for i in range(CFG.n_frames(len(x)))]
    )  # (T, n_fft)
    mag = np.abs(np.fft.rfft(frames * window, axis=1))  # (T, F)
    ref = np.log(np.maximum(mag @ mel_filterbank(CFG).T.astype(np.float64), CFG.log_floor))
    np.testing.assert_allclose(fast, ref, atol=2e-3)


def test_log_base_and_floor() -> None:
    silence = np.zeros(2400, np.float32)
    assert np.allclose(log_mel(silence, CFG), np.log(CFG.log_floor))
    cfg10 = FeatureConfig(log_base="10")
    assert np.allclose(log_mel(silence, cfg10), -5.0)
    x = _tone(1000.0, 0.2)
    np.testing.assert_allclose(log_mel(x, cfg10), log_mel(x, CFG) / np.log(10), atol=1e-4)


def test_log_mel_rejects_bad_audio() -> None:
    with pytest.raises(ValueError, match="mono"):
        log_mel(np.zeros((2, 100), np.float32), CFG)
    with pytest.raises(ValueError, match="float"):
        log_mel(np.zeros(100, np.int16), CFG)


def test_features_from_16k_file(tmp_path: Path) -> None:
    x16 = _speech_like(2.5, 16000, seed=4)
    path = tmp_path / "speech16k.wav"
    write_wav(path, float_to_pcm(x16), sample_rate=16000)
    mel = features_from_file(path, CFG)
    n24 = -(-len(x16) * 24000 // 16000)
    assert mel.shape == (CFG.n_frames(n24), CFG.n_mels) == (201, 80)
    assert np.isfinite(mel).all()
    # A 16 kHz source has nothing above 8 kHz after resampling: high bands sit near the floor.
    centres = mel_band_centres(CFG)
    low, high = mel[:, centres < 4000].mean(), mel[:, centres > 8500].mean()
    assert low > high + 3.0


def test_features_from_real_recording() -> None:
    path = REAL_SPEECH / "vctk_autovc" / "p225" / "p225_003.wav"
    if not path.is_file():
        pytest.skip(f"real recording not present at {path}")
    n16 = sf.info(str(path)).frames
    mel = features_from_file(path, CFG)
    n24 = -(-n16 * 24000 // 16000)
    assert mel.shape == (CFG.n_frames(n24), CFG.n_mels)
    np.testing.assert_array_equal(validate_features(mel, CFG), mel)
    assert mel.min() >= np.log(CFG.log_floor) - 1e-5 and mel.max() < 10
    energy = mel.mean(axis=1)  # (T,)
    assert np.percentile(energy, 95) - np.percentile(energy, 5) > 2.0  # speech vs pauses
    centres = mel_band_centres(CFG)
    assert mel[:, centres < 4000].mean() > mel[:, centres > 8500].mean() + 2.0


def test_validate_features_accepts_good_input() -> None:
    good = np.random.default_rng(5).standard_normal((7, 80)).astype(np.float64)
    out = validate_features(good, CFG)
    assert out.dtype == np.float32 and out.flags.c_contiguous and out.shape == (7, 80)
    assert out is not good
    t = validate_features(torch.from_numpy(good).T.contiguous().T, 80)
    np.testing.assert_allclose(t, good, rtol=1e-6)
    assert validate_features([[0.5] * 80, [-1.0] * 80], CFG).shape == (2, 80)


@pytest.mark.parametrize(
    "bad,match",
    [
        (np.zeros(80, np.float32), "2-D"),
        (np.zeros((1, 10, 80), np.float32), "2-D"),
        (np.zeros((10, 79), np.float32), "n_mels=80"),
        (np.zeros((80, 10), np.float32), "transpose"),
        (np.zeros((0, 80), np.float32), "empty"),
        (np.array([[0.0] * 80, [0.0] * 79 + [np.nan]]), "NaN/inf.*frame 1, band 79"),
        (np.full((3, 80), np.inf, np.float32), "240 NaN/inf"),
        (np.zeros((3, 80), np.int64), "float32 log-mel values expected"),
        (np.zeros((3, 80), bool), "float32 log-mel values expected"),
        (np.full((3, 80), "x"), "float32 log-mel values expected"),
        (np.array([[object()] * 80]), "float32 log-mel values expected"),
        (torch.zeros(3, 80, dtype=torch.int32), "float32 log-mel values expected"),
        (np.full((3, 80), 2 * MAX_ABS_LOG_MEL), "plausible log-mel range"),
        (np.full((3, 80), 1e300), "plausible log-mel range"),
        ([[0.0] * 80, [0.0] * 3], "rectangular"),
    ],
)
def test_validate_features_rejects(bad: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        validate_features(bad, CFG)
