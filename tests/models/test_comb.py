"""The pitch (long-term) post-filter: streaming parity with the reference, and what it does."""

from __future__ import annotations

import numpy as np
import pytest

from models.comb import StreamingComb, check_comb_gain, comb_reference

HOP = 300


def random_periods(frames: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.where(rng.random(frames) < 0.6, rng.uniform(60.0, 400.0, frames), 0.0)


@pytest.mark.parametrize("blocks", [[18000], [1, 2699, 2400, 12900], [777] * 24])
def test_the_streaming_comb_gives_the_reference_samples_in_blocks_of_any_size(blocks: list[int]) -> None:
    rng = np.random.default_rng(1)
    periods = random_periods(60, 0)
    x = rng.standard_normal(60 * HOP)
    want = comb_reference(x, periods, HOP, 0.8)
    comb = StreamingComb(HOP, 0.8, 400)
    comb.add_periods(periods[:12])  # the rest arrive later, before any sample reaches them
    out, pos, added = [], 0, 12
    for n in blocks:
        n = min(n, x.shape[0] - pos)
        need = (pos + n - 1) // HOP + 2
        if need > added:
            comb.add_periods(periods[added:need])
            added = need
        out.append(comb.push(x[pos : pos + n]))
        pos += n
    got = np.concatenate(out)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=1e-9)


def test_unvoiced_audio_passes_unchanged_and_a_zero_gain_changes_nothing() -> None:
    x = np.random.default_rng(2).standard_normal(20 * HOP)
    np.testing.assert_array_equal(comb_reference(x, np.zeros(20), HOP, 0.8), x)
    np.testing.assert_array_equal(comb_reference(x, random_periods(20, 3), HOP, 0.0), x)


def test_it_keeps_the_harmonics_and_thins_the_noise_between_them() -> None:
    rate, f0 = 24000, 150.0
    t = np.arange(rate) / rate
    harmonics = sum(np.cos(2 * np.pi * f0 * k * t) for k in range(1, 10)) * 0.1
    noise = 0.1 * np.random.default_rng(4).standard_normal(rate)
    frames = rate // HOP + 1
    y = comb_reference(harmonics + noise, np.full(frames, rate / f0), HOP, 0.8)[rate // 4 :]  # past the start-up
    spec = np.abs(np.fft.rfft(y * np.hanning(y.shape[0])))
    freqs = np.fft.rfftfreq(y.shape[0], 1 / rate)
    on = np.isin(np.round(freqs), [f0 * k for k in range(1, 10)])
    between = np.isin(np.round(freqs), [f0 * (k + 0.5) for k in range(1, 9)])
    ref = np.abs(np.fft.rfft((harmonics + noise)[rate // 4 :] * np.hanning(y.shape[0])))
    np.testing.assert_allclose(spec[on], ref[on], rtol=0.1)  # unit gain on the harmonics
    assert spec[between].mean() < 0.2 * ref[between].mean()  # -14 dB or more half-way between


def test_the_vocoder_combs_its_samples_at_the_trackers_pitch() -> None:
    from models.config import FeatureConfig, VoiceConfig, WaveRNNConfig
    from models.features import log_mel
    from models.pitch import MelPitchTracker
    from models.vocoder import Vocoder
    from models.voices import untrained_voice

    cfg = FeatureConfig()
    small = VoiceConfig(features=cfg, model=WaveRNNConfig(hidden_size=32, n_mels=cfg.n_mels,
                                                          hop_length=cfg.hop_length, cond_channels=16))
    voice = untrained_voice(small, seed=0)
    t = np.arange(6000) / cfg.sample_rate
    mel = log_mel((0.05 * sum(np.cos(2 * np.pi * 140 * k * t) / k for k in range(1, 20))).astype(np.float32), cfg)
    plain = Vocoder(voice.model, voice.config).vocode(mel, seed=3, block_samples=500)
    combed = Vocoder(voice.model, voice.config, comb_gain=0.7).vocode(mel, seed=3, block_samples=500)
    periods = MelPitchTracker(cfg).periods(mel)
    assert (periods > 0).any()
    want = comb_reference(plain / 32768.0, periods, cfg.hop_length, 0.7)
    np.testing.assert_allclose(combed / 32767.0, want, atol=2 / 32767)
    assert not np.array_equal(combed, plain)


def test_bad_gains_and_periods_are_refused() -> None:
    for bad in (-0.1, 0.96, "0.5", True):
        with pytest.raises(ValueError, match=r"\[0, 0.95\]"):
            check_comb_gain(bad)
    comb = StreamingComb(HOP, 0.5, 400)
    with pytest.raises(ValueError, match="0, 400"):
        comb.add_periods(np.array([401.0]))
    with pytest.raises(ValueError, match="at least 2"):
        comb.add_periods(np.array([1.0]))
    with pytest.raises(ValueError, match="hop"):
        StreamingComb(0, 0.5, 400)
