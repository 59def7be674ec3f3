"""Body parsing the routes cannot leave to FastAPI: content-type checks and .npy features.

- JSON endpoints use :class:`JSONBodyRoute`, which answers 415 before FastAPI tries to
  parse a body sent with another content type.
- ``/v1/vocode`` takes either an ``.npy`` file (``application/octet-stream`` or
  ``application/x-npy``, options in the query string) or JSON (:class:`VocodeRequest`,
  whose fields override the query options).
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable, Coroutine
from typing import Any

import numpy as np
from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import ValidationError

from service.api.errors import APIError
from service.api.schemas import OutputOptions, VocodeRequest

NPY_TYPES = ("application/octet-stream", "application/x-npy")
JSON_TYPE = "application/json"


def media_type(request: Request) -> str:
    """The request's media type, lower case, without parameters (``""`` if absent)."""
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def _is_json(mt: str) -> bool:
    return mt == JSON_TYPE or (mt.startswith("application/") and mt.endswith("+json"))


class JSONBodyRoute(APIRoute):
    """An APIRoute whose POST bodies must be JSON (else 415, before any parsing)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def checked(request: Request) -> Response:
            if request.method == "POST" and not _is_json(media_type(request)):
                got = media_type(request) or "none"
                raise APIError(415, f"Content-Type must be {JSON_TYPE} (got {got})", "unsupported_media_type")
            return await handler(request)

        return checked


def parse_npy(body: bytes) -> np.ndarray:
    """An ``.npy`` file's array (no pickles)."""
    if not body:
        raise APIError(422, "the request body is empty; send a .npy file of shape (frames, n_mels)",
                       "invalid_input", "features")
    try:
        arr = np.load(io.BytesIO(body), allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise APIError(400, f"the body is not a readable .npy array ({exc}); save it with numpy.save",
                       "invalid_npy", "features") from exc
    if not isinstance(arr, np.ndarray):
        raise APIError(400, "the body holds an .npz archive, not one .npy array", "invalid_npy", "features")
    return arr


async def read_vocode_body(request: Request, query: OutputOptions) -> tuple[np.ndarray, OutputOptions]:
    """Features (as sent, not validated) and the output options of a ``/v1/vocode`` request."""
    mt = media_type(request)
    if mt in NPY_TYPES:
        return parse_npy(await request.body()), query
    if _is_json(mt):
        body = await request.body()
        try:
            # a large JSON body takes a while to parse: keep it off the event loop
            parsed = await asyncio.to_thread(VocodeRequest.model_validate_json, body)
            fields = parsed.model_dump(exclude_unset=True, exclude={"features"})
            options = OutputOptions.model_validate({**query.model_dump(), **fields})
        except ValidationError as exc:
            raise RequestValidationError(
                [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
            ) from exc
        try:
            # float64 keeps the values as sent; validation converts to float32 and checks the range
            features = np.asarray(parsed.features, dtype=np.float64)
        except ValueError as exc:
            raise APIError(422, "features must be a rectangular list of frames, each with n_mels numbers "
                           f"({exc})", "invalid_input", "features") from exc
        return features, options
    got = mt or "none"
    raise APIError(415, f"Content-Type must be application/octet-stream or application/x-npy (a .npy body) or "
                   f"{JSON_TYPE} (got {got})", "unsupported_media_type")
