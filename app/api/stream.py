"""NDJSON streaming of a job's results as they finish, woken by the store, not by polling."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator

import anyio
from fastapi.responses import StreamingResponse

from app.store.base import JobNotFound, ResultsStore
from app.store.views import end_line

# Results per write: large backlogs go out in pieces, so other requests are served between.
_CHUNK = 500
# At most one write of results per stream in this time (the first goes out at once): under
# load a stream sends batches, 20 a second at most, whatever the rate of results.
_MIN_INTERVAL_S = 0.05


class NDJSONResponse(StreamingResponse):
    media_type = "application/x-ndjson"


class _Wakeup:
    """Called by the store from worker threads; wakes the stream's coroutine. Armed by the
    stream before it reads the store, disarmed by the first call after that: however many
    results are recorded before the stream reads again, it costs one loop callback (the read
    sees them all). Arming before the read means a result recorded between the read and the
    wait still wakes it."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._event = asyncio.Event()
        self._armed = False

    def arm(self) -> None:
        self._armed = True

    def __call__(self) -> None:
        # Two threads may both see it armed: then the event is set twice, which is harmless.
        if self._armed:
            self._armed = False
            # RuntimeError: the loop has closed, so nobody is waiting any more.
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._event.set)

    async def wait(self) -> None:
        await self._event.wait()
        self._event.clear()


def open_stream(store: ResultsStore, job_id: str) -> AsyncIterator[bytes]:
    """Subscribe now (raising JobNotFound before any byte is sent), then stream: first what
    already finished, then each result as it is recorded, then one `end` line."""
    wakeup = _Wakeup(asyncio.get_running_loop())
    unsubscribe = store.subscribe(job_id, wakeup)

    async def lines() -> AsyncIterator[bytes]:
        loop = asyncio.get_running_loop()
        next_start = 0
        wrote_at = -_MIN_INTERVAL_S
        try:
            while True:
                wakeup.arm()
                try:
                    # The header only once the job is final: no model per wake-up. A job in
                    # memory is read here; one on disk in a thread, off the event loop.
                    read = functools.partial(store.results_since_json, job_id, next_start)
                    if store.in_memory(job_id):
                        results, next_start, final_header = read()
                    else:
                        results, next_start, final_header = await anyio.to_thread.run_sync(read)
                except JobNotFound:
                    return  # expired while streaming: nothing more will come
                if results:
                    wrote_at = loop.time()
                    # Stored as JSON already: joining bytes is all the event loop does.
                    for start in range(0, len(results), _CHUNK):
                        yield b"".join(
                            b'{"type":"result","result":' + data + b"}\n"
                            for data in results[start : start + _CHUNK]
                        )
                if final_header is not None:
                    yield end_line(final_header)
                    return
                if not results:
                    # Nothing new: wait for the store. After a read that brought results,
                    # read again first: a job on disk comes in batches and wakes nobody.
                    await wakeup.wait()
                # Results come one by one from many threads: a write per result, times every
                # open stream, kept the event loop from answering anything else.
                pause = wrote_at + _MIN_INTERVAL_S - loop.time()
                if pause > 0:
                    await asyncio.sleep(pause)
        finally:
            unsubscribe()

    return lines()
