"""Answering with a worker's reply, on an API-only replica: the call runs on a worker
(app/cluster/calls.py) and its reply is this replica's answer, errors included."""

from __future__ import annotations

from typing import Any

import anyio
from fastapi import HTTPException, Response

from app.cluster.calls import Calls, NoAnswer

# The 503 of a route that may run on a worker, in the API's documentation.
UNAVAILABLE: dict[int | str, dict[str, Any]] = {
    503: {
        "description": "The service is shutting down, or (on an API-only replica) no worker "
        "replica answered in time; `detail` says which."
    }
}


async def on_a_worker(
    calls: Calls, kind: str, arguments: dict[str, Any], wait_s: float
) -> Response:
    """The worker's reply to a call of `kind`, waited for `wait_s` (and a margin) on a
    thread, not the event loop; 503 when no worker answered in time."""
    try:
        reply = await anyio.to_thread.run_sync(calls.call, kind, arguments, wait_s)
    except NoAnswer as exc:
        raise HTTPException(503, str(exc), {"Retry-After": "5"}) from None
    if reply.refused:
        raise HTTPException(reply.status, reply.detail, dict(reply.headers) or None)
    return Response(
        reply.body, reply.status, headers=dict(reply.headers), media_type=reply.media_type
    )
