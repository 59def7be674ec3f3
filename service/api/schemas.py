"""Request and response bodies, with their bounds (pydantic ``Field``).

Static bounds live here; limits that an operator sets (text length, utterance length, body
size) come from :class:`~service.settings.Settings` and are checked by the handlers.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from service.settings import HARD_MAX_INPUT_CHARS

MAX_SEED = 2**53 - 1  # exact in JSON numbers (JavaScript clients)
# The frontend's own bounds (models/frontend/base.py), repeated so that bad input is a 422 up front.
MAX_PHONEMES = 2000
MIN_DURATION_MS, MAX_DURATION_MS = 10.0, 2000.0
MIN_PITCH_HZ, MAX_PITCH_HZ = 50.0, 500.0


class OutputOptions(BaseModel):
    """How the audio comes back (shared by every synthesis endpoint)."""

    model_config = ConfigDict(extra="ignore")

    response_format: Literal["pcm", "wav"] = Field(
        "wav", description="`pcm`: raw s16le mono at 24 kHz; `wav`: a RIFF header then the same PCM."
    )
    stream_format: Literal["audio", "sse"] = Field(
        "audio", description="`audio`: the bytes themselves; `sse`: server-sent events with base64 deltas."
    )
    stream: bool = Field(
        True, description="Stream while generating; false buffers the utterance (a wav then has exact sizes)."
    )
    seed: int | None = Field(
        None, ge=0, le=MAX_SEED,
        description="Sampling seed: the same request with the same seed gives the same audio. "
        "Absent: a random seed, returned in the X-Seed header.",
    )

    @model_validator(mode="after")
    def _sse_streams(self) -> OutputOptions:
        if self.stream_format == "sse" and not self.stream:
            raise ValueError("stream_format 'sse' always streams; drop `stream: false` or use stream_format 'audio'")
        return self


def _not_blank(value: str | None, name: str) -> str | None:
    if value is not None and not value.strip():
        raise ValueError(f"{name} is empty (only whitespace); send some text to speak")
    return value


class SpeechRequest(OutputOptions):
    """``POST /v1/audio/speech``: OpenAI-compatible text to speech."""

    model: str = Field("tts-1", min_length=1, max_length=128,
                       description="A model id from /v1/models, or an OpenAI alias (tts-1, tts-1-hd, "
                       "gpt-4o-mini-tts) served by the loaded voice.")
    input: str = Field(..., min_length=1, max_length=HARD_MAX_INPUT_CHARS,
                       description="Text to speak (at most TTS_MAX_INPUT_CHARS characters).")
    voice: str | None = Field(None, min_length=1, max_length=128,
                              description="Voice name from /v1/models; absent: the served voice.")
    speed: float = Field(1.0, ge=0.25, le=4.0, description="Speaking rate (1 = normal).")

    @field_validator("input")
    @classmethod
    def _input_not_blank(cls, v: str) -> str:
        _not_blank(v, "input")
        return v


class Phoneme(BaseModel):
    """One phoneme with optional duration and pitch target."""

    model_config = ConfigDict(extra="forbid")

    phoneme: str = Field(..., min_length=1, max_length=8, pattern=r"^[a-z#]+$",
                         description="A phone of Festival's US English radio set, e.g. `hh`, `ax`, `l`, `ow`, "
                         "`pau` (silence).")
    duration_ms: float | None = Field(None, ge=MIN_DURATION_MS, le=MAX_DURATION_MS,
                                      description="Duration (ms, divided by `speed`); absent: predicted.")
    pitch_hz: float | None = Field(None, ge=MIN_PITCH_HZ, le=MAX_PITCH_HZ,
                                   description="Pitch target (Hz) at the phone's middle; absent: predicted.")


class SynthesizeRequest(OutputOptions):
    """``POST /v1/synthesize``: text, or phonemes with optional durations and pitch."""

    text: str | None = Field(None, min_length=1, max_length=HARD_MAX_INPUT_CHARS,
                             description="Text to speak (exclusive with `phonemes`).")
    phonemes: list[Phoneme] | None = Field(None, min_length=1, max_length=MAX_PHONEMES,
                                           description="Phoneme sequence (exclusive with `text`).")
    voice: str | None = Field(None, min_length=1, max_length=128, description="Voice name; absent: the served voice.")
    speed: float = Field(1.0, ge=0.25, le=4.0, description="Speaking rate (1 = normal).")

    @field_validator("text")
    @classmethod
    def _text_not_blank(cls, v: str | None) -> str | None:
        return _not_blank(v, "text")

    @model_validator(mode="after")
    def _one_input(self) -> SynthesizeRequest:
        if (self.text is None) == (self.phonemes is None):
            raise ValueError("send exactly one of `text` or `phonemes`")
        return self


class VocodeRequest(OutputOptions):
    """``POST /v1/vocode`` with a JSON body: log-mel frames plus output options."""

    features: list[list[float]] = Field(..., min_length=1,
                                        description="Log-mel frames (T, n_mels) in the voice's feature recipe.")


class ModelCard(BaseModel):
    """One entry of ``GET /v1/models``."""

    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str = "wavernn-tts"
    trained: bool = Field(..., description="False for an untrained (noise-making) voice.")
    sample_rate: int
    n_mels: int
    hop_length: int
    hidden_size: int
    aliases: list[str]
    description: str = ""
    card: dict[str, Any] = Field(default_factory=dict, description="The voice card.")


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class ErrorDetail(BaseModel):
    message: str
    type: str
    code: str
    param: str | None = None


class ErrorResponse(BaseModel):
    """Every error answer: ``{"error": {...}}``."""

    error: ErrorDetail
