"""Reading history back: uptime from rollups equals uptime from the raw results, percentiles
within one bucket, pages of results and incidents, the summary of all monitors."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from app.db.schema import monitor_results
from app.monitors import buckets
from app.monitors.history import WINDOWS, History, window_bounds
from app.monitors.recorder import Recorder
from app.schemas.monitoring import Outcome
from tests.support.monitors import T0, HistoryStore, add_monitor, check

# Seeded results span T0 - 9 days .. NOW; NOW is mid-hour, mid-day.
NOW = T0 + timedelta(hours=13, minutes=37, seconds=12)


def seed(store: HistoryStore, monitor_id: int, seed_value: int = 7) -> None:
    """Results every ~50 minutes over ten days, outcomes and latencies drawn at random (in
    runs, so that incidents happen), each recorded at its own explicit time."""
    rng = random.Random(seed_value)
    recorder = Recorder(store.writer)
    at = T0 - timedelta(days=9, minutes=13)
    outcome: Outcome = "up"
    while at <= NOW:
        if rng.random() < 0.15:
            outcome = rng.choice(["up", "up", "degraded", "down"])
        elapsed = rng.choice([3.0, 40.0, 250.0, 1800.0]) * rng.uniform(0.5, 1.5)
        recorder.record(monitor_id, 1, at, check(outcome, elapsed_ms=elapsed, at=at))
        at += timedelta(minutes=rng.randint(20, 80), seconds=rng.randint(0, 59))
    store.writer.submit(lambda _c: None).result(10)  # everything before it is committed


def raw(
    store: HistoryStore, monitor_id: int, start_ms: int, end_ms: int
) -> list[tuple[int, int | None]]:
    r = monitor_results.c
    with store.database.engine.connect() as connection:
        rows = connection.execute(
            select(r.outcome, r.latency_us).where(
                r.monitor_id == monitor_id, r.at_ms >= start_ms, r.at_ms <= end_ms
            )
        ).all()
    return [(row.outcome, row.latency_us) for row in rows]


def nearest_rank(values: list[int], q: float) -> int:
    ordered = sorted(values)
    rank = max(1, -(-int(q * len(ordered) * 1_000_000) // 1_000_000))
    return ordered[rank - 1]


@pytest.mark.parametrize("window", list(WINDOWS))
def test_uptime_from_rollups_equals_uptime_from_raw_results(
    store: HistoryStore, window: str
) -> None:
    m = add_monitor(store.database, "seeded")
    seed(store, m)
    uptime = History(store.database, clock=lambda: NOW).uptime(m, window)
    start_ms, end_ms = window_bounds(window, NOW)
    rows = raw(store, m, start_ms, end_ms)
    counts = [sum(1 for outcome, _ in rows if outcome == code) for code in (0, 1, 2)]
    assert (uptime.checks, uptime.up, uptime.degraded, uptime.down) == (len(rows), *counts)
    assert uptime.checks > 0
    assert uptime.uptime_pct == round(100.0 * (counts[0] + counts[1]) / len(rows), 4)
    latencies = [us for outcome, us in rows if outcome in (0, 1) and us is not None]
    assert uptime.latency.count == len(latencies)
    for q, reported in (
        (0.5, uptime.latency.p50_ms),
        (0.95, uptime.latency.p95_ms),
        (0.99, uptime.latency.p99_ms),
    ):
        assert reported is not None
        exact = nearest_rank(latencies, q)
        assert buckets.bucket_of(round(reported * 1000)) == buckets.bucket_of(exact), (q, exact)


def test_windows_are_whole_hours_or_utc_days_plus_the_current_one() -> None:
    start, end = window_bounds("24h", NOW)
    assert datetime.fromtimestamp(start / 1000, NOW.tzinfo) == T0 + timedelta(hours=13) - timedelta(
        hours=24
    )
    start, _ = window_bounds("7d", NOW)
    assert datetime.fromtimestamp(start / 1000, NOW.tzinfo) == T0 - timedelta(days=7)
    assert end == int(NOW.timestamp() * 1000)


def test_uptime_counts_incidents_and_their_time_to_recovery(store: HistoryStore) -> None:
    m = add_monitor(store.database, "flaky")
    recorder = Recorder(store.writer)
    outcomes: list[Outcome] = ["up", "up", "down", "down", "down", "up", "up", "up"]
    for n, outcome in enumerate(outcomes):
        at = T0 + timedelta(minutes=10 * n)
        recorder.submit(m, 1, at, check(outcome, at=at)).result(10)
    uptime = History(store.database, clock=lambda: NOW).uptime(m, "24h")
    assert uptime.incidents == 1
    assert uptime.mttr_s == 30 * 60  # first down at +20 min, first up at +50 min
    (incident,) = History(store.database).incidents(m)
    assert incident.duration_s == 30 * 60
    assert [(e.from_state, e.to_state) for e in incident.events] == [("up", "down"), ("down", "up")]
    assert incident.first_result is not None
    assert incident.first_result["url"] == "http://127.0.0.1:9/x"  # no credentials, no query


def test_results_page_newest_first_through_a_cursor(store: HistoryStore) -> None:
    m = add_monitor(store.database, "paged")
    recorder = Recorder(store.writer)
    for n in range(7):
        at = T0 + timedelta(minutes=n)
        recorder.record(m, 1, at, check("down" if n in (0, 3) else "up", at=at))
    store.writer.submit(lambda _c: None).result(10)
    history = History(store.database)
    seen: list[datetime] = []
    cursor = None
    for _ in range(10):
        page = history.results(m, limit=3, cursor=cursor, since=T0 + timedelta(minutes=1))
        seen.extend(r.at for r in page.results)
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == [T0 + timedelta(minutes=n) for n in range(6, 0, -1)]
    last = history.results(m, limit=1).results[0]
    assert last.detail is None  # an up that changed nothing: compact only
    failed = history.results(m, until=T0 + timedelta(minutes=1)).results[0]
    assert failed.outcome == "down"
    assert failed.detail is not None
    assert "secret" not in str(failed.detail)


def test_find_takes_an_id_or_a_slug(store: HistoryStore) -> None:
    first = add_monitor(store.database, "alpha")
    history = History(store.database)
    assert history.find(str(first)) == first
    assert history.find("alpha") == first
    assert history.find("nope") is None
    assert history.find("99999999999999999999") is None
    assert history.find("\u00b2") is None  # a digit to str.isdigit, not to int()


def test_the_summary_has_every_monitor_state_uptime_and_open_incident(
    store: HistoryStore,
) -> None:
    healthy = add_monitor(store.database, "healthy", group_name="web")
    broken = add_monitor(store.database, "broken")
    quiet = add_monitor(store.database, "quiet", paused=True)
    recorder = Recorder(store.writer)
    for n in range(4):
        at = NOW - timedelta(minutes=10 * (4 - n))
        recorder.submit(healthy, 1, at, check("up", at=at)).result(10)
        recorder.submit(broken, 1, at, check("up" if n == 0 else "down", at=at)).result(10)
    rows = {s.slug: s for s in History(store.database, clock=lambda: NOW).summary().monitors}
    assert list(rows) == ["healthy", "broken", "quiet"]
    assert (rows["healthy"].state, rows["healthy"].uptime_24h_pct, rows["healthy"].group) == (
        "up",
        100.0,
        "web",
    )
    assert rows["broken"].state == "down"
    assert rows["broken"].uptime_24h_pct == 25.0
    assert rows["broken"].incident is not None
    assert rows["healthy"].incident is None
    assert (rows["quiet"].paused, rows["quiet"].uptime_24h_pct, rows["quiet"].last_checked_at) == (
        True,
        None,
        None,
    )
    assert rows["broken"].id == broken
    assert rows["quiet"].id == quiet
