"""Text frontend: text or phonemes -> speech, segment timings and pitch (Festival, HTS voice).

See :mod:`models.frontend.base` for the contract and :mod:`models.frontend.festival` for what
the Festival HTS voice can and cannot control.
"""

from models.frontend.base import (
    FESTIVAL_PACKAGES,
    INSTALL_COMMAND,
    MAX_DURATION_MS,
    MAX_PHONEMES,
    MAX_PITCH_HZ,
    MAX_SPEED,
    MAX_TEXT_CHARS,
    MIN_DURATION_MS,
    MIN_PITCH_HZ,
    MIN_SPEED,
    RADIO_PHONES,
    FrontendFailed,
    FrontendUnavailable,
    PhonemeSpec,
    Rendering,
    Segment,
    TextFrontend,
    features_for,
)
from models.frontend.festival import DEFAULT_VOICE, FestivalFrontend, festival_status
from models.frontend.sentences import MAX_SENTENCE_CHARS, split_sentences

__all__ = [
    "DEFAULT_VOICE",
    "FESTIVAL_PACKAGES",
    "INSTALL_COMMAND",
    "MAX_DURATION_MS",
    "MAX_PHONEMES",
    "MAX_PITCH_HZ",
    "MAX_SENTENCE_CHARS",
    "MAX_SPEED",
    "MAX_TEXT_CHARS",
    "MIN_DURATION_MS",
    "MIN_PITCH_HZ",
    "MIN_SPEED",
    "RADIO_PHONES",
    "FestivalFrontend",
    "FrontendFailed",
    "FrontendUnavailable",
    "PhonemeSpec",
    "Rendering",
    "Segment",
    "TextFrontend",
    "features_for",
    "festival_status",
    "split_sentences",
]
