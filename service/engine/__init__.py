"""The synthesis engine: admission queue, continuous-batching scheduler, device workers.

The HTTP layer uses :class:`~service.engine.protocol.EngineClient` only.
"""

from service.engine.engine import Engine, EngineConfig
from service.engine.protocol import (
    AudioStream,
    DeadlineExceededError,
    EngineClient,
    EngineError,
    EngineNotReadyError,
    EngineObserver,
    EngineStats,
    InputUnavailableError,
    QueueFullError,
    SynthesisRequest,
    VoiceInfo,
    WorkerFailedError,
    WorkerStats,
)

__all__ = [
    "AudioStream",
    "DeadlineExceededError",
    "Engine",
    "EngineClient",
    "EngineConfig",
    "EngineError",
    "EngineNotReadyError",
    "EngineObserver",
    "EngineStats",
    "InputUnavailableError",
    "QueueFullError",
    "SynthesisRequest",
    "VoiceInfo",
    "WorkerFailedError",
    "WorkerStats",
]
