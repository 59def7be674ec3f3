"""Request-level guards (pure ASGI middleware): arrival time stamp, body-size limit, stream aborts.

A body whose ``Content-Length`` exceeds ``max_body_bytes`` is answered 413 before it is read;
a chunked body is counted as it arrives and stopped with 413 when it crosses the limit.
A streaming body that raises :class:`StreamAbortedError` (an error after the 200 was sent,
already logged and counted) returns here without its final chunk: the server closes the
connection, and the client sees a truncated body instead of a clean end.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.api.errors import APIError, StreamAbortedError, error_response


class BodyTooLargeError(APIError):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is larger than the {limit} bytes this server accepts "
                         "(TTS_MAX_BODY_BYTES); send less data per request", "body_too_large")


class RequestLimitMiddleware:
    """Stamps ``scope["state"]["t0"]`` (``time.perf_counter()``) and enforces the body limit.

    Args:
        app: the wrapped ASGI app.
        max_body_bytes: largest accepted body.
        on_reject: called with (path, status, seconds) when a body is refused before routing.
    """

    def __init__(self, app: ASGIApp, max_body_bytes: int, on_reject: Callable[[str, int, float], None]) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.on_reject = on_reject

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        scope.setdefault("state", {})["t0"] = t0
        length = Headers(scope=scope).get("content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body_bytes:
            err = BodyTooLargeError(self.max_body_bytes)
            await error_response(413, err.message, err.code)(scope, receive, send)
            self.on_reject(scope.get("path", ""), 413, time.perf_counter() - t0)
            return
        received = 0
        limit = self.max_body_bytes

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLargeError(limit)
            return message

        with contextlib.suppress(StreamAbortedError):  # started response left incomplete: the connection aborts
            await self.app(scope, limited_receive, send)
