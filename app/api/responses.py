"""Responses of JSON already encoded (by the store, or by one model_dump_json), sent as they
are: FastAPI would validate and encode a returned model again, on the event loop."""

from __future__ import annotations

from fastapi import Response


class JSONBytes(Response):
    media_type = "application/json"
