"""JSON request bodies, read once and checked before any model sees them.

A body must say it is JSON (415 otherwise, naming `content-type`: a body without one, or a
form, is what a browser may send across origins without asking, and what `curl -d` sends),
be UTF-8 (400 naming the byte), parse (422 `json_invalid`), and hold only text that is valid
Unicode: JSON may spell a lone UTF-16 surrogate (`"\\ud800"`), which no encoder can write
back, so one would break every answer that echoed or stored it (422 naming where it is).
"""

from __future__ import annotations

import email.message
import json
import re
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.requests import ClientDisconnect

from app.schemas.text import readable, unrenderable

Handler = Callable[[Request], Coroutine[Any, Any, Response]]

# In UTF-8 text a lone surrogate can only come from a JSON escape, so most bodies need no walk.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")

BODY_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"description": "The body is not UTF-8, or nests too deeply; `msg` says where."},
    413: {"description": "The body is larger than the setting `max_request_bytes`."},
    415: {"description": "The body is not sent as `content-type: application/json`."},
    422: {"description": "A field is invalid; `loc` names it, `msg` says why."},
}


class JSONBodyRoute(APIRoute):
    """An APIRoute that checks its JSON body (module docstring) before FastAPI reads it."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, endpoint, **kwargs)
        if self.body_field is not None:
            self.responses = {**BODY_RESPONSES, **self.responses}

    def get_route_handler(self) -> Handler:
        handler = super().get_route_handler()
        if self.body_field is None:
            return handler

        async def checked_first(request: Request) -> Response:
            try:
                checked = await checked_request(request)
            except ClientDisconnect:
                # Gone, or refused already by the body limit: nobody reads an answer.
                return Response(status_code=400)
            return await handler(checked)

        return checked_first


class _CheckedRequest(Request):
    """The request with its body already read and parsed, so FastAPI parses it no second time."""

    def __init__(self, request: Request, body: bytes, data: Any) -> None:
        super().__init__(request.scope, request.receive)
        self._checked_body = body
        self._checked_data = data

    async def body(self) -> bytes:
        return self._checked_body

    async def json(self) -> Any:
        return self._checked_data


async def checked_request(request: Request) -> Request:
    body = await request.body()
    if not body:
        return request  # FastAPI reports the missing body
    _require_json(request.headers.get("content-type"))
    text = _utf8(body)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        # FastAPI's own shape for this error.
        error = {
            "type": "json_invalid",
            "loc": ("body", exc.pos),
            "msg": "JSON decode error",
            "input": {},
            "ctx": {"error": exc.msg},
        }
        raise RequestValidationError([error]) from None
    except RecursionError:
        raise _bad_body("the body nests too deeply") from None
    if _SURROGATE_ESCAPE.search(text):
        errors = list(unrenderable(data))
        if errors:
            raise RequestValidationError(errors)
    return _CheckedRequest(request, body, data)


def _require_json(content_type: str | None) -> None:
    if content_type:
        message = email.message.Message()
        message["content-type"] = content_type
        subtype = message.get_content_subtype()
        if message.get_content_maintype() == "application" and (
            subtype == "json" or subtype.endswith("+json")
        ):
            return
    got = readable(content_type.split(";")[0].strip(), 100) if content_type else "none"
    error = {
        "type": "content_type",
        "loc": ("header", "content-type"),
        "msg": f"the body must be sent as content-type: application/json (got {got})",
    }
    raise HTTPException(status_code=415, detail=[error])


def _utf8(body: bytes) -> str:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        reason = f"the body must be UTF-8 JSON: {exc.reason} at byte {exc.start}"
        raise _bad_body(reason) from None
    return text.removeprefix("\ufeff")  # a byte-order mark is allowed (RFC 8259, 8.1)


def _bad_body(msg: str) -> HTTPException:
    return HTTPException(status_code=400, detail=[{"type": "body", "loc": ("body",), "msg": msg}])
