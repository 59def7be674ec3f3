"""Streamed audio responses: the body that reads an engine stream, and what it records.

:class:`AudioBody` turns an :class:`~service.engine.protocol.AudioStream` into response bytes
(``pcm``, ``wav`` or ``sse``) and records the request's outcome exactly once:

- complete: ``tts_requests_total{status="200"}``, duration, real-time factor, audio seconds;
- cut short by the engine (deadline, worker failure): the mapped status (504, 503) and a
  rejection reason; an ``sse`` stream ends with an ``error`` event, an audio stream is
  aborted (truncated body) via :class:`~service.api.errors.StreamAbortedError`;
- the client went away (before or during the body): status 499 and
  ``tts_client_disconnects_total``; the stream is cancelled, so it leaves its batch at the
  next block boundary.

:class:`AudioResponse` guarantees the clean-up even when the body never started (a client
that disconnects before the first byte).
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable

from fastapi.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from service.api.errors import APIError, StreamAbortedError, error_body
from service.engine.protocol import AudioStream, EngineError
from service.metrics import Metrics
from service.streaming import AudioEncoder, AudioFormat, sse_delta, sse_done, sse_error

log = logging.getLogger(__name__)

#: Maps an engine error to the HTTP error the client would have had (and records the reason).
ErrorMapper = Callable[[EngineError], APIError]


class AudioBody:
    """The body of one streamed synthesis response.

    Args:
        endpoint: metric label.
        audio: the engine stream (int16 blocks).
        fmt: ``pcm`` or ``wav``.
        sse: wrap the bytes in server-sent events.
        sample_rate: Hz.
        t0: ``time.perf_counter()`` at the request's arrival.
        usage: extra fields of the final ``speech.audio.done`` event.
        metrics: where the outcome goes.
        map_error: engine error -> APIError (status, message, code).
    """

    def __init__(self, endpoint: str, audio: AudioStream, fmt: AudioFormat, sse: bool, sample_rate: int, t0: float,
                 usage: dict[str, int], metrics: Metrics, map_error: ErrorMapper) -> None:
        self.endpoint = endpoint
        self.audio = audio
        self.encoder = AudioEncoder(fmt, sample_rate)
        self.sse = sse
        self.sample_rate = sample_rate
        self.t0 = t0
        self.usage = usage
        self.metrics = metrics
        self.map_error = map_error
        self.samples = 0
        self._recorded = False

    def _record(self, status: int) -> None:
        if self._recorded:
            return
        self._recorded = True
        elapsed = time.perf_counter() - self.t0
        self.metrics.request_done(self.endpoint, status, elapsed)
        seconds = self.samples / self.sample_rate
        self.metrics.audio_seconds.inc(seconds)
        if status == 200 and self.samples:
            self.metrics.real_time_factor.observe(elapsed / seconds)

    def close(self) -> None:
        """The response is over (for whatever reason): count a disconnect if nothing else ended it."""
        if not self._recorded:
            self.metrics.client_disconnects.inc()
            self._record(499)
        self.audio.cancel()

    async def chunks(self) -> AsyncIterator[bytes]:
        """The response bytes, block by block."""
        head = self.encoder.start()
        try:
            if head and not self.sse:
                yield head
            async for block in self.audio:
                if self.samples == 0:
                    self.metrics.time_to_first_audio.observe(time.perf_counter() - self.t0)
                self.samples += block.shape[0]
                data = self.encoder.block(block)
                if self.sse:
                    yield sse_delta(head + data)
                    head = b""
                else:
                    yield data
            if self.sse:
                yield sse_done({**self.usage, "audio_samples": self.samples,
                                "audio_seconds": round(self.samples / self.sample_rate, 6), "seed": self.audio.seed})
            self._record(200)
        except EngineError as exc:
            err = self.map_error(exc)
            self._record(err.status_code)
            log.warning("%s stream cut short after %d samples: %s", self.endpoint, self.samples, exc)
            if not self.sse:
                raise StreamAbortedError(err.message) from exc  # the client sees a truncated body
            detail = error_body(err.status_code, err.message, err.code)["error"]
            yield sse_error(detail["message"], detail["type"], detail["code"])
        finally:
            self.close()


class AudioResponse(StreamingResponse):
    """A StreamingResponse over an :class:`AudioBody` that always closes it."""

    def __init__(self, body: AudioBody, media_type: str, headers: dict[str, str]) -> None:
        super().__init__(body.chunks(), media_type=media_type, headers=headers)
        self._body = body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._body.close()
