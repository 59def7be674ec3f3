"""Response encoders: int16 PCM blocks -> the bytes of a ``pcm``, ``wav`` or ``sse`` response.

- ``pcm``: raw signed 16-bit little-endian mono samples, nothing else.
- ``wav``: a 44-byte RIFF header, then PCM. Streamed, the header's sizes are ``0xFFFFFFFF``
  (unknown length); buffered (``stream: false``) they are exact.
- ``sse``: ``text/event-stream`` events ``{"type": "speech.audio.delta", "audio": <base64>}``
  carrying the ``pcm`` or ``wav`` bytes, then ``{"type": "speech.audio.done", "usage": {...}}``,
  or ``{"type": "error", "error": {...}}`` if the stream is cut short.
"""

from __future__ import annotations

import base64
import json
from typing import Any, Literal

import numpy as np

from models.audio import wav_header

AudioFormat = Literal["pcm", "wav"]
StreamFormat = Literal["audio", "sse"]

MEDIA_TYPES = {"pcm": "audio/pcm", "wav": "audio/wav", "sse": "text/event-stream"}


def pcm_bytes(block: np.ndarray) -> bytes:
    """int16 samples (n,) -> 2n bytes, little endian."""
    return np.asarray(block, dtype="<i2").tobytes()


def wav_file(pcm: np.ndarray, sample_rate: int) -> bytes:
    """A complete wav file (exact sizes) of int16 samples (n,)."""
    return wav_header(int(pcm.shape[0]), sample_rate) + pcm_bytes(pcm)


class AudioEncoder:
    """Streams one audio format: ``start()`` once, ``block()`` per PCM block.

    Args:
        fmt: ``pcm`` or ``wav`` (streaming header of unknown length).
        sample_rate: Hz, written in the wav header.
    """

    def __init__(self, fmt: AudioFormat, sample_rate: int) -> None:
        if fmt not in ("pcm", "wav"):
            raise ValueError(f"unsupported audio format {fmt!r}; use pcm or wav")
        self.fmt = fmt
        self.sample_rate = sample_rate

    def start(self) -> bytes:
        return wav_header(None, self.sample_rate) if self.fmt == "wav" else b""

    def block(self, pcm: np.ndarray) -> bytes:
        return pcm_bytes(pcm)


def sse_event(payload: dict[str, Any]) -> bytes:
    """One server-sent event ``data: <json>\\n\\n``."""
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"


def sse_delta(audio: bytes) -> bytes:
    """A ``speech.audio.delta`` event carrying ``audio`` base64-encoded."""
    return sse_event({"type": "speech.audio.delta", "audio": base64.b64encode(audio).decode("ascii")})


def sse_done(usage: dict[str, Any]) -> bytes:
    """The final ``speech.audio.done`` event."""
    return sse_event({"type": "speech.audio.done", "usage": usage})


def sse_error(message: str, type_: str, code: str) -> bytes:
    """An ``error`` event (the stream was cut short)."""
    return sse_event({"type": "error", "error": {"message": message, "type": type_, "code": code}})
