"""Full garbage collections wait for an idle moment (or a maximum interval), young ones stay
automatic."""

from __future__ import annotations

import asyncio
import gc

from app.lifecycle.collector import collect_when_idle, defer_full_collections, restore


def test_deferring_stops_automatic_full_collections_until_the_last_holder_restores() -> None:
    before = gc.get_threshold()
    defer_full_collections()
    defer_full_collections()  # a second app in the same process
    try:
        gen0, gen1, gen2 = gc.get_threshold()
        assert (gen0, gen1) == before[:2]  # young generations unchanged
        assert gen2 >= 1_000_000
        restore()
        assert gc.get_threshold()[2] >= 1_000_000  # the other app still runs
    finally:
        restore()
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def _run(idle: list[bool], **intervals: float) -> list[int]:
    collected: list[int] = []

    def collect(generation: int) -> int:
        collected.append(generation)
        return 0

    async def scenario() -> None:
        task = asyncio.create_task(
            collect_when_idle(lambda: idle[0], period_s=0.01, collect=collect, **intervals)
        )
        await asyncio.sleep(0.3)
        task.cancel()

    asyncio.run(scenario())
    return collected


def test_a_busy_service_is_not_collected_before_the_maximum_interval() -> None:
    assert _run([False], min_interval_s=0.0, max_interval_s=60.0) == []


def test_an_idle_service_is_collected_in_full_but_not_more_often_than_the_minimum() -> None:
    collected = _run([True], min_interval_s=0.1, max_interval_s=60.0)
    assert collected  # at least once in 0.3 s
    assert set(collected) == {2}
    assert len(collected) <= 3  # at most every 0.1 s


def test_a_service_busy_for_longer_than_the_maximum_interval_is_collected_anyway() -> None:
    assert _run([False], min_interval_s=0.0, max_interval_s=0.05)
