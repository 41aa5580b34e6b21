"""The loop guard turns the event loop's lag into the dispatcher's concurrency limit."""

from __future__ import annotations

import asyncio
import threading

from app.api.loop_guard import guard_loop, stop_guard
from app.engine.limiter import ConcurrencyLimiter, LimiterConfig


class FakeDispatcher:
    def __init__(self) -> None:
        self.limits: list[int] = []

    def load(self) -> tuple[int, int]:
        return (self.limits[-1] if self.limits else 100), 1000

    def set_limit(self, limit: int) -> None:
        self.limits.append(limit)


def test_a_blocked_event_loop_lowers_the_limit_and_a_free_one_raises_it_again() -> None:
    async def scenario() -> list[int]:
        dispatcher = FakeDispatcher()
        limiter = ConcurrencyLimiter(LimiterConfig(ceiling=100, floor=10))
        task = asyncio.create_task(guard_loop(dispatcher, limiter))  # type: ignore[arg-type]
        await asyncio.sleep(0.01)
        for _ in range(3):
            threading.Event().wait(0.1)  # hold the loop, as checks holding the GIL would
            await asyncio.sleep(0.06)
        lowest = min(dispatcher.limits)
        for _ in range(100):  # bounded: 100 x 20 ms
            if dispatcher.limits[-1] > lowest:
                break
            await asyncio.sleep(0.02)
        await stop_guard(task)
        return dispatcher.limits

    limits = asyncio.run(scenario())
    assert limits, "the guard never changed the limit"
    assert min(limits) < 100
    assert limits[-1] > min(limits)
