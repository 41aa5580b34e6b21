"""NDJSON streaming of a job's results as they finish, woken by the store, not by polling."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from fastapi.responses import StreamingResponse

from app.store.base import JobNotFound, ResultsStore
from app.store.views import end_line

# Results per write: large backlogs go out in pieces, so other requests are served between.
_CHUNK = 500


class NDJSONResponse(StreamingResponse):
    media_type = "application/x-ndjson"


class _Wakeup:
    """Called from worker threads; wakes one waiting coroutine, coalescing bursts into one
    loop callback instead of one per result."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._event = asyncio.Event()
        self._scheduled = False

    def __call__(self) -> None:
        if not self._scheduled:
            self._scheduled = True
            # RuntimeError: the loop has closed, so nobody is waiting any more.
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._set)

    def _set(self) -> None:
        self._scheduled = False
        self._event.set()

    async def wait(self) -> None:
        await self._event.wait()
        self._event.clear()


def open_stream(store: ResultsStore, job_id: str) -> AsyncIterator[bytes]:
    """Subscribe now (raising JobNotFound before any byte is sent), then stream: first what
    already finished, then each result as it is recorded, then one `end` line."""
    wakeup = _Wakeup(asyncio.get_running_loop())
    unsubscribe = store.subscribe(job_id, wakeup)

    async def lines() -> AsyncIterator[bytes]:
        sent = 0
        try:
            while True:
                try:
                    # The header only once the job is final: no model per wake-up.
                    results, final_header = store.results_since_json(job_id, sent)
                except JobNotFound:
                    return  # expired while streaming: nothing more will come
                if results:
                    sent += len(results)
                    # Stored as JSON already: joining bytes is all the event loop does.
                    for start in range(0, len(results), _CHUNK):
                        yield b"".join(
                            b'{"type":"result","result":' + data + b"}\n"
                            for data in results[start : start + _CHUNK]
                        )
                if final_header is not None:
                    yield end_line(final_header)
                    return
                await wakeup.wait()
        finally:
            unsubscribe()

    return lines()
