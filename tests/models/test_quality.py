"""Tests for models.quality: text normalisation, WER, signal metrics, recognition, the metric drivers.

PESQ/STOI tests skip without the ``pesq``/``pystoi`` packages; the recogniser test skips without
``pocketsphinx`` or Festival (``apt-get install festival festvox-us-slt-hts``).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.signal import lfilter

from models import quality
from models.audio import float_to_pcm, write_wav
from models.config import FeatureConfig, VoiceConfig, WaveRNNConfig
from models.frontend import FestivalFrontend, Rendering
from models.quality import (
    edit_distance,
    log_mel_distance,
    mel_cepstral_distortion,
    normalise_text,
    number_to_words,
    wer,
    word_errors,
)
from models.samplers.cpu import CpuSampler
from models.voices import untrained_voice
from models.weights import extract_weights

CFG = FeatureConfig()
SR = CFG.sample_rate
HAVE_PESQ = importlib.util.find_spec("pesq") is not None
HAVE_PYSTOI = importlib.util.find_spec("pystoi") is not None
HAVE_POCKETSPHINX = importlib.util.find_spec("pocketsphinx") is not None


def speechlike(seconds: float = 3.0, sr: int = SR, seed: int = 0) -> np.ndarray:
    """Syllable-like bursts: a gliding harmonic complex through two resonances, with pauses."""
    rng = np.random.default_rng(seed)
    out = np.zeros(int(sr * seconds))
    start = int(0.2 * sr)
    while start < out.shape[0] - int(0.3 * sr):
        n = int(rng.uniform(0.12, 0.3) * sr)
        t = np.arange(n) / sr
        f0 = rng.uniform(100, 220) * (1 + 0.2 * np.sin(2 * np.pi * rng.uniform(1, 4) * t))
        phase = 2 * np.pi * np.cumsum(f0) / sr
        x = sum(np.sin(k * phase) / k for k in range(1, 30))
        for fc in (rng.uniform(300, 900), rng.uniform(1000, 2500)):
            w = 2 * np.pi * fc / sr
            x = lfilter([0.03], [1, -1.94 * np.cos(w), 0.9409], x)  # resonance, pole radius 0.97
        out[start : start + n] += 0.5 * np.hanning(n) * x / np.abs(x).max()
        start += n + int(rng.uniform(0.03, 0.15) * sr)
    return out.astype(np.float32)


@pytest.fixture(scope="module")
def clean() -> np.ndarray:
    return speechlike()


def _noise(n: int, level: float, seed: int = 1) -> np.ndarray:
    return (level * np.random.default_rng(seed).standard_normal(n)).astype(np.float32)


# -- text and WER ---------------------------------------------------------------------------
@pytest.mark.parametrize("text, words", [
    ("Please call Stella.", "please call stella"),
    ("  Hello,   WORLD!? ", "hello world"),
    ("I have 3 cats and 21 dogs.", "i have three cats and twenty one dogs"),
    ("It's 1,250 km; don't 'quote' me", "it's one thousand two hundred fifty km don't quote me"),
    ("the 21st and 3rd and 20th", "the twenty first and third and twentieth"),
    ("3.5% & more", "three point five percent and more"),
    ("<s> hello [noise] there </s>", "hello there"),
    ("Café au-lait", "cafe au lait"),
    ("...!", ""),
])
def test_normalise_text(text: str, words: str) -> None:
    assert normalise_text(text) == words


@pytest.mark.parametrize("n, words", [
    (0, "zero"), (13, "thirteen"), (40, "forty"), (99, "ninety nine"), (105, "one hundred five"),
    (1000, "one thousand"), (2_000_017, "two million seventeen"),
    (999_999_999_999, "nine hundred ninety nine billion nine hundred ninety nine million "
                      "nine hundred ninety nine thousand nine hundred ninety nine"),
])
def test_number_to_words(n: int, words: str) -> None:
    assert number_to_words(n) == words


@pytest.mark.parametrize("bad", [-1, 10**12, True, 2.0])
def test_number_to_words_refuses_out_of_range(bad: object) -> None:
    with pytest.raises(ValueError, match="number_to_words"):
        number_to_words(bad)  # type: ignore[arg-type]


def test_edit_distance_counts_substitutions_deletions_insertions() -> None:
    assert edit_distance([], []) == 0
    assert edit_distance([], ["a", "b"]) == 2
    assert edit_distance(["a", "b"], []) == 2
    assert edit_distance(["a", "b", "c"], ["a", "x", "c", "d"]) == 2  # one substitution, one insertion
    assert edit_distance(["the", "cat", "sat", "on", "the", "mat"], ["cat", "sat", "on", "a", "mat"]) == 2


def test_wer_normalises_and_pools() -> None:
    assert wer("Please call Stella.", "please call stella") == 0.0
    assert wer("I have two cats.", "i have 2 cats") == 0.0
    assert wer("the cat sat", "the cat") == pytest.approx(1 / 3)
    assert wer("the cat sat", "a dog the cat sat down") == pytest.approx(1.0)  # insertions count: can pass 1
    assert word_errors("Please call Stella.", "place called stella") == (2, 3)
    with pytest.raises(ValueError, match="no words"):
        wer("?!", "anything")


# -- signal metrics -------------------------------------------------------------------------
def test_log_mel_distance_is_zero_for_identical_audio_and_grows_with_noise(clean: np.ndarray) -> None:
    assert log_mel_distance(clean, clean.copy(), CFG) == 0.0
    assert mel_cepstral_distortion(clean, clean.copy(), CFG) == 0.0
    levels = (0.001, 0.01, 0.1)
    lmd = [log_mel_distance(clean, clean + _noise(clean.size, lv), CFG) for lv in levels]
    mcd = [mel_cepstral_distortion(clean, clean + _noise(clean.size, lv), CFG) for lv in levels]
    assert 0 < lmd[0] < lmd[1] < lmd[2] and 0 < mcd[0] < mcd[1] < mcd[2]
    # lengths are cut to the shorter; max_hz leaves out the upper bands
    assert log_mel_distance(clean, np.concatenate([clean, clean[:500]]), CFG) == 0.0
    hiss = clean + _noise(clean.size, 0.01)
    assert log_mel_distance(clean, hiss, CFG, max_hz=8000.0) != log_mel_distance(clean, hiss, CFG)
    with pytest.raises(ValueError, match="mono float"):
        log_mel_distance(clean[None], clean[None], CFG)
    with pytest.raises(ValueError, match="no mel band"):
        log_mel_distance(clean, clean, CFG, max_hz=10.0)


@pytest.mark.skipif(not HAVE_PESQ, reason="pip install pesq")
def test_pesq_wb_high_for_itself_low_for_noise(clean: np.ndarray) -> None:
    assert quality.pesq_wb(clean, clean, SR) > 4.5
    assert quality.pesq_wb(clean, _noise(clean.size, 0.1), SR) < 1.5
    assert quality.pesq_wb(clean, clean + _noise(clean.size, 0.1), SR) < 2.0
    with pytest.raises(ValueError, match="PESQ failed"):  # under a quarter of a second
        quality.pesq_wb(_noise(SR // 10, 0.1), _noise(SR // 10, 0.1, seed=2), SR)


@pytest.mark.skipif(not HAVE_PYSTOI, reason="pip install pystoi")
def test_stoi_high_for_itself_low_for_noise(clean: np.ndarray) -> None:
    assert quality.stoi(clean, clean, SR) > 0.99
    assert quality.stoi(clean, _noise(clean.size, 0.1), SR) < 0.5
    noisy = quality.stoi(clean, clean + _noise(clean.size, 0.1), SR)
    assert 0.5 < noisy < 0.95
    with pytest.raises(ValueError, match="STOI needs more speech"):
        quality.stoi(clean[: SR // 2], clean[: SR // 2], SR)


def test_missing_metric_package_names_the_pip_package(monkeypatch: pytest.MonkeyPatch, clean: np.ndarray) -> None:
    monkeypatch.setitem(sys.modules, "pesq", None)  # makes `import pesq` fail
    with pytest.raises(ValueError, match="pip install pesq"):
        quality.pesq_wb(clean, clean, SR)
    monkeypatch.setitem(sys.modules, "pocketsphinx", None)
    with pytest.raises(ValueError, match="pip install pocketsphinx"):
        quality.PocketsphinxRecogniser()


# -- helpers --------------------------------------------------------------------------------
def test_spread_and_find_audio(tmp_path: Path) -> None:
    assert quality.spread(list(range(10)), 0) == list(range(10))
    assert quality.spread(list(range(10)), 3) == [0, 4, 9]
    assert quality.spread([1, 2], 5) == [1, 2]
    (tmp_path / "b").mkdir()
    for name in ("b/2.flac", "a.wav", "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    assert quality.find_audio([tmp_path]) == [tmp_path / "a.wav", tmp_path / "b" / "2.flac"]
    with pytest.raises(ValueError, match="neither"):
        quality.find_audio([tmp_path / "missing"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"no \.wav"):
        quality.find_audio([tmp_path / "empty"])


# -- drivers on a tiny untrained voice --------------------------------------------------------
TINY = VoiceConfig(features=FeatureConfig(), model=WaveRNNConfig(hidden_size=16, cond_channels=8, cond_layers=1))


class _FakeFrontend:
    """Renders every sentence as the same speech-like audio."""

    def render_text(self, text: str, speed: float = 1.0) -> Rendering:
        return Rendering(speechlike(0.5, seed=len(text)))


def test_intelligibility_pools_word_errors_over_sentences(tmp_path: Path) -> None:
    voice = untrained_voice(TINY)
    heard = iter(["the cat sat", "the cat sat", "dogs", "a dog barks"])  # vocoded, frontend, vocoded, frontend
    result = quality.intelligibility(voice.model, TINY, _FakeFrontend(), ["The cat sat.", "A dog barks!"],  # type: ignore[arg-type]
                                     recognise=lambda audio, rate: next(heard), audio_dir=tmp_path)
    assert result["words"] == 6
    assert result["wer"] == pytest.approx(3 / 6) and result["frontend_wer"] == 0.0
    assert [s["errors"] for s in result["sentences"]] == [0, 3]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["000.wav", "001.wav"]


def test_intelligibility_samples_in_blocks_of_the_size_asked() -> None:
    voice = untrained_voice(TINY)
    sizes: list[int] = []
    inner = CpuSampler(extract_weights(voice.model))

    class Spy:
        hidden_size, hop_length = inner.hidden_size, inner.hop_length

        def generate(self, state, cond, uniforms):  # type: ignore[no-untyped-def]
            sizes.append(int(uniforms.shape[1]))
            return inner.generate(state, cond, uniforms)

    quality.intelligibility(voice.model, TINY, _FakeFrontend(), ["The cat sat."], sampler=Spy(),  # type: ignore[arg-type]
                            recognise=lambda audio, rate: "", block_samples=1000)
    assert len(sizes) > 1 and set(sizes[:-1]) == {1000} and 0 < sizes[-1] <= 1000, sizes


@pytest.mark.skipif(not (HAVE_PESQ and HAVE_PYSTOI), reason="pip install pesq pystoi")
def test_copy_synthesis_reports_every_utterance_and_the_mean(tmp_path: Path) -> None:
    for i in range(3):
        write_wav(tmp_path / f"u{i}.wav", float_to_pcm(speechlike(1.5, sr=16_000, seed=i)), 16_000)
    voice = untrained_voice(TINY)
    result = quality.copy_synthesis(voice.model, TINY, quality.find_audio([tmp_path]), max_utterances=2,
                                    max_seconds=1.0)
    assert result["count"] == 2 and result["audio_seconds"] == pytest.approx(2.0)
    assert [Path(u["file"]).name for u in result["utterances"]] == ["u0.wav", "u2.wav"]
    assert set(result["mean"]) == set(quality.COPY_KEYS)
    row = result["utterances"][0]
    assert row["log_mel_distance"] > 0.5  # an untrained voice makes noise
    assert row["stoi"] is not None and row["stoi"] < 0.5


# -- recognition ----------------------------------------------------------------------------
@pytest.mark.skipif(not HAVE_POCKETSPHINX, reason="pip install pocketsphinx")
@pytest.mark.skipif(not FestivalFrontend().available(), reason="apt-get install festival festvox-us-slt-hts")
def test_pocketsphinx_recognises_festival_speech() -> None:
    text = "The weather is nice today."
    with FestivalFrontend() as frontend:
        rendering = frontend.render_text(text)
    hypothesis = quality.PocketsphinxRecogniser()(rendering.audio, rendering.sample_rate)
    assert wer(text, hypothesis) <= 0.34, hypothesis


@pytest.mark.skipif(not HAVE_POCKETSPHINX, reason="pip install pocketsphinx")
@pytest.mark.skipif(not FestivalFrontend().available(), reason="apt-get install festival festvox-us-slt-hts")
def test_pocketsphinx_judges_each_utterance_alone() -> None:
    """What was recognised before must not change the words heard: a reused decoder carried its
    cepstral-mean and noise statistics over, and loud noise first turned this into other words."""
    with FestivalFrontend() as frontend:
        rendering = frontend.render_text("It is time to go home now.")
    rng = np.random.default_rng(0)
    noisy = (rendering.audio + 0.05 * rng.standard_normal(rendering.audio.shape)).astype(np.float32)
    alone = quality.PocketsphinxRecogniser()(noisy, rendering.sample_rate)
    recognise = quality.PocketsphinxRecogniser()
    recognise((0.3 * rng.standard_normal(2 * rendering.sample_rate)).astype(np.float32), rendering.sample_rate)
    assert recognise(noisy, rendering.sample_rate) == alone
