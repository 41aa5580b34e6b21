"""The concurrency limiter: back off when the event loop falls behind, grow back while it keeps
up and work waits, never outside [floor, workers]."""

from __future__ import annotations

from app.engine.limiter import ConcurrencyLimiter, LimiterConfig


def limiter(ceiling: int = 500, floor: int = 16) -> ConcurrencyLimiter:
    return ConcurrencyLimiter(LimiterConfig(ceiling=ceiling, floor=floor))


def test_starts_at_the_worker_count() -> None:
    assert limiter().limit == 500


def test_a_lagging_loop_cuts_the_limit_by_a_fraction_down_to_the_floor() -> None:
    lim = limiter()
    assert lim.observe(0.050, running=500, waiting=1000) == 425
    for _ in range(100):
        lim.observe(0.050, running=lim.limit, waiting=1000)
    assert lim.limit == 16


def test_it_grows_back_while_the_loop_keeps_up_and_work_waits_up_to_the_ceiling() -> None:
    lim = limiter()
    for _ in range(10):
        lim.observe(0.050, running=lim.limit, waiting=1000)
    low = lim.limit
    assert lim.observe(0.001, running=low, waiting=1000) > low
    for _ in range(200):
        lim.observe(0.001, running=lim.limit, waiting=1000)
    assert lim.limit == 500


def test_it_does_not_grow_without_waiting_work_or_while_below_its_limit() -> None:
    lim = limiter()
    lim.observe(0.050, running=500, waiting=10)
    limit = lim.limit
    assert lim.observe(0.001, running=limit, waiting=0) == limit  # nothing waits
    assert lim.observe(0.001, running=limit // 2, waiting=10) == limit  # not using it all


def test_moderate_lag_holds_the_limit_where_it_is() -> None:
    lim = limiter()
    lim.observe(0.050, running=500, waiting=10)
    limit = lim.limit
    assert lim.observe(0.006, running=limit, waiting=10) == limit
    assert lim.observe(0.003, running=limit, waiting=10, busy=True) == limit


def test_while_requests_arrive_a_loop_five_ms_late_already_backs_off() -> None:
    # A sampled lag of 5-10 ms was tolerated, and GET /v1/status under load (bench S5) had a
    # p99 of 110-170 ms at that level: the median wait for the GIL sets the tail.
    assert limiter().observe(0.005, running=500, waiting=10, busy=True) < 500
    assert limiter().observe(0.005, running=500, waiting=10, busy=False) == 500
    lim = limiter()
    lim.observe(0.050, running=500, waiting=10)
    limit = lim.limit
    assert lim.observe(0.002, running=limit, waiting=10, busy=True) == limit  # no room to grow
    assert lim.observe(0.002, running=limit, waiting=10, busy=False) > limit


def test_a_pool_smaller_than_the_floor_is_never_exceeded() -> None:
    lim = limiter(ceiling=4, floor=16)
    assert lim.limit == 4
    assert lim.observe(0.050, running=4, waiting=10) == 4
    assert lim.observe(0.001, running=4, waiting=10) == 4
