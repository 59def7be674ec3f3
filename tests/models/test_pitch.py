"""Pitch from log-mel frames, and the pitch-synchronous uniforms built on it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from models.checkpoint import save_checkpoint
from models.config import FeatureConfig, VoiceConfig, WaveRNNConfig
from models.evaluate import eval_comb_gain, eval_pitch_sync
from models.features import log_mel
from models.pitch import MelPitchTracker, PitchConfig
from models.samplers.base import UniformSource
from models.samplers.pitch_sync import PitchSyncUniforms, check_pitch_sync, pitch_sync_reference
from models.vocoder import Vocoder
from models.voices import card_comb_gain, card_pitch_sync, load_voice, untrained_voice
from models.voices.pack import pack_voice
from models.wavernn import WaveRNN

CFG = FeatureConfig()  # the bundled voices' 24 kHz, 80-band recipe


def voiced_tone(f0: np.ndarray, seconds: float, seed: int = 0) -> np.ndarray:
    """A vowel-like tone: harmonics of the per-sample ``f0`` under two formant bumps, plus faint noise."""
    rate = CFG.sample_rate
    n = round(seconds * rate)
    f0 = np.broadcast_to(f0, (n,))
    phase = 2 * np.pi * np.cumsum(f0) / rate  # (n,)
    x = np.zeros(n)
    for k in range(1, int(6000 / f0.max())):
        fk = k * f0
        amp = np.exp(-(((fk - 600) / 250) ** 2)) + 0.5 * np.exp(-(((fk - 1700) / 400) ** 2)) + 0.05
        x += amp * np.cos(k * phase)
    x = 0.1 * x / np.abs(x).max()
    return (x + 1e-3 * np.random.default_rng(seed).standard_normal(n)).astype(np.float32)


@pytest.mark.parametrize("f0", [95.0, 150.0, 230.0])
def test_the_tracker_reads_a_steady_pitch_off_the_log_mel(f0: float) -> None:
    tracker = MelPitchTracker(CFG)
    est = tracker.f0(log_mel(voiced_tone(np.array(f0), 1.0), CFG))
    inner = est[5:-5]
    assert np.all(inner > 0), "a steady harmonic tone is voiced throughout"
    cents = 1200 * np.abs(np.log2(inner / f0))
    assert np.median(cents) < 30 and np.mean(cents < 50) > 0.9


def test_the_tracker_follows_a_glide_and_leaves_silence_and_noise_unvoiced() -> None:
    rate = CFG.sample_rate
    glide = np.geomspace(120.0, 200.0, rate)  # one second, 120 -> 200 Hz
    noise = 0.05 * np.random.default_rng(1).standard_normal(rate // 2).astype(np.float32)
    audio = np.concatenate([np.zeros(rate // 2, np.float32), voiced_tone(glide, 1.0), noise])
    mel = log_mel(audio, CFG)
    tracker = MelPitchTracker(CFG)
    est = tracker.f0(mel)
    hop = CFG.hop_length
    silent, tone, noisy = est[: rate // 2 // hop - 3], est[rate // 2 // hop + 5 : 3 * rate // 2 // hop - 5], est[-30:]
    assert np.all(silent == 0) and np.mean(noisy == 0) > 0.9
    truth = glide[(np.arange(tone.shape[0]) + 5) * hop]
    assert np.mean(1200 * np.abs(np.log2(np.where(tone > 0, tone, 1.0) / truth)) < 50) > 0.9
    periods = tracker.periods(mel)
    assert np.array_equal(periods > 0, est > 0)
    np.testing.assert_allclose(periods[est > 0], rate / est[est > 0])
    assert periods.max() <= tracker.max_period


def test_the_compiled_tracker_matches_the_reference() -> None:
    tracker = MelPitchTracker(CFG)
    glide = np.geomspace(100.0, 260.0, CFG.sample_rate)
    mels = [log_mel(voiced_tone(glide, 1.0), CFG)]
    mels += [np.random.default_rng(s).normal(-5.0, 1.5, (200, CFG.n_mels)) for s in range(3)]
    for mel in mels:
        np.testing.assert_array_equal(tracker.f0(mel), tracker.f0(mel, fast=False))
    assert (tracker.f0(mels[0]) > 0).mean() > 0.8


def test_the_tracker_reads_log10_features_and_survives_extreme_levels() -> None:
    import dataclasses
    import warnings

    cfg10 = dataclasses.replace(CFG, log_base="10")
    audio = np.concatenate([np.zeros(CFG.sample_rate // 2, np.float32), voiced_tone(np.array(150.0), 1.0)])
    natural, ten = MelPitchTracker(CFG).f0(log_mel(audio, CFG)), MelPitchTracker(cfg10).f0(log_mel(audio, cfg10))
    assert np.mean((natural > 0) == (ten > 0)) > 0.95  # the quiet gate works in either log base
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow on absurdly loud frames
        assert MelPitchTracker(CFG).f0(np.full((20, CFG.n_mels), 1e4)).shape == (20,)


def test_the_tracker_refuses_bad_frames_and_settings() -> None:
    tracker = MelPitchTracker(CFG)
    with pytest.raises(ValueError, match=r"\(T, 80\)"):
        tracker.f0(np.zeros((10, 79)))
    with pytest.raises(ValueError, match="NaN"):
        tracker.f0(np.full((3, 80), np.nan))
    assert tracker.f0(np.zeros((0, 80))).shape == (0,)
    with pytest.raises(ValueError, match="fmin < fmax"):
        PitchConfig(fmin=300.0, fmax=200.0)
    with pytest.raises(ValueError, match="at least 3"):
        MelPitchTracker(CFG, PitchConfig(max_band_hz=60.0))


def random_periods(frames: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.where(rng.random(frames) < 0.6, rng.uniform(60.0, 400.0, frames), 0.0)


def test_pitch_sync_uniforms_match_the_reference_in_blocks_of_any_size() -> None:
    hop, frames = 300, 40
    periods = random_periods(frames, 0)
    whole = PitchSyncUniforms(3, hop, 400)
    whole.add_periods(periods)
    one = whole.draw(frames * hop).numpy()
    want = pitch_sync_reference(UniformSource(3).draw(frames * hop).numpy(), whole.sample_periods(0, frames * hop))
    np.testing.assert_array_equal(one, want)
    blocks = PitchSyncUniforms(3, hop, 400)
    blocks.add_periods(periods[:10])
    got = [blocks.draw(n).numpy() for n in (1, 299, 2400, 7)]  # up to sample 2706: frame 9, within the periods
    blocks.add_periods(periods[10:])
    got.append(blocks.draw(frames * hop - 2707).numpy())
    np.testing.assert_array_equal(np.concatenate(got), one)
    assert one.dtype == np.float32 and (one != UniformSource(3).draw(frames * hop).numpy()).any()


def test_pitch_sync_uniforms_repeat_one_period_back_and_leave_unvoiced_samples_alone() -> None:
    hop = 300
    src = PitchSyncUniforms(5, hop, 400)
    src.add_periods(np.array([0.0, 0.0, 0.0, 120.0, 120.0, 120.0, 120.0, 0.0, 0.0, 0.0]))
    u = src.draw(10 * hop).numpy()
    plain = UniformSource(5).draw(10 * hop).numpy()
    np.testing.assert_array_equal(u[: 2 * hop + 150], plain[: 2 * hop + 150])  # nearer an unvoiced frame
    np.testing.assert_array_equal(u[6 * hop + 150 :], plain[6 * hop + 150 :])
    voiced = np.arange(3 * hop, 6 * hop)
    np.testing.assert_array_equal(u[voiced], u[voiced - 120])
    interp = src.sample_periods(0, 10 * hop)
    assert interp[2 * hop + 149] == 0 and interp[2 * hop + 150] == 120 and interp[6 * hop + 150] == 0


def test_pitch_sync_uniforms_refuse_bad_periods_and_hold_the_last_period() -> None:
    src = PitchSyncUniforms(0, 300, 400)
    with pytest.raises(ValueError, match="1-D array"):
        src.add_periods(np.array([-1.0]))
    with pytest.raises(ValueError, match=r"\[2, 400\]"):
        src.add_periods(np.array([500.0]))
    src.add_periods(np.array([0.0, 100.0]))
    assert np.all(src.sample_periods(450, 1000) == 100)  # past the last frame its period holds
    with pytest.raises(ValueError, match="seed"):
        PitchSyncUniforms(-1, 300)
    with pytest.raises(ValueError, match="true or false"):
        check_pitch_sync("yes")


def test_the_vocoder_with_pitch_sync_is_deterministic_and_repeats_voiced_draws() -> None:
    small = VoiceConfig(features=CFG, model=WaveRNNConfig(hidden_size=32, n_mels=CFG.n_mels, hop_length=CFG.hop_length,
                                                          cond_channels=16))
    voice = untrained_voice(small, seed=0)  # the 24 kHz, 80-band recipe the tracker reads
    mel = log_mel(voiced_tone(np.array(150.0), 0.25), voice.config.features)
    plain = Vocoder(voice.model, voice.config).vocode(mel, seed=2, block_samples=700)
    synced = Vocoder(voice.model, voice.config, pitch_sync=True)
    a = synced.vocode(mel, seed=2, block_samples=700)
    b = synced.vocode(mel, seed=2, block_samples=333)
    assert a.shape == plain.shape and a.dtype == np.int16
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, plain)
    with pytest.raises(ValueError, match="true or false"):
        Vocoder(voice.model, voice.config, pitch_sync="on")  # type: ignore[arg-type]


def test_the_card_entry_is_checked_packed_and_read(tmp_path: Path, tiny_voice: VoiceConfig) -> None:
    assert card_pitch_sync({}) is False
    assert card_pitch_sync({"sampling": {"temperature": 0.6, "pitch_sync": True}}) is True
    with pytest.raises(ValueError, match=r"voice card of 'v'.*true or false"):
        card_pitch_sync({"name": "v", "sampling": {"pitch_sync": 1}})
    with pytest.raises(ValueError, match="subscale"):
        card_pitch_sync({"name": "v", "subscale": {"factor": 16}, "sampling": {"pitch_sync": True}})
    torch.manual_seed(0)
    ckpt = tmp_path / "step.pt"
    save_checkpoint(ckpt, WaveRNN(tiny_voice.model), tiny_voice, meta={"step": 1, "data": ["synthetic:1"]})
    card = pack_voice(ckpt, tmp_path / "v", "ps", description="d", reproduce="r", temperature=0.6, pitch_sync=True)
    assert json.loads(card.read_text())["sampling"] == {"temperature": 0.6, "pitch_sync": True}
    assert load_voice(str(tmp_path / "v")).pitch_sync is True
    plain = pack_voice(ckpt, tmp_path / "w", "plain", description="d", reproduce="r")
    assert json.loads(plain.read_text())["sampling"] == {"temperature": 1.0}
    assert load_voice(str(tmp_path / "w")).pitch_sync is False
    combed = pack_voice(ckpt, tmp_path / "c", "comb", description="d", reproduce="r", postfilter_db=30, comb_gain=0.8)
    assert json.loads(combed.read_text())["postfilter"] == {"max_gain_db": 30.0, "comb_gain": 0.8}
    loaded = load_voice(str(tmp_path / "c"))
    assert loaded.comb_gain == 0.8 and loaded.postfilter_db == 30.0
    assert eval_comb_gain(tmp_path / "c" / "model.pt", None) == 0.8 and eval_comb_gain(ckpt, None) == 0.0
    assert eval_comb_gain(ckpt, 0.5) == 0.5
    with pytest.raises(ValueError, match=r"\[0, 0.95\]"):
        card_comb_gain({"name": "v", "postfilter": {"max_gain_db": 20, "comb_gain": 1.5}})
    # eval samples a voice folder's model.pt as served, a bare checkpoint without it, --pitch-sync over both
    assert eval_pitch_sync(tmp_path / "v" / "model.pt", None) is True
    assert eval_pitch_sync(tmp_path / "v" / "model.pt", "off") is False
    assert eval_pitch_sync(ckpt, None) is False and eval_pitch_sync(ckpt, "on") is True
