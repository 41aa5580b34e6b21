"""Every error leaves the API as JSON that says what and why; engine errors map here.

Rendering an error must not fail and must stay small whatever the request held: what an error
echoes is made plain JSON (text that is not valid Unicode shown escaped, inf/NaN as strings,
anything else as its text) and cut to a few hundred characters, saying so.
"""

from __future__ import annotations

import json
import logging
import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.routing import Match

from app.engine.dispatcher import Overloaded, ShuttingDown
from app.schemas.text import TEXT_CHARS, readable
from app.store.base import JobNotFound, StoreBusy, StoreUnavailable

log = logging.getLogger("urlhealth.api")

# Characters of a request's value an error shows; longer ones are cut, and say so.
ECHO_CHARS = 256


def plain(value: Any, limit: int = TEXT_CHARS) -> Any:
    """`value` as JSON that always encodes."""
    if isinstance(value, str):
        return readable(value, limit)
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        # JSON has no inf/NaN, yet `1e400` parses as inf.
        return value if math.isfinite(value) else str(value)
    if isinstance(value, dict):
        return {readable(str(key), limit): plain(item, limit) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [plain(item, limit) for item in value]
    return readable(str(value), limit)


def echo(value: Any) -> tuple[Any, int | None]:
    """What an error shows of a request's value, and the value's full length if it was cut."""
    if isinstance(value, str):
        if len(value) <= ECHO_CHARS:
            return readable(value), None
        return readable(value[:ECHO_CHARS]) + "…", len(value)
    shown = plain(value)
    text = json.dumps(shown, ensure_ascii=False)
    if len(text) <= ECHO_CHARS:
        return shown, None
    return text[:ECHO_CHARS] + "…", len(text)


def error_item(error: Any) -> Any:
    """One entry of a `detail` list: `loc`, `msg`, `type` kept, `input` echoed and cut."""
    if not isinstance(error, dict):
        return plain(error)
    item = {key: plain(value) for key, value in error.items() if key not in ("input", "url")}
    if "input" in error:
        item["input"], cut = echo(error["input"])
        if cut is not None:
            item["input_cut"] = {"length": cut}
    return item


def error_response(
    status_code: int, detail: Any, headers: dict[str, str] | None = None
) -> JSONResponse:
    """A JSON error response that renders whatever `detail` holds."""
    try:
        shown = [error_item(e) for e in detail] if isinstance(detail, list) else plain(detail)
        return JSONResponse({"detail": shown}, status_code=status_code, headers=headers)
    except Exception:  # an error about an error: say that much, never fail
        log.exception("could not render a %d error", status_code)
        return JSONResponse({"detail": "error"}, status_code=status_code, headers=headers)


# The methods a 405's Allow header can list: those HTTP defines for resources.
_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at this path: Starlette's 405 names only the first
    route's, though GET and DELETE of one path are two routes. Asked of each route by the
    one question every route answers, `matches`."""
    allowed = []
    for method in _METHODS:
        scope = {**request.scope, "method": method}
        if any(route.matches(scope)[0] is Match.FULL for route in request.app.router.routes):
            allowed.append(method)
    return allowed


def install(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(422, list(exc.errors()))

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = ", ".join(allowed_methods(request))
        return error_response(exc.status_code, exc.detail, headers)

    @app.exception_handler(JobNotFound)
    async def _not_found(request: Request, exc: JobNotFound) -> JSONResponse:
        return error_response(404, f"no job with id {exc.args[0]!r}")

    @app.exception_handler(ShuttingDown)
    async def _stopping(request: Request, exc: ShuttingDown) -> JSONResponse:
        return error_response(503, str(exc), {"Retry-After": "5"})

    @app.exception_handler(Overloaded)
    async def _overloaded(request: Request, exc: Overloaded) -> JSONResponse:
        return error_response(
            429,
            f"too many checks in progress: {exc}",
            {"Retry-After": str(exc.retry_after_s)},
        )

    @app.exception_handler(StoreBusy)
    async def _store_busy(request: Request, exc: StoreBusy) -> JSONResponse:
        return error_response(429, str(exc), {"Retry-After": "1"})

    @app.exception_handler(StoreUnavailable)
    async def _store_away(request: Request, exc: StoreUnavailable) -> JSONResponse:
        return error_response(503, str(exc), {"Retry-After": "5"})

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, readable(request.url.path))
        return error_response(500, f"internal error: {type(exc).__name__}")
