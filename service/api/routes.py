"""HTTP routes: each one parses, makes one call, and answers.

Everything the routes need hangs off ``request.app.state`` (built by
:func:`service.app.create_app`): the :class:`~service.api.synthesis.SynthesisService`, the
engine (an :class:`~service.engine.protocol.EngineClient`), the frontend and the metrics.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse

from service.api.bodies import JSONBodyRoute, read_vocode_body
from service.api.errors import arrival_time
from service.api.schemas import ErrorResponse, ModelCard, ModelList, OutputOptions, SpeechRequest, SynthesizeRequest
from service.api.synthesis import MODEL_ALIASES, SynthesisService
from service.engine.protocol import EngineClient
from service.metrics import CONTENT_TYPE

_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse} for code in (400, 404, 413, 415, 422, 429, 503)
}
_AUDIO: dict[int | str, dict[str, Any]] = {
    200: {"content": {"audio/wav": {}, "audio/pcm": {}, "text/event-stream": {}},
          "description": "Audio (streamed unless `stream` is false)."},
    **_ERRORS,
}

synthesis_router = APIRouter(route_class=JSONBodyRoute, tags=["synthesis"])
router = APIRouter()


def _service(request: Request) -> SynthesisService:
    svc: SynthesisService = request.app.state.synthesis
    return svc


def _engine(request: Request) -> EngineClient:
    engine: EngineClient = request.app.state.engine
    return engine


@synthesis_router.post("/v1/audio/speech", response_class=Response, responses=_AUDIO)
async def speech(body: SpeechRequest, request: Request) -> Response:
    """OpenAI-compatible text to speech."""
    return await _service(request).speech(body, arrival_time(request))


@synthesis_router.post("/v1/synthesize", response_class=Response, responses=_AUDIO)
async def synthesize(body: SynthesizeRequest, request: Request) -> Response:
    """Text, or phonemes with optional durations and pitch, to speech."""
    return await _service(request).synthesize(body, arrival_time(request))


@router.post("/v1/vocode", response_class=Response, responses=_AUDIO, tags=["synthesis"])
async def vocode(request: Request, options: Annotated[OutputOptions, Query()]) -> Response:
    """Log-mel features (.npy body, or JSON ``{"features": [[...]]}``) to audio."""
    features, opts = await read_vocode_body(request, options)
    return await _service(request).vocode(features, opts, arrival_time(request))


@router.get("/v1/models", response_model=ModelList, tags=["info"])
async def models(request: Request) -> ModelList:
    """The served voice (``trained: false`` marks an untrained, noise-making voice)."""
    v = _engine(request).voice
    card = ModelCard(id=v.name, trained=v.trained, sample_rate=v.sample_rate, n_mels=v.n_mels,
                     hop_length=v.hop_length, hidden_size=v.hidden_size, aliases=list(MODEL_ALIASES),
                     description=str(v.card.get("description", "")), card=v.card)
    return ModelList(data=[card])


@router.get("/health", tags=["ops"])
async def health() -> dict[str, str]:
    """Liveness: the process answers."""
    return {"status": "ok"}


@router.get("/ready", tags=["ops"], responses={503: {"description": "Not ready yet (or shutting down)."}})
async def ready(request: Request) -> JSONResponse:
    """Readiness: 200 once the voice is loaded and a worker has generated its warm-up block."""
    engine = _engine(request)
    stats = engine.stats()
    body = {
        "status": "ready" if stats.ready else "not_ready",
        "text_frontend": request.app.state.frontend.available,
        "workers": [{"name": w.name, "up": w.up, "restarts": w.restarts} for w in stats.workers],
    }
    return JSONResponse(body, status_code=200 if stats.ready else 503)


@router.get("/metrics", tags=["ops"], response_class=Response)
async def metrics(request: Request) -> Response:
    """Prometheus text exposition of this app's registry."""
    return Response(request.app.state.metrics.render(), media_type=CONTENT_TYPE)
