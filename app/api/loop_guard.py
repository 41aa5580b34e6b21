"""Keeps the API answering while the pool is saturated: samples the event loop's lag and lets
the concurrency limiter set how many checks may run at once."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from starlette.types import ASGIApp, Receive, Scope, Send

from app.engine.dispatcher import Dispatcher
from app.engine.limiter import ConcurrencyLimiter

log = logging.getLogger("urlhealth.api")

PERIOD_S = 0.05
# The API counts as busy this long after a request arrived.
BUSY_FOR_S = 1.0


class RequestCounter:
    """Counts HTTP requests as they arrive (an ASGI middleware), so the guard knows whether
    anyone is waiting for answers: lag matters most then."""

    def __init__(self, app: ASGIApp, counts: list[int]) -> None:
        self.app = app
        self.counts = counts  # one cell, shared with the guard

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.counts[0] += 1
        await self.app(scope, receive, send)


async def guard_loop(
    dispatcher: Dispatcher, limiter: ConcurrencyLimiter, requests: list[int] | None = None
) -> None:
    """Runs until cancelled. A sleep that ends late measures how long a request would wait
    for the loop; most of that is waiting for the GIL behind running checks. `requests` is
    RequestCounter's cell: while requests arrive, the limiter keeps the lag lower."""
    loop = asyncio.get_running_loop()
    applied = limiter.limit
    seen, last_request = 0, -BUSY_FOR_S
    while True:
        started = loop.time()
        await asyncio.sleep(PERIOD_S)
        now = loop.time()
        lag = now - started - PERIOD_S
        if requests is not None and requests[0] != seen:
            seen, last_request = requests[0], now
        running, waiting = dispatcher.load()
        limit = limiter.observe(lag, running, waiting, busy=now - last_request < BUSY_FOR_S)
        if limit != applied:
            dispatcher.set_limit(limit)
            applied = limit


async def stop_guard(task: asyncio.Task[None]) -> None:
    """Cancel a background task of the lifespan and wait for it to end."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
