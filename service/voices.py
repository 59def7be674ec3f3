"""Which voice the server loads: ``TTS_VOICE`` -> a :class:`models.voices.Voice`."""

from __future__ import annotations

import dataclasses

from models.config import VoiceConfig
from models.voices import Voice, load_voice, untrained_voice

#: A seeded, untrained tiny WaveRNN (H=32, 8 mels, hop 30): fast, for tests and smoke checks.
UNTRAINED_TINY = "untrained-tiny"


def resolve_voice(spec: str) -> Voice:
    """A bundled name, a checkpoint / voice-folder path, or ``untrained-tiny``.

    Raises:
        ValueError: unknown name or unreadable checkpoint (with the known names).
    """
    if spec == UNTRAINED_TINY:
        voice = untrained_voice(VoiceConfig.tiny(), seed=0)
        card = {**voice.card, "name": UNTRAINED_TINY}
        return dataclasses.replace(voice, name=UNTRAINED_TINY, card=card)
    return load_voice(spec)
