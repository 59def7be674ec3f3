"""The FastAPI application: ``create_app(settings, engine=None)``.

Everything is built here from the settings and hung on ``app.state`` (no module-level
singletons): a fresh Prometheus registry, the engine (unless one is passed in), the text
frontend and the synthesis service. The lifespan starts the engine (voice load; the workers
warm up in the background, and ``/ready`` answers 503 until one has), starts Festival once
if it is available, and on shutdown drains the streams in flight.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

from fastapi import FastAPI

from service.api.errors import ENDPOINT_PATHS, install_error_handlers
from service.api.limits import RequestLimitMiddleware
from service.api.routes import router, synthesis_router
from service.api.synthesis import SynthesisService
from service.engine.engine import Engine, EngineConfig
from service.engine.protocol import EngineClient
from service.frontend import TextFrontend
from service.metrics import Metrics
from service.settings import Settings
from service.voices import resolve_voice

log = logging.getLogger(__name__)

VERSION = "0.1.0"


def engine_config(settings: Settings) -> EngineConfig:
    """The engine's share of the settings."""
    return EngineConfig(
        device=settings.device,
        workers=settings.workers,
        sampler=settings.sampler,
        max_batch=settings.max_batch,
        block_samples=settings.block_samples,
        queue_size=settings.queue_size,
        request_timeout_s=settings.request_timeout_s,
        torch_threads=settings.torch_threads,
        max_unread_s=settings.max_unread_s,
    )


def create_app(
    settings: Settings,
    engine: EngineClient | None = None,
    frontend: TextFrontend | None = None,
    metrics: Metrics | None = None,
) -> FastAPI:
    """Build the service.

    Args:
        settings: built once by the caller.
        engine: an engine to serve with (default: an :class:`Engine` over ``settings.voice``,
            reporting to ``metrics``); it is started and shut down by the app's lifespan.
        frontend: the text frontend (default: Festival per the settings).
        metrics: the app's metrics (default: a fresh registry).
    """
    metrics = metrics or Metrics()
    voice = partial(resolve_voice, settings.voice, settings.temperature, settings.postfilter_db, settings.pitch_sync,
                    settings.comb_gain)
    engine = engine or Engine(engine_config(settings), voice, observer=metrics)
    frontend = frontend or TextFrontend(settings.frontend_processes, settings.frontend)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await engine.start()
        await asyncio.to_thread(frontend.start)
        try:
            yield
        finally:
            log.info("shutting down: draining streams for up to %.0f s", settings.drain_timeout_s)
            await engine.shutdown(settings.drain_timeout_s)
            frontend.close()

    app = FastAPI(title="wavernn-tts", version=VERSION, lifespan=lifespan,
                  description="Streaming WaveRNN text-to-speech (24 kHz, 16-bit mono).")
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.engine = engine
    app.state.frontend = frontend
    app.state.synthesis = SynthesisService(settings, engine, frontend, metrics)

    def on_reject(path: str, status: int, seconds: float) -> None:
        endpoint = ENDPOINT_PATHS.get(path)
        if endpoint is not None:
            metrics.request_done(endpoint, status, seconds)

    app.add_middleware(RequestLimitMiddleware, max_body_bytes=settings.max_body_bytes, on_reject=on_reject)
    install_error_handlers(app)
    app.include_router(synthesis_router)
    app.include_router(router)
    return app
