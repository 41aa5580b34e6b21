"""How a stream is woken: a burst of results costs one event-loop callback per stream, not one
per result, and a wake-up that comes while the stream is reading the store is not lost."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from app.api.stream import _Wakeup


class CountingLoop:
    """The running loop, counting the callbacks other threads schedule on it."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.scheduled = 0

    def call_soon_threadsafe(self, callback: Callable[..., Any], *args: Any) -> Any:
        self.scheduled += 1
        return self.loop.call_soon_threadsafe(callback, *args)


def test_results_recorded_while_a_stream_writes_cost_one_loop_callback() -> None:
    async def scenario() -> int:
        counting = CountingLoop(asyncio.get_running_loop())
        wakeup = _Wakeup(counting)  # type: ignore[arg-type]
        wakeup.arm()  # the stream read the store and is about to wait
        for _ in range(3):  # three bursts, with loop turns between them (a slow write)
            for _ in range(100):
                wakeup()
            await asyncio.sleep(0)
        await asyncio.wait_for(wakeup.wait(), 5)
        return counting.scheduled

    assert asyncio.run(scenario()) == 1


def test_a_wakeup_between_reading_the_store_and_waiting_is_not_lost() -> None:
    async def scenario() -> None:
        wakeup = _Wakeup(asyncio.get_running_loop())
        wakeup.arm()  # armed before the read ...
        wakeup()  # ... so a result recorded right after the read still wakes the wait
        await asyncio.wait_for(wakeup.wait(), 5)

    asyncio.run(scenario())


def test_a_stream_not_armed_is_not_woken() -> None:
    # Between a wake-up and the next read nothing needs signalling: the read sees it all.
    async def scenario() -> int:
        counting = CountingLoop(asyncio.get_running_loop())
        wakeup = _Wakeup(counting)  # type: ignore[arg-type]
        for _ in range(50):
            wakeup()
        await asyncio.sleep(0)
        return counting.scheduled

    assert asyncio.run(scenario()) == 0
