"""From a validated request to an audio response: the one call each synthesis route makes.

:class:`SynthesisService` checks the operator limits (text length, voice, model), builds the
feature source (frontend chunks or the posted log-mels), submits it to the engine and turns
the engine's :class:`~service.engine.protocol.AudioStream` into a streamed
(:mod:`service.api.responses`) or buffered ``pcm``/``wav``/``sse`` response.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import AsyncIterable

import numpy as np
from fastapi import Response

from models.config import FeatureConfig
from service.api.errors import APIError
from service.api.responses import AudioBody, AudioResponse
from service.api.schemas import OutputOptions, SpeechRequest, SynthesizeRequest
from service.engine.protocol import (
    AudioStream,
    DeadlineExceededError,
    EngineClient,
    EngineError,
    EngineNotReadyError,
    InputUnavailableError,
    QueueFullError,
    SynthesisRequest,
    WorkerFailedError,
)
from service.frontend import FrontendUnavailableError, TextFrontend
from service.metrics import Metrics
from service.settings import Settings
from service.streaming import MEDIA_TYPES, pcm_bytes, wav_file

log = logging.getLogger(__name__)

#: OpenAI model names accepted by /v1/audio/speech (all served by the loaded voice).
MODEL_ALIASES = ("tts-1", "tts-1-hd", "gpt-4o-mini-tts")


def engine_error(exc: EngineError, metrics: Metrics, retry_after_s: int) -> APIError:
    """The HTTP error for an engine error (and its ``tts_requests_rejected_total`` reason)."""
    retry = {"Retry-After": str(retry_after_s)}
    if isinstance(exc, QueueFullError):
        metrics.reject("queue_full")
        return APIError(429, f"the server is at capacity: {exc}", "queue_full", headers=retry)
    if isinstance(exc, EngineNotReadyError):
        metrics.reject("not_ready")
        return APIError(503, str(exc), "not_ready", headers=retry)
    if isinstance(exc, DeadlineExceededError):
        metrics.reject("deadline")
        return APIError(504, f"{exc} (TTS_REQUEST_TIMEOUT_S); send shorter input", "deadline_exceeded")
    if isinstance(exc, WorkerFailedError):
        metrics.reject("worker_failed")
        return APIError(503, str(exc), "worker_failed", headers=retry)
    if isinstance(exc, InputUnavailableError):
        metrics.reject("input_failed")
        return APIError(503, str(exc), "input_failed")
    return APIError(500, str(exc), "engine_error")


class SynthesisService:
    """Runs synthesis requests against an engine (and the text frontend)."""

    def __init__(self, settings: Settings, engine: EngineClient, frontend: TextFrontend, metrics: Metrics) -> None:
        self.settings = settings
        self.engine = engine
        self.frontend = frontend
        self.metrics = metrics

    # -- endpoints ---------------------------------------------------------------------
    async def speech(self, req: SpeechRequest, t0: float) -> Response:
        """``/v1/audio/speech``."""
        self._check_ready()
        names = (self.engine.voice.name, *MODEL_ALIASES)
        if req.model not in names:
            raise APIError(404, f"unknown model {req.model!r}; this server serves {list(names)} (see /v1/models)",
                           "model_not_found", "model")
        self._check_voice(req.voice)
        self._check_text(req.input, "input")
        source = self.frontend.text_features(req.input, req.speed, self._features_cfg())
        return await self._respond("speech", source, req, t0, {"input_characters": len(req.input)})

    async def synthesize(self, req: SynthesizeRequest, t0: float) -> Response:
        """``/v1/synthesize`` (text or phonemes)."""
        self._check_ready()
        self._check_voice(req.voice)
        source: AsyncIterable[np.ndarray]
        if req.text is not None:
            self._check_text(req.text, "text")
            source = self.frontend.text_features(req.text, req.speed, self._features_cfg())
            usage = {"input_characters": len(req.text)}
        else:
            assert req.phonemes is not None
            self._require_frontend()
            triples = [(p.phoneme, p.duration_ms, p.pitch_hz) for p in req.phonemes]
            source = self.frontend.phoneme_features(triples, req.speed, self._features_cfg())
            usage = {"input_phonemes": len(req.phonemes)}
        return await self._respond("synthesize", source, req, t0, usage)

    async def vocode(self, features: np.ndarray, opts: OutputOptions, t0: float) -> Response:
        """``/v1/vocode`` (features already parsed, not yet validated)."""
        self._check_ready()
        frames = int(features.shape[0]) if features.ndim >= 1 else 0
        return await self._respond("vocode", features, opts, t0, {"input_frames": frames})

    # -- checks ----------------------------------------------------------------------
    def _check_ready(self) -> None:
        if not self.engine.is_ready():
            self.metrics.reject("not_ready")
            raise APIError(503, "the voice is still loading (or the server is shutting down); retry shortly",
                           "not_ready", headers={"Retry-After": str(self.settings.retry_after_s)})

    def _check_voice(self, voice: str | None) -> None:
        name = self.engine.voice.name
        if voice is not None and voice != name:
            raise APIError(404, f"unknown voice {voice!r}; this server serves the voice {name!r} (see /v1/models)",
                           "voice_not_found", "voice")

    def _check_text(self, text: str, param: str) -> None:
        limit = self.settings.max_input_chars
        if len(text) > limit:
            raise APIError(422, f"{param} has {len(text)} characters, more than the {limit} this server accepts "
                           "(TTS_MAX_INPUT_CHARS); split it into several requests", "input_too_long", param)
        self._require_frontend()

    def _require_frontend(self) -> None:
        if not self.frontend.available:
            raise APIError(503, self.frontend.reason, "frontend_unavailable")

    def _features_cfg(self) -> FeatureConfig:
        return self.engine.voice.features

    def _map_error(self, exc: EngineError) -> APIError:
        return engine_error(exc, self.metrics, self.settings.retry_after_s)

    # -- responses -------------------------------------------------------------------
    async def _respond(self, endpoint: str, source: np.ndarray | AsyncIterable[np.ndarray], opts: OutputOptions,
                       t0: float, usage: dict[str, int]) -> Response:
        seed = opts.seed if opts.seed is not None else secrets.randbelow(2**31)
        sr = self.engine.voice.sample_rate
        max_samples = int(self.settings.max_audio_s * sr)
        try:
            audio = await self.engine.submit(SynthesisRequest(source, seed, max_samples))
        except EngineError as exc:
            raise self._map_error(exc) from exc
        except FrontendUnavailableError as exc:
            raise APIError(503, str(exc), "frontend_unavailable") from exc
        except ValueError as exc:
            raise APIError(422, str(exc), "invalid_input", "features" if endpoint == "vocode" else None) from exc
        headers = {
            "X-Sample-Rate": str(sr),
            "X-Seed": str(seed),
            "X-Accel-Buffering": "no",
            "Cache-Control": "no-store",
        }
        if opts.stream:
            media = MEDIA_TYPES["sse" if opts.stream_format == "sse" else opts.response_format]
            body = AudioBody(endpoint, audio, opts.response_format, opts.stream_format == "sse", sr, t0, usage,
                             self.metrics, self._map_error)
            return AudioResponse(body, media_type=media, headers=headers)
        pcm = await self._collect(endpoint, audio, t0)
        data = wav_file(pcm, sr) if opts.response_format == "wav" else pcm_bytes(pcm)
        self._completed(endpoint, t0, pcm.shape[0], sr)
        return Response(data, media_type=MEDIA_TYPES[opts.response_format], headers=headers)

    async def _collect(self, endpoint: str, audio: AudioStream, t0: float) -> np.ndarray:
        blocks: list[np.ndarray] = []
        try:
            async for block in audio:
                if not blocks:
                    self.metrics.time_to_first_audio.observe(time.perf_counter() - t0)
                blocks.append(block)
        except EngineError as exc:
            raise self._map_error(exc) from exc
        finally:
            await audio.aclose()
        return np.concatenate(blocks) if blocks else np.zeros(0, np.int16)

    def _completed(self, endpoint: str, t0: float, samples: int, sr: int) -> None:
        elapsed = time.perf_counter() - t0
        self.metrics.request_done(endpoint, 200, elapsed)
        if samples:
            self.metrics.audio_seconds.inc(samples / sr)
            self.metrics.real_time_factor.observe(elapsed / (samples / sr))
