"""Quality of a voice beyond likelihood: copy-synthesis of real speech and intelligibility.

Pure metric functions (design section 6), used by ``wavernn-tts eval`` (:mod:`models.evaluate`):

- **copy-synthesis** (:func:`copy_synthesis`): a real recording -> its log-mel -> the vocoder ->
  audio, compared with the recording by PESQ wide-band (:func:`pesq_wb`), STOI (:func:`stoi`),
  the log-mel distance (:func:`log_mel_distance`) and a mel cepstral distortion
  (:func:`mel_cepstral_distortion`).
- **intelligibility** (:func:`intelligibility`): sentences rendered by the text frontend,
  vocoded from their log-mel, transcribed by pocketsphinx (:class:`PocketsphinxRecogniser`) and
  scored by word error rate (:func:`wer` after :func:`normalise_text`), beside the WER of the
  frontend's own audio for the same sentences.

Audio arguments are mono float arrays of shape ``(n,)`` in [-1, 1] at the given rate. The
metric libraries (``pesq``, ``pystoi``, ``pocketsphinx``) are imported on first use; a missing
one raises ``ValueError`` naming the pip package.
"""

from __future__ import annotations

import importlib
import logging
import math
import re
import time
import unicodedata
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import scipy.fft

from models.audio import float_to_pcm, pcm_to_float, read_audio, resample, write_wav
from models.config import FeatureConfig, VoiceConfig
from models.features import log_mel, mel_band_edges
from models.frontend.base import TextFrontend, features_for
from models.samplers.base import Sampler
from models.vocoder import cpu_vocoder
from models.wavernn import WaveRNN

log = logging.getLogger(__name__)

#: Rate PESQ wide-band and pocketsphinx work at (Hz).
METRIC_RATE = 16_000
#: Audio file suffixes :func:`find_audio` collects.
AUDIO_SUFFIXES = (".wav", ".flac")
#: Ten everyday sentences of short, common words for the intelligibility test.
EVERYDAY_SENTENCES: tuple[str, ...] = (
    "Please call Stella.",
    "The weather is nice today.",
    "I would like a cup of coffee.",
    "Where is the train station?",
    "We will meet in the park tomorrow morning.",
    "Can you open the door for me?",
    "She bought some bread and milk at the store.",
    "The children are playing in the garden.",
    "It is time to go home now.",
    "Thank you very much for your help.",
)

#: A speech recogniser: (audio (n,) float in [-1, 1], sample rate in Hz) -> transcript.
Recogniser = Callable[[np.ndarray, int], str]


def require_package(module: str, package: str) -> ModuleType:
    """Import ``module`` or raise ValueError saying which pip package provides it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ValueError(f"this metric needs the pip package `{package}` ({exc}); pip install {package}") from exc


# -- text and word error rate ---------------------------------------------------------------
_ONES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
         "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen")
_TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
_SCALES = ((10**9, "billion"), (10**6, "million"), (1000, "thousand"))
_ORDINALS = {"one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth",
             "nine": "ninth", "twelve": "twelfth"}
_NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?(?:st|nd|rd|th)?")
_TAG = re.compile(r"<[^>]*>|\[[^\]]*\]")  # recogniser fillers such as <sil> or [noise]


def number_to_words(n: int) -> str:
    """A non-negative integer below 10**12 in words, American style: 105 -> "one hundred five"."""
    if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n < 10**12:
        raise ValueError(f"number_to_words takes an integer in 0..10**12 - 1, got {n!r}")
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + ("" if n % 10 == 0 else " " + _ONES[n % 10])
    if n < 1000:
        return _ONES[n // 100] + " hundred" + ("" if n % 100 == 0 else " " + number_to_words(n % 100))
    for value, name in _SCALES:
        if n >= value:
            rest = n % value
            return number_to_words(n // value) + " " + name + ("" if rest == 0 else " " + number_to_words(rest))
    raise AssertionError("unreachable")


def _number_words(match: re.Match[str]) -> str:
    token = match.group(0)
    suffix = token[-2:] if token[-2:] in ("st", "nd", "rd", "th") else ""
    digits = token[: len(token) - len(suffix)].replace(",", "")
    whole, _, frac = digits.partition(".")
    # more than 12 digits is no quantity: read it digit by digit
    words = " ".join(_ONES[int(d)] for d in whole) if len(whole) > 12 else number_to_words(int(whole))
    if frac:
        words += " point " + " ".join(_ONES[int(d)] for d in frac)
    elif suffix:
        head, _, last = words.rpartition(" ")
        last = _ORDINALS.get(last, last[:-1] + "ieth" if last.endswith("y") else last + "th")
        words = f"{head} {last}".strip()
    return f" {words} "


def normalise_text(text: str) -> str:
    """Text as words for scoring: lowercase ASCII, numbers spelled out, punctuation removed.

    Apostrophes inside words stay ("don't"); hyphens split words; recogniser tags such as
    ``<sil>`` or ``[noise]`` are dropped. Years are read as cardinals (1999 -> "one thousand
    nine hundred ninety nine"), so keep them out of test sentences.

    Returns:
        the words joined by single spaces ("" when there are none).
    """
    if not isinstance(text, str):
        raise ValueError(f"text must be a string, got {type(text).__name__}")
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii").lower()
    folded = _TAG.sub(" ", folded).replace("%", " percent ").replace("&", " and ")
    folded = _NUMBER.sub(_number_words, folded)
    folded = re.sub(r"[^a-z0-9']+", " ", folded)
    return " ".join(w for w in (t.strip("'") for t in folded.split()) if w)


def edit_distance(reference: Sequence[str], hypothesis: Sequence[str]) -> int:
    """Levenshtein distance between two word sequences (substitutions, deletions, insertions)."""
    previous = list(range(len(hypothesis) + 1))
    for i, ref_word in enumerate(reference, start=1):
        current = [i]
        for j, hyp_word in enumerate(hypothesis, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ref_word != hyp_word)))
        previous = current
    return previous[-1]


def word_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    """(word errors, reference words) after :func:`normalise_text` of both."""
    ref, hyp = normalise_text(reference).split(), normalise_text(hypothesis).split()
    return edit_distance(ref, hyp), len(ref)


def wer(reference: str, hypothesis: str) -> float:
    """Word error rate: word-level edit distance / reference words, after normalisation.

    Raises:
        ValueError: the reference has no words.
    """
    errors, words = word_errors(reference, hypothesis)
    if words == 0:
        raise ValueError(f"reference {reference!r} has no words; WER is undefined")
    return errors / words


# -- signal metrics -------------------------------------------------------------------------
def _pair(reference: np.ndarray, output: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both as float32 (n,), cut to the shorter length."""
    ref, out = np.asarray(reference), np.asarray(output)
    for name, x in (("reference", ref), ("output", out)):
        if x.ndim != 1 or not np.issubdtype(x.dtype, np.floating):
            raise ValueError(f"{name} must be mono float audio of shape (n,), got {x.dtype} {x.shape}")
    n = min(ref.shape[0], out.shape[0])
    if n == 0:
        raise ValueError("reference and output must both hold samples")
    return ref[:n].astype(np.float32), out[:n].astype(np.float32)


def _band_mask(cfg: FeatureConfig, max_hz: float | None) -> np.ndarray:
    """Mel bands whose upper edge is at most ``max_hz`` (all bands when None)."""
    if max_hz is None:
        return np.ones(cfg.n_mels, dtype=bool)
    keep = mel_band_edges(cfg)[2:] <= max_hz + 1e-6  # (n_mels,)
    if not keep.any():
        raise ValueError(f"no mel band lies below {max_hz} Hz; raise max_hz")
    return keep


def _log_mels(reference: np.ndarray, output: np.ndarray, cfg: FeatureConfig,
              max_hz: float | None) -> tuple[np.ndarray, np.ndarray]:
    ref, out = _pair(reference, output)
    keep = _band_mask(cfg, max_hz)
    return log_mel(ref, cfg)[:, keep], log_mel(out, cfg)[:, keep]  # (T, M') each


def log_mel_distance(reference: np.ndarray, output: np.ndarray, cfg: FeatureConfig,
                     max_hz: float | None = None) -> float:
    """Mean absolute difference of the log-mels of ``output`` and ``reference``.

    Args:
        reference, output: float audio (n,) at ``cfg.sample_rate``; cut to the shorter.
        cfg: the voice's feature recipe (the distance is in its log units: nats for base e).
        max_hz: use only the bands whose upper edge is at most this (e.g. the Nyquist
            frequency of a 16 kHz source); None uses every band.
    """
    a, b = _log_mels(reference, output, cfg, max_hz)
    return float(np.mean(np.abs(a - b)))


def mel_cepstral_distortion(reference: np.ndarray, output: np.ndarray, cfg: FeatureConfig,
                            n_coeffs: int = 13, max_hz: float | None = None) -> float:
    """Mel cepstral distortion (dB) computed from the log-mels, averaged over frames.

    ``c = DCT-II(ortho)`` of the natural-log mel magnitudes; ``MCD = 10 / ln 10 *
    sqrt(2 * sum_{k=1..n_coeffs} (c_k - c'_k)^2)`` (c_0, the level, left out). It is not
    SPTK's mel-cepstrum MCD, so compare it only between runs of this function.
    """
    a, b = _log_mels(reference, output, cfg, max_hz)
    if not 1 <= n_coeffs < a.shape[1]:
        raise ValueError(f"n_coeffs must be in 1..{a.shape[1] - 1} (bands used - 1), got {n_coeffs}")
    scale = math.log(10.0) if cfg.log_base == "10" else 1.0
    diff = scipy.fft.dct((a - b) * scale, type=2, norm="ortho", axis=1)[:, 1 : n_coeffs + 1]  # (T, K)
    return float(np.mean(10.0 / math.log(10.0) * np.sqrt(2.0 * np.sum(diff**2, axis=1))))


def pesq_wb(reference: np.ndarray, output: np.ndarray, sample_rate: int) -> float:
    """PESQ wide-band (ITU-T P.862.2, MOS-LQO 1.0..4.64) of ``output`` against ``reference``.

    Both are resampled to 16 kHz. Needs the pip package ``pesq``.

    Raises:
        ValueError: ``pesq`` is missing, or it found no speech in the reference.
    """
    pesq = require_package("pesq", "pesq")
    ref, out = _pair(reference, output)
    ref, out = resample(ref, sample_rate, METRIC_RATE), resample(out, sample_rate, METRIC_RATE)
    try:
        return float(pesq.pesq(METRIC_RATE, ref, out, "wb"))
    except RuntimeError as exc:  # pesq.PesqError: no utterances, buffer too short
        raise ValueError(f"PESQ failed: {exc}") from exc


def stoi(reference: np.ndarray, output: np.ndarray, sample_rate: int, extended: bool = False) -> float:
    """Short-time objective intelligibility (0..1; pystoi works at 10 kHz internally).

    Both are resampled to 16 kHz first. Needs the pip package ``pystoi``.

    Raises:
        ValueError: ``pystoi`` is missing, or too little speech remains once silent frames
            are removed (pystoi then warns and returns 1e-5; about 0.4 s of speech is needed).
    """
    pystoi = require_package("pystoi", "pystoi")
    ref, out = _pair(reference, output)
    ref, out = resample(ref, sample_rate, METRIC_RATE), resample(out, sample_rate, METRIC_RATE)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = float(pystoi.stoi(ref, out, METRIC_RATE, extended=extended))
    if any("Not enough STFT frames" in str(w.message) for w in caught):
        raise ValueError("STOI needs more speech: too few non-silent frames; use a longer recording")
    return value


# -- recognition ----------------------------------------------------------------------------
class PocketsphinxRecogniser:
    """English speech -> text with pocketsphinx 5 and its bundled US English model.

    Audio is resampled to 16 kHz 16-bit mono, as the model wants. Each call is judged alone, by
    a fresh decoder (about 0.5 s to load): a pocketsphinx decoder carries its cepstral-mean and
    noise statistics from one utterance to the next, so reusing one made a hypothesis depend on
    what was recognised before it (a WER that changed with the order of the sentences).
    """

    def __init__(self) -> None:
        self._pocketsphinx = require_package("pocketsphinx", "pocketsphinx")

    def __call__(self, audio: np.ndarray, sample_rate: int) -> str:
        x = np.asarray(audio)
        x = pcm_to_float(x) if x.dtype == np.int16 else x.astype(np.float32)
        pcm = float_to_pcm(resample(x, sample_rate, METRIC_RATE)).astype("<i2")  # (n16,)
        decoder = self._pocketsphinx.Decoder(loglevel="FATAL")
        decoder.start_utt()
        decoder.process_raw(pcm.tobytes(), full_utt=True)
        decoder.end_utt()
        hyp = decoder.hyp()
        return str(hyp.hypstr) if hyp is not None else ""


# -- vocoding helpers -----------------------------------------------------------------------
def find_audio(paths: Sequence[str | Path]) -> list[Path]:
    """Audio files named by ``paths``: files as given, folders searched recursively (sorted)."""
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(f for f in p.rglob("*") if f.suffix.lower() in AUDIO_SUFFIXES and f.is_file())
        elif p.is_file():
            files.append(p)
        else:
            raise ValueError(f"{p} is neither an audio file nor a folder; check the path")
    if not files:
        raise ValueError(f"no {'/'.join(AUDIO_SUFFIXES)} files found under {[str(p) for p in paths]}")
    return files


def spread(items: Sequence[Any], count: int) -> list[Any]:
    """At most ``count`` items evenly spread over ``items`` (all when count <= 0), in order."""
    if count <= 0 or count >= len(items):
        return list(items)
    return [items[i] for i in np.unique(np.linspace(0, len(items) - 1, count).round().astype(int))]


def _mean(rows: list[dict[str, Any]], keys: Sequence[str]) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for key in keys:
        values = [r[key] for r in rows if r.get(key) is not None]
        out[key] = float(np.mean(values)) if values else None
    return out


def _try(metric: Callable[..., float], *args: Any, name: str) -> float | None:
    """``metric(*args)``, or None (with a warning) when it raises ValueError."""
    try:
        return metric(*args)
    except ValueError as exc:
        log.warning("%s on %s failed: %s", metric.__name__, name, exc)
        return None


# -- copy-synthesis -------------------------------------------------------------------------
COPY_KEYS = ("pesq_wb", "stoi", "log_mel_distance", "mcd_db", "rtf")


def copy_synthesis(
    model: WaveRNN,
    voice: VoiceConfig,
    files: Sequence[str | Path],
    *,
    max_utterances: int = 0,
    max_seconds: float = 0.0,
    seed: int = 0,
    sampler: Sampler | None = None,
    temperature: float = 1.0,
    postfilter_db: float | None = None,
    pitch_sync: bool = False,
    comb_gain: float = 0.0,
    audio_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Vocode real recordings from their own log-mel and compare the result with them.

    Each recording is loaded at the voice's rate (24 kHz), cut to ``max_seconds``, analysed
    into log-mel frames and vocoded (T frames give T * hop samples, cut back to the input's
    length). The log-mel distance and MCD use only the bands below the source's Nyquist
    frequency (a 16 kHz file holds nothing above 8 kHz).

    Args:
        model: the trained network (a CPU copy is used if it lives elsewhere).
        voice: its voice config.
        files: audio files (wav/flac, any rate); see :func:`find_audio` for folders.
        max_utterances: use at most this many files, evenly spread over the list (0 = all).
        max_seconds: cut each recording to its first this many seconds (0 = whole).
        seed: sampling seed of every utterance.
        sampler: the sampler (default: the compiled CPU sampler over the model's weights).
        temperature: sampling temperature of the default sampler (1.0: the paper's).
        postfilter_db: gain limit of the spectral-envelope post-filter (None: none).
        pitch_sync: pitch-synchronous uniforms (:mod:`models.samplers.pitch_sync`).
        comb_gain: gain of the pitch post-filter (:mod:`models.comb`; 0: none).
        audio_dir: if given, write each vocoded utterance there as ``<index>_<stem>.wav``.
    Returns:
        ``{"utterances": [{"file", "seconds", "pesq_wb", "stoi", "log_mel_distance",
        "mcd_db", "rtf"}...], "mean": {same metrics}, "count", "audio_seconds"}``; a metric
        that fails on one utterance is ``None`` there and left out of the mean.
    """
    if max_seconds < 0 or max_utterances < 0:
        raise ValueError("max_seconds and max_utterances must be >= 0 (0 = no limit)")
    require_package("pesq", "pesq")
    require_package("pystoi", "pystoi")
    chosen = spread([Path(f) for f in files], max_utterances)
    if not chosen:
        raise ValueError("copy-synthesis needs at least one audio file")
    vocoder = cpu_vocoder(model, voice, sampler, temperature, postfilter_db, pitch_sync, comb_gain)
    cfg, rate = voice.features, voice.features.sample_rate
    rows: list[dict[str, Any]] = []
    for i, path in enumerate(chosen):
        x, file_rate = read_audio(path)
        ref = resample(x, file_rate, rate)
        if max_seconds > 0:
            ref = ref[: round(max_seconds * rate)]
        start = time.perf_counter()
        pcm = vocoder.vocode(log_mel(ref, cfg), seed=seed)[: ref.shape[0]]
        elapsed = time.perf_counter() - start
        out = pcm_to_float(pcm)
        if audio_dir is not None:
            Path(audio_dir).mkdir(parents=True, exist_ok=True)
            write_wav(Path(audio_dir) / f"{i:03d}_{path.stem}.wav", pcm, rate)
        nyquist = min(file_rate / 2.0, cfg.fmax)
        seconds = ref.shape[0] / rate
        row: dict[str, Any] = {
            "file": str(path),
            "seconds": seconds,
            "pesq_wb": _try(pesq_wb, ref, out, rate, name=path.name),
            "stoi": _try(stoi, ref, out, rate, name=path.name),
            "log_mel_distance": log_mel_distance(ref, out, cfg, max_hz=nyquist),
            "mcd_db": mel_cepstral_distortion(ref, out, cfg, max_hz=nyquist),
            "rtf": elapsed / seconds,
        }
        rows.append(row)
        log.info("copy-synthesis %d/%d %s: %.1f s in %.1f s, PESQ %s, STOI %s, log-mel distance %.3f",
                 i + 1, len(chosen), path.name, seconds, elapsed, _fmt(row["pesq_wb"]), _fmt(row["stoi"]),
                 row["log_mel_distance"])
    return {"count": len(rows), "audio_seconds": float(sum(r["seconds"] for r in rows)),
            "mean": _mean(rows, COPY_KEYS), "utterances": rows}


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


# -- intelligibility ------------------------------------------------------------------------
def intelligibility(
    model: WaveRNN,
    voice: VoiceConfig,
    frontend: TextFrontend,
    sentences: Sequence[str] = EVERYDAY_SENTENCES,
    *,
    seed: int = 0,
    sampler: Sampler | None = None,
    temperature: float = 1.0,
    postfilter_db: float | None = None,
    pitch_sync: bool = False,
    comb_gain: float = 0.0,
    recognise: Recogniser | None = None,
    audio_dir: str | Path | None = None,
    block_samples: int = 2400,
) -> dict[str, Any]:
    """Word error rate of sentences spoken through the text path, beside the frontend's own.

    Each sentence: ``frontend.render_text`` -> :func:`features_for` -> vocoder -> recogniser;
    the frontend's rendering is recognised too, so ``frontend_wer`` is the floor the vocoder
    is measured against. WERs are pooled: total word errors / total reference words.

    Args:
        model, voice: the voice under test (a CPU copy is used if the model lives elsewhere).
        frontend: the text frontend (Festival).
        sentences: what to say (default :data:`EVERYDAY_SENTENCES`).
        seed: sampling seed of every sentence.
        sampler: default: the compiled CPU sampler.
        temperature: sampling temperature of the default sampler (1.0: the paper's).
        postfilter_db: gain limit of the spectral-envelope post-filter (None: none).
        pitch_sync: pitch-synchronous uniforms (:mod:`models.samplers.pitch_sync`).
        comb_gain: gain of the pitch post-filter (:mod:`models.comb`; 0: none).
        recognise: default: a :class:`PocketsphinxRecogniser`.
        audio_dir: if given, write each vocoded sentence there as ``<index>.wav``.
        block_samples: samples per sampler call (the vocoder's block size).
    Returns:
        ``{"wer", "frontend_wer", "words", "sentences": [{"text", "reference",
        "hypothesis", "errors", "frontend_hypothesis", "frontend_errors"}...]}``.
    """
    if not sentences:
        raise ValueError("intelligibility needs at least one sentence")
    recognise = recognise or PocketsphinxRecogniser()
    vocoder = cpu_vocoder(model, voice, sampler, temperature, postfilter_db, pitch_sync, comb_gain)
    rate = voice.features.sample_rate
    rows: list[dict[str, Any]] = []
    for i, text in enumerate(sentences):
        rendering = frontend.render_text(text)
        pcm = vocoder.vocode(features_for(rendering, voice.features), seed=seed, block_samples=block_samples)
        if audio_dir is not None:
            Path(audio_dir).mkdir(parents=True, exist_ok=True)
            write_wav(Path(audio_dir) / f"{i:03d}.wav", pcm, rate)
        hypothesis = recognise(pcm_to_float(pcm), rate)
        frontend_hypothesis = recognise(rendering.audio, rendering.sample_rate)
        errors, words = word_errors(text, hypothesis)
        if words == 0:
            raise ValueError(f"sentence {text!r} has no words to score")
        rows.append({"text": text, "reference": normalise_text(text), "words": words,
                     "hypothesis": hypothesis, "errors": errors, "frontend_hypothesis": frontend_hypothesis,
                     "frontend_errors": word_errors(text, frontend_hypothesis)[0]})
        log.info("intelligibility %d/%d %r -> %r (frontend: %r)", i + 1, len(sentences), text, hypothesis,
                 frontend_hypothesis)
    total = sum(r["words"] for r in rows)
    return {"wer": sum(r["errors"] for r in rows) / total,
            "frontend_wer": sum(r["frontend_errors"] for r in rows) / total,
            "words": total, "sentences": rows}
