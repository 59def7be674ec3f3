"""JSON errors, OpenAI style: ``{"error": {"message", "type", "code", "param"}}``.

Every error the service answers goes through here: bad input is 4xx with a message saying
what to fix (never 500), a full queue is 429 and an unready server 503, both with
``Retry-After``; anything unexpected is a JSON 500 (and a logged traceback). Synthesis
requests that end here are counted in ``tts_requests_total{endpoint,status}``.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)

#: Paths of the synthesis endpoints -> their ``endpoint`` metric label.
ENDPOINT_PATHS = {"/v1/audio/speech": "speech", "/v1/synthesize": "synthesize", "/v1/vocode": "vocode"}

_TYPES = {
    400: "invalid_request_error", 404: "invalid_request_error", 405: "invalid_request_error",
    413: "invalid_request_error", 415: "invalid_request_error", 422: "invalid_request_error",
    429: "rate_limit_error", 500: "server_error", 503: "service_unavailable", 504: "timeout_error",
}
_CODES = {404: "not_found", 405: "method_not_allowed", 413: "body_too_large", 415: "unsupported_media_type"}


class APIError(StarletteHTTPException):
    """An error answered as JSON.

    Subclasses Starlette's HTTPException so that it also passes through FastAPI's body
    reading (the body-size limit raises it from ``receive``).

    Args:
        status: HTTP status code.
        message: what went wrong and how to fix it.
        code: short machine-readable reason (``queue_full``, ``invalid_features``, ...).
        param: the request field at fault, if any.
        headers: extra response headers (``Retry-After``).
    """

    def __init__(
        self, status: int, message: str, code: str, param: str | None = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(status_code=status, detail=message, headers=headers)
        self.message = message
        self.code = code
        self.param = param


class StreamAbortedError(Exception):
    """Raised inside a streaming body to abort the connection after an error (already counted)."""


def error_body(status: int, message: str, code: str, param: str | None = None) -> dict[str, Any]:
    """The JSON error document."""
    return {"error": {"message": message, "type": _TYPES.get(status, "invalid_request_error"),
                      "code": code, "param": param}}


def error_response(
    status: int, message: str, code: str, param: str | None = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(error_body(status, message, code, param), status_code=status, headers=headers)


def arrival_time(request: Request) -> float:
    """``time.perf_counter()`` when the request arrived (stamped by the limits middleware)."""
    t0 = request.scope.get("state", {}).get("t0")
    return float(t0) if t0 is not None else time.perf_counter()


def _count(request: Request, status: int) -> None:
    endpoint = ENDPOINT_PATHS.get(request.url.path)
    metrics = getattr(request.app.state, "metrics", None)
    if endpoint is not None and metrics is not None:
        metrics.request_done(endpoint, status, time.perf_counter() - arrival_time(request))


def _validation_message(errors: list[Any]) -> tuple[int, str, str, str | None]:
    """(status, message, code, param) for FastAPI/pydantic validation errors."""
    for err in errors:
        if err.get("type") == "json_invalid":
            ctx = err.get("ctx") or {}
            where = [p for p in err.get("loc", ()) if isinstance(p, int)]
            at = f" at position {where[0]}" if where else ""
            detail = ctx.get("error") or err.get("msg", "parse error")
            return 400, f"the request body is not valid JSON ({detail}{at})", "invalid_json", None
    first = errors[0] if errors else {"loc": (), "msg": "invalid request", "type": "invalid_value"}
    loc = [str(p) for p in first.get("loc", ()) if p not in ("body", "query")]
    param = ".".join(loc) or None
    msg = str(first.get("msg", "invalid value"))
    if first.get("type") == "missing" and not loc:
        msg = "a JSON request body is required"
    text = f"{param}: {msg}" if param else msg
    if len(errors) > 1:
        text += f" (and {len(errors) - 1} more error{'s' if len(errors) > 2 else ''})"
    return 422, text, str(first.get("type", "invalid_value")), param


async def _on_api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if isinstance(exc, APIError):
        status, message, code, param = exc.status_code, exc.message, exc.code, exc.param
    else:
        status, message = exc.status_code, str(exc.detail)
        code, param = _CODES.get(status, "http_error"), None
    _count(request, status)
    return error_response(status, message, code, param, headers=dict(exc.headers) if exc.headers else None)


async def _on_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    status, message, code, param = _validation_message(list(exc.errors()))
    _count(request, status)
    return error_response(status, message, code, param)


async def _on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, StreamAbortedError):
        log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        _count(request, 500)
    return error_response(500, f"internal server error ({type(exc).__name__}); see the server log", "internal_error")


def install_error_handlers(app: FastAPI) -> None:
    """Route every error of ``app`` to the JSON format."""
    app.add_exception_handler(StarletteHTTPException, _on_api_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(Exception, _on_unexpected)
