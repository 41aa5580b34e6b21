"""Keeps the API answering while the pool is saturated: samples the event loop's lag and lets
the concurrency limiter set how many checks may run at once."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from app.engine.dispatcher import Dispatcher
from app.engine.limiter import ConcurrencyLimiter

log = logging.getLogger("urlhealth.api")

PERIOD_S = 0.05


async def guard_loop(dispatcher: Dispatcher, limiter: ConcurrencyLimiter) -> None:
    """Runs until cancelled. A sleep that ends late measures how long a request would wait
    for the loop; most of that is waiting for the GIL behind running checks."""
    loop = asyncio.get_running_loop()
    applied = limiter.limit
    while True:
        started = loop.time()
        await asyncio.sleep(PERIOD_S)
        lag = loop.time() - started - PERIOD_S
        running, waiting = dispatcher.load()
        limit = limiter.observe(lag, running, waiting)
        if limit != applied:
            dispatcher.set_limit(limit)
            applied = limit


async def stop_guard(task: asyncio.Task[None]) -> None:
    """Cancel a background task of the lifespan and wait for it to end."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
