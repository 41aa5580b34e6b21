"""The loop guard turns the event loop's lag into the dispatcher's concurrency limit."""

from __future__ import annotations

import asyncio
import threading
from typing import cast

from app.api.loop_guard import RequestCounter, guard_loop, stop_guard
from app.engine.limiter import ConcurrencyLimiter, LimiterConfig
from tests.conftest import RunningService


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


class SpyLimiter(ConcurrencyLimiter):
    def __init__(self) -> None:
        super().__init__(LimiterConfig(ceiling=100))
        self.busy: list[bool] = []

    def observe(self, lag_s: float, running: int, waiting: int, busy: bool = False) -> int:
        self.busy.append(busy)
        return self.limit


def test_the_guard_tells_the_limiter_whether_requests_are_arriving() -> None:
    async def scenario() -> tuple[list[bool], list[bool]]:
        limiter, requests = SpyLimiter(), [0]
        task = asyncio.create_task(
            guard_loop(FakeDispatcher(), limiter, requests)  # type: ignore[arg-type]
        )
        for _ in range(100):  # bounded: 100 x 20 ms
            if len(limiter.busy) >= 2:
                break
            await asyncio.sleep(0.02)
        quiet = list(limiter.busy)
        requests[0] += 1  # a request arrived
        seen = len(limiter.busy)
        for _ in range(100):
            if len(limiter.busy) >= seen + 2:
                break
            await asyncio.sleep(0.02)
        await stop_guard(task)
        return quiet, limiter.busy[seen + 1 :]

    quiet, after_request = asyncio.run(scenario())
    assert quiet
    assert not any(quiet)
    assert after_request
    assert all(after_request)


def test_the_request_counter_counts_http_requests(service: RunningService) -> None:
    middleware = [m for m in service.app.user_middleware if m.cls is RequestCounter]  # type: ignore[comparison-overlap]
    assert len(middleware) == 1
    counts = cast("list[int]", middleware[0].kwargs["counts"])
    before = counts[0]
    for _ in range(3):
        assert service.client.get("/healthz").status_code == 200
    assert counts[0] == before + 3
