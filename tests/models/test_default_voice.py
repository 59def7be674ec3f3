"""The bundled default voice: it ships in the package, its card is complete, and it vocodes
non-silent audio of the right length that follows the loudness of its conditioning."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from models.audio import pcm_to_float
from models.config import VoiceConfig
from models.features import log_mel
from models.frontend import FestivalFrontend, features_for
from models.quality import PocketsphinxRecogniser, wer
from models.samplers.cpu import CpuSampler
from models.sparsity import sparsity_report
from models.vocoder import Vocoder, cpu_vocoder
from models.voices import DEFAULT_VOICE, VOICES_DIR, Voice, load_voice, untrained_voice
from models.weights import extract_weights

FOLDER = VOICES_DIR / DEFAULT_VOICE


@pytest.fixture(scope="module")
def voice() -> Voice:
    return load_voice(DEFAULT_VOICE)


def test_the_default_voice_is_bundled_trained_and_small(voice: Voice) -> None:
    assert (FOLDER / "model.pt").is_file() and (FOLDER / "card.json").is_file()
    assert sum(p.stat().st_size for p in FOLDER.iterdir()) <= 25 * 2**20  # the 25 MB limit
    assert voice.name == DEFAULT_VOICE and voice.trained
    card = voice.card
    for key in ("description", "features", "model", "parameters", "sparsity", "training", "quality", "speed"):
        assert key in card, key
    assert card["model"]["hidden_size"] == voice.config.model.hidden_size
    assert card["training"]["reproduce"].startswith("wavernn-tts train")
    assert all(entry["licence"] != "unknown: see the data's own terms" for entry in card["training"]["data"])
    assert {"nll", "copy", "wer"} <= set(card["quality"])
    # the quality on the card was measured at the temperature the voice is served at
    assert card["quality"].get("temperature", 1.0) == voice.temperature
    assert card["quality"].get("postfilter_db") == voice.postfilter_db  # and through the post-filter it uses
    assert card["quality"].get("pitch_sync", False) == voice.pitch_sync  # and with the noise it is served with
    assert card["quality"].get("comb_gain", 0.0) == voice.comb_gain  # and its pitch post-filter
    # the sparsity on the card is the sparsity of the weights that ship
    measured = sparsity_report(voice.model)
    assert measured["recurrent"] == card["sparsity"]["recurrent"] and measured["heads"] == card["sparsity"]["heads"]


def _syllables(rate: int, seconds: float) -> tuple[np.ndarray, np.ndarray]:
    """A 130 Hz harmonic tone under a slow on/off envelope; returns the signal and its on mask."""
    t = np.arange(int(rate * seconds)) / rate
    tone = sum(np.sin(2 * np.pi * 130 * k * t) / k for k in range(1, 25))
    on = (np.floor(t / 0.25) % 2 == 0)  # 250 ms on, 250 ms off
    return (0.3 * tone * on).astype(np.float32), on


def _loudness_on_and_off(voice: Voice) -> tuple[np.ndarray, float, float]:
    """Vocode 1 s of on/off syllables (seed 0, the voice's temperature); the PCM and its RMS where
    the input is on and off."""
    feats = voice.config.features
    signal, on = _syllables(feats.sample_rate, 1.0)
    mel = log_mel(signal, feats)
    sampler = CpuSampler(extract_weights(voice.model, temperature=voice.temperature), threads=1)
    pcm = Vocoder(voice.model, voice.config, sampler).vocode(mel, seed=0)
    x = pcm[: on.shape[0]].astype(np.float64) / 32768
    # leave out 60 ms around each edge: the conditioning frames there straddle both halves
    edge = int(0.06 * feats.sample_rate)
    core_on = np.convolve(on, np.ones(2 * edge + 1), mode="same") >= 2 * edge + 1
    core_off = np.convolve(~on, np.ones(2 * edge + 1), mode="same") >= 2 * edge + 1
    return pcm, float(np.sqrt(np.mean(x[core_on] ** 2))), float(np.sqrt(np.mean(x[core_off] ** 2)))


def test_the_default_voice_gives_audio_that_follows_its_conditioning(voice: Voice) -> None:
    pcm, loud, quiet = _loudness_on_and_off(voice)
    frames = voice.config.features.n_frames(int(voice.config.features.sample_rate * 1.0))
    assert pcm.dtype == np.int16 and pcm.shape == (frames * voice.config.features.hop_length,)
    assert loud > 0.01, f"near-silent output (rms {loud:.4f})"
    assert loud > 4 * quiet, f"the output does not follow the conditioning: rms on {loud:.4f}, off {quiet:.4f}"


@pytest.mark.skipif(importlib.util.find_spec("pocketsphinx") is None, reason="pip install pocketsphinx")
@pytest.mark.skipif(not FestivalFrontend().available(), reason="apt-get install festival festvox-us-slt-hts")
def test_the_default_voice_as_served_is_understood_through_the_text_path(voice: Voice) -> None:
    """The issue's check, as a user hears it: text -> Festival -> the voice at its card's temperature,
    pitch-synchronous noise and post-filters -> pocketsphinx (docs/quality.md sections 9 and 16)."""
    text = "It is time to go home now."
    with FestivalFrontend() as frontend:
        mel = features_for(frontend.render_text(text), voice.config.features)
    pcm = cpu_vocoder(voice.model, voice.config, temperature=voice.temperature,
                      postfilter_db=voice.postfilter_db, pitch_sync=voice.pitch_sync,
                      comb_gain=voice.comb_gain).vocode(mel, seed=0)
    hypothesis = PocketsphinxRecogniser()(pcm_to_float(pcm), voice.config.features.sample_rate)
    assert wer(text, hypothesis) <= 1 / 7, hypothesis  # at most one word of seven


def test_an_untrained_voice_does_not_pass_that_check() -> None:
    """The check above tells a trained voice from noise: an untrained one is as loud on as off."""
    _, loud, quiet = _loudness_on_and_off(untrained_voice(VoiceConfig.tiny(), seed=0))
    assert loud < 2 * quiet
