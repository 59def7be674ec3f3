"""Which voice the server loads: ``TTS_VOICE`` -> a :class:`models.voices.Voice`."""

from __future__ import annotations

import dataclasses

from models.comb import check_comb_gain
from models.config import VoiceConfig
from models.postfilter import postfilter_gain_db
from models.voices import Voice, card_comb_gain, card_pitch_sync, load_voice, untrained_voice
from models.weights import check_temperature

#: A seeded, untrained tiny WaveRNN (H=32, 8 mels, hop 30): fast, for tests and smoke checks.
UNTRAINED_TINY = "untrained-tiny"


def resolve_voice(spec: str, temperature: float | None = None, postfilter_db: float | None = None,
                  pitch_sync: bool | None = None, comb_gain: float | None = None) -> Voice:
    """A bundled name, a checkpoint / voice-folder path, or ``untrained-tiny``.

    Args:
        spec: ``TTS_VOICE``.
        temperature: ``TTS_TEMPERATURE``: if given, it replaces the card's sampling temperature
            (so ``/v1/models`` shows the one the workers use).
        postfilter_db: ``TTS_POSTFILTER_DB``: if given, it replaces the card's post-filter gain
            limit (0: no post-filter).
        pitch_sync: ``TTS_PITCH_SYNC``: if given, it replaces the card's ``sampling.pitch_sync``.
        comb_gain: ``TTS_COMB_GAIN``: if given, it replaces the card's ``postfilter.comb_gain``
            (0: no pitch post-filter).

    Raises:
        ValueError: unknown name or unreadable checkpoint (with the known names); a
            temperature or post-filter limit out of range.
    """
    if spec == UNTRAINED_TINY:
        voice = untrained_voice(VoiceConfig.tiny(), seed=0)
        voice = dataclasses.replace(voice, name=UNTRAINED_TINY, card={**voice.card, "name": UNTRAINED_TINY})
    else:
        voice = load_voice(spec)
    card = dict(voice.card)
    if temperature is not None:
        card["sampling"] = {**card.get("sampling", {}), "temperature": check_temperature(temperature)}
    entry = dict(card.get("postfilter") or {})
    if postfilter_db is not None:
        entry["max_gain_db"] = postfilter_gain_db(postfilter_db) or 0.0
    if comb_gain is not None:
        entry["comb_gain"] = check_comb_gain(comb_gain)
    card.pop("postfilter", None)
    if entry.get("max_gain_db") or entry.get("comb_gain"):
        card["postfilter"] = {"max_gain_db": entry.get("max_gain_db", 0.0),
                              **({"comb_gain": entry["comb_gain"]} if entry.get("comb_gain") else {})}
    if pitch_sync is not None:
        card["sampling"] = {**card.get("sampling", {}), "pitch_sync": pitch_sync}
    card_pitch_sync(card)  # refused for a subscale voice
    card_comb_gain(card)
    return dataclasses.replace(voice, card=card)
