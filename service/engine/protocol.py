"""The contract between the HTTP layer and the synthesis engine.

The HTTP layer depends on :class:`EngineClient` and the types here, nothing else: routes
build a :class:`SynthesisRequest`, ``await engine.submit(request)`` and iterate the returned
:class:`AudioStream` of int16 PCM blocks. The engine reports what happens inside it (queue,
batches, workers) through an :class:`EngineObserver`, which the service implements with
Prometheus metrics; the engine itself knows nothing of HTTP or Prometheus.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from models.config import FeatureConfig

# -- errors ------------------------------------------------------------------------


class EngineError(Exception):
    """Base of the errors the engine raises to its callers."""


class QueueFullError(EngineError):
    """The admission queue is full; retry later (HTTP 429)."""


class EngineNotReadyError(EngineError):
    """The voice is not loaded and warmed yet, or the engine is shutting down (HTTP 503)."""


class DeadlineExceededError(EngineError):
    """The request ran past its deadline (``request_timeout_s``) and was dropped."""


class WorkerFailedError(EngineError):
    """The device worker running this stream failed (the worker is being restarted)."""


class InputUnavailableError(EngineError):
    """The stream's feature source failed after the response had started (e.g. a later sentence)."""


# -- requests and streams -----------------------------------------------------------


@dataclass
class SynthesisRequest:
    """One utterance to synthesise.

    Attributes:
        features: log-mel frames (T, n_mels) float32 in the voice's feature recipe, or an
            async iterable of such chunks (one per sentence) that the engine consumes while
            earlier chunks are generated; chunks are vocoded back to back, the sampler state
            carrying over.
        seed: seed of the stream's uniform draws: the same request with the same seed gives
            the same samples whatever else is in the batch.
        max_samples: refuse features longer than this many samples (None: no limit).
    """

    features: np.ndarray | AsyncIterable[np.ndarray]
    seed: int
    max_samples: int | None = None


class AudioStream(Protocol):
    """Async iterator of int16 PCM blocks (n,) at the voice's sample rate.

    Ends normally after the last sample; raises :class:`EngineError` subclasses (deadline,
    worker failure, input failure) if the stream is cut short. ``cancel()`` (or leaving the
    iteration early and calling ``aclose()``) takes the stream out of its batch at the next
    block boundary.
    """

    seed: int

    def __aiter__(self) -> AsyncIterator[np.ndarray]: ...

    async def __anext__(self) -> np.ndarray: ...

    def cancel(self) -> None: ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True)
class VoiceInfo:
    """What clients may know about the served voice: its name, feature recipe and card."""

    name: str
    trained: bool
    features: FeatureConfig
    hidden_size: int
    card: dict[str, Any] = field(default_factory=dict)

    @property
    def sample_rate(self) -> int:
        return self.features.sample_rate

    @property
    def n_mels(self) -> int:
        return self.features.n_mels

    @property
    def hop_length(self) -> int:
        return self.features.hop_length


@dataclass(frozen=True)
class WorkerStats:
    """One device worker: its label (``cpu:0``, ``cuda:1``), liveness and restarts so far."""

    name: str
    up: bool
    restarts: int
    active_streams: int


@dataclass(frozen=True)
class EngineStats:
    """A snapshot of the engine (cheap; safe to call from the event loop)."""

    ready: bool
    queue_depth: int
    active_streams: int
    workers: tuple[WorkerStats, ...]


@runtime_checkable
class EngineClient(Protocol):
    """What the HTTP layer needs from an engine.

    Called on the event loop; nothing here blocks it (sampler calls run in worker threads,
    feature conditioning in a thread pool).
    """

    async def start(self) -> None:
        """Load the voice and start the workers (warm-up continues in the background)."""
        ...

    async def shutdown(self, drain_timeout_s: float) -> None:
        """Stop admitting, let streams in flight finish for up to ``drain_timeout_s``, stop workers."""
        ...

    def is_ready(self) -> bool:
        """True once the voice is loaded and at least one worker has generated a warm-up block."""
        ...

    @property
    def voice(self) -> VoiceInfo:
        """The served voice (valid after :meth:`start`)."""
        ...

    async def submit(self, request: SynthesisRequest) -> AudioStream:
        """Admit a request and return its audio stream.

        Raises (before any audio, so the caller can answer with a status code):
            QueueFullError: admission queue full.
            EngineNotReadyError: not ready or shutting down.
            ValueError: invalid features (bad shape, NaN/inf, too long), with a fix-it message.
        """
        ...

    def stats(self) -> EngineStats:
        """Queue depth, active streams and per-worker state."""
        ...


class EngineObserver(Protocol):
    """Events the engine reports (the service turns them into metrics). Called from any thread."""

    def queue_depth(self, depth: int) -> None:
        """Requests now waiting for a batch slot."""

    def active_streams(self, count: int) -> None:
        """Streams now in some worker's batch."""

    def admitted(self, wait_s: float) -> None:
        """A stream joined a batch after waiting ``wait_s`` seconds in the queue."""

    def batch(self, size: int) -> None:
        """One sampler call advanced ``size`` streams by one block."""

    def worker_up(self, worker: str, up: bool) -> None:
        """Worker ``worker`` became (un)able to serve."""

    def worker_restarted(self, worker: str) -> None:
        """Worker ``worker`` failed and is being restarted."""


class NullObserver:
    """An :class:`EngineObserver` that ignores everything."""

    def queue_depth(self, depth: int) -> None:
        pass

    def active_streams(self, count: int) -> None:
        pass

    def admitted(self, wait_s: float) -> None:
        pass

    def batch(self, size: int) -> None:
        pass

    def worker_up(self, worker: str, up: bool) -> None:
        pass

    def worker_restarted(self, worker: str) -> None:
        pass
