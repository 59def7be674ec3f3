"""The text-frontend contract: what a frontend returns, the protocol callers depend on, input checks.

A frontend turns text (or phonemes with optional durations and pitch targets) into speech
rendered by a conventional synthesiser (Festival's HTS voice), plus the segment timings and
pitch it used. The service computes the voice's log-mel features from that speech with
:func:`features_for`, and the WaveRNN vocodes them at 24 kHz.

Who calls what: the service's text endpoints call :meth:`TextFrontend.split_sentences` on
long text, then :meth:`TextFrontend.render_text` per sentence (or
:meth:`TextFrontend.render_phonemes`), then :func:`features_for`, all off the event loop.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from models.config import SAMPLE_RATE, FeatureConfig
from models.features import log_mel

#: The Debian packages that provide the frontend, and how to install them.
FESTIVAL_PACKAGES = "festival festvox-us-slt-hts"
INSTALL_COMMAND = f"apt-get install {FESTIVAL_PACKAGES}"

#: Longest text (characters, after normalisation) one ``render_text`` call accepts; split
#: longer text with ``split_sentences`` first.
MAX_TEXT_CHARS = 2000
#: Most phonemes one ``render_phonemes`` call accepts.
MAX_PHONEMES = 2000
#: Speaking-rate bounds (1.0 is the voice's natural rate).
MIN_SPEED, MAX_SPEED = 0.25, 4.0
#: Bounds of an explicit phoneme duration (ms) and pitch target (Hz).
MIN_DURATION_MS, MAX_DURATION_MS = 10.0, 2000.0
MIN_PITCH_HZ, MAX_PITCH_HZ = 50.0, 500.0

#: Silence phone of the radio phone set.
SILENCE = "pau"
#: Festival's US English "radio" phone set (the set of ``cmu_us_slt_arctic_hts``), plus ``pau``.
#: Festival's other silence symbols (``h#``, ``brth``) are left out: the HTS voice is not
#: trained on them; use ``pau``.
RADIO_PHONES: frozenset[str] = frozenset(
    (
        "aa", "ae", "ah", "ao", "aw", "ax", "axr", "ay", "b", "ch", "d", "dh", "dx", "eh", "el", "em", "en",
        "er", "ey", "f", "g", "hh", "hv", "ih", "iy", "jh", "k", "l", "m", "n", "nx", "ng", "ow", "oy", "p",
        "r", "s", "sh", "t", "th", "uh", "uw", "v", "w", "y", "z", "zh", "pau"
    )
)

# Typographic characters mapped to what Festival's tokenizer understands before the ASCII fold.
_TYPOGRAPHY = str.maketrans(
    {
        "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'",
        "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u00ab": '"', "\u00bb": '"',
        "\u2013": ", ", "\u2014": ", ", "\u2026": "...", "\u00a0": " ",
    }
)


class FrontendUnavailable(RuntimeError):
    """The frontend cannot render: Festival or its voice is missing, or its process failed.

    The service answers 503 on the text endpoints when it sees this (``/v1/vocode`` keeps
    working).
    """

    @classmethod
    def not_installed(cls, what: str) -> FrontendUnavailable:
        return cls(
            f"{what}; the text frontend needs the Debian packages `{FESTIVAL_PACKAGES}` "
            f"(install them with `{INSTALL_COMMAND}`)"
        )


class FrontendFailed(FrontendUnavailable):
    """One request failed inside Festival (it hung past the timeout, crashed or reported an
    error). The process was restarted; the next request may succeed."""


@dataclass(frozen=True)
class PhonemeSpec:
    """One phone to speak.

    Attributes:
        phoneme: a phone of Festival's US English (radio) phone set, e.g. ``"hh"``, ``"ax"``,
            ``"l"``, ``"ow"``, ``"pau"`` (see :data:`RADIO_PHONES`).
        duration_ms: its duration in ms (10..2000, divided by the call's ``speed``), or
            ``None`` to keep the synthesiser's predicted duration.
        pitch_hz: F0 target (50..500 Hz) at the phone's middle, or ``None`` to keep the
            synthesiser's pitch there. Targets act on voiced phones only.
    """

    phoneme: str
    duration_ms: float | None = None
    pitch_hz: float | None = None


@dataclass(frozen=True)
class Segment:
    """One phone as rendered: Festival's segment timing and the pitch measured in it.

    Attributes:
        phoneme: the phone (radio set; ``pau`` for silence).
        start_s: start time in the rendering (seconds).
        end_s: end time (seconds); segments tile the rendering in order.
        f0_hz: median F0 over the segment's middle half, or ``None`` when that is unvoiced.
    """

    phoneme: str
    start_s: float
    end_s: float
    f0_hz: float | None

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


@dataclass(frozen=True, eq=False)
class Rendering:
    """Speech rendered by the frontend.

    Attributes:
        audio: float32 mono samples in [-1, 1], shape ``(n,)``, at ``sample_rate``.
        segments: the phones in order, covering ``[0, n / sample_rate]``.
        sample_rate: 24,000 Hz (Festival's 32 kHz output is resampled).
    """

    audio: np.ndarray
    segments: list[Segment] = field(default_factory=list)
    sample_rate: int = SAMPLE_RATE

    @property
    def duration_s(self) -> float:
        return float(self.audio.shape[0]) / self.sample_rate


class TextFrontend(Protocol):
    """Text or phonemes -> speech (24 kHz) with segment timings and pitch.

    Implementations are thread-safe; rendering blocks (call it off the event loop).
    """

    def available(self) -> bool:
        """True when rendering can work (synthesiser and voice installed). Cheap; cached."""
        ...

    def split_sentences(self, text: str) -> list[str]:
        """Split long text into sentences (pure Python; works without the synthesiser).

        Returns non-empty stripped strings, each at most the frontend's sentence length.
        """
        ...

    def render_text(self, text: str, speed: float = 1.0) -> Rendering:
        """Speak ``text`` (1..:data:`MAX_TEXT_CHARS` characters) at rate ``speed`` (0.25..4).

        Raises:
            ValueError: empty or over-long text, or ``speed`` out of range.
            FrontendUnavailable: the synthesiser is missing or failed.
        """
        ...

    def render_phonemes(self, phones: Sequence[PhonemeSpec], speed: float = 1.0) -> Rendering:
        """Speak phones with optional durations (ms) and pitch targets (Hz) at rate ``speed``.

        Raises:
            ValueError: an unknown phone, a duration or pitch out of range, an empty list.
            FrontendUnavailable: the synthesiser is missing or failed.
        """
        ...

    def phone_set(self) -> frozenset[str]:
        """The phones :meth:`render_phonemes` accepts."""
        ...


def features_for(rendering: Rendering, cfg: FeatureConfig) -> np.ndarray:
    """Log-mel features of a rendering (the vocoder's conditioning).

    Args:
        rendering: the frontend's output; resampled to ``cfg.sample_rate`` if it differs.
        cfg: the voice's feature recipe.

    Returns:
        float32 of shape ``(T, n_mels)``, ``T = cfg.n_frames(n)`` for ``n`` samples at
        ``cfg.sample_rate``.
    """
    from models.audio import resample

    audio = np.asarray(rendering.audio, dtype=np.float32)
    if rendering.sample_rate != cfg.sample_rate:
        audio = resample(audio, rendering.sample_rate, cfg.sample_rate)
    return log_mel(audio, cfg)


def check_speed(speed: float) -> float:
    """Validate a speaking rate; returns it as float."""
    if isinstance(speed, bool) or not isinstance(speed, (int, float)) or not math.isfinite(speed):
        raise ValueError(f"speed must be a number in {MIN_SPEED}..{MAX_SPEED}, got {speed!r}")
    if not MIN_SPEED <= speed <= MAX_SPEED:
        raise ValueError(f"speed {speed} is outside {MIN_SPEED}..{MAX_SPEED} (1.0 is the natural rate)")
    return float(speed)


def normalise_text(text: str) -> str:
    """Text as Festival gets it: typographic quotes and dashes simplified, accents folded to
    ASCII, control characters turned into spaces, runs of spaces collapsed.

    Raises:
        ValueError: not a string, nothing speakable left, or over :data:`MAX_TEXT_CHARS`.
    """
    if not isinstance(text, str):
        raise ValueError(f"text must be a string, got {type(text).__name__}")
    folded = unicodedata.normalize("NFKD", text.translate(_TYPOGRAPHY))
    ascii_text = folded.encode("ascii", "ignore").decode("ascii")
    cleaned = " ".join("".join(c if c.isprintable() else " " for c in ascii_text).split())
    if not any(c.isalnum() for c in cleaned):
        raise ValueError("text has nothing to speak (it is empty, whitespace or punctuation only); send words")
    if len(cleaned) > MAX_TEXT_CHARS:
        raise ValueError(
            f"text has {len(cleaned)} characters, more than the {MAX_TEXT_CHARS} one call renders; "
            "split it with split_sentences() and render each sentence"
        )
    return cleaned


def check_phonemes(phones: Sequence[PhonemeSpec], phone_set: frozenset[str]) -> list[PhonemeSpec]:
    """Validate a phoneme sequence against ``phone_set`` and the duration/pitch bounds.

    Returns:
        the phones as a list (phone names lower-cased).
    """
    if isinstance(phones, (str, bytes)) or not isinstance(phones, Sequence):
        raise ValueError("phones must be a sequence of PhonemeSpec")
    if len(phones) == 0:
        raise ValueError("phones is empty; send at least one phone")
    if len(phones) > MAX_PHONEMES:
        raise ValueError(f"{len(phones)} phones is more than the {MAX_PHONEMES} one call renders; split them")
    out: list[PhonemeSpec] = []
    for i, spec in enumerate(phones):
        if not isinstance(spec, PhonemeSpec):
            raise ValueError(f"phone {i} is a {type(spec).__name__}, expected PhonemeSpec")
        name = spec.phoneme.strip().lower() if isinstance(spec.phoneme, str) else spec.phoneme
        if name not in phone_set:
            raise ValueError(
                f"unknown phone {spec.phoneme!r} at position {i}; valid phones: {' '.join(sorted(phone_set))}"
            )
        _check_range(spec.duration_ms, MIN_DURATION_MS, MAX_DURATION_MS, f"duration_ms of phone {i} ({name})", "ms")
        _check_range(spec.pitch_hz, MIN_PITCH_HZ, MAX_PITCH_HZ, f"pitch_hz of phone {i} ({name})", "Hz")
        out.append(PhonemeSpec(name, spec.duration_ms, spec.pitch_hz))
    if all(p.phoneme == SILENCE for p in out):
        raise ValueError("phones are all silence (pau); send at least one speech phone")
    return out


def _check_range(value: float | None, lo: float, hi: float, what: str, unit: str) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{what} must be a number in {lo:g}..{hi:g} {unit} or None, got {value!r}")
    if not lo <= value <= hi:
        raise ValueError(f"{what} = {value:g} {unit} is outside {lo:g}..{hi:g} {unit}")
