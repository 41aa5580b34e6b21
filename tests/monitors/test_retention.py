"""Retention of monitor history: raw results go after history_raw_days, uptime stays (from
the rollups); daily rollups and closed incidents go after history_rollup_days."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

from sqlalchemy import Connection, func, select

from app.db.retention import RetentionLoop
from app.db.schema import incidents, monitor_results, monitor_rollups
from app.monitors.history import History
from app.monitors.recorder import to_ms
from app.monitors.retention import HistoryRetention
from tests.monitors.test_history import NOW, seed
from tests.support.monitors import HistoryStore, add_monitor
from tests.support.process import wait_until

T = TypeVar("T")


class Runner:
    """Runs each batch through the store's writer, waiting for it (RunBatch)."""

    def __init__(self, store: HistoryStore) -> None:
        self._store = store

    def __call__(self, write: Callable[[Connection], T]) -> T | None:
        return self._store.writer.submit(write).result(30)


def runner(store: HistoryStore) -> Runner:
    return Runner(store)


def count(store: HistoryStore, table: Any, *where: Any) -> int:
    with store.database.engine.connect() as connection:
        return int(
            connection.execute(select(func.count()).select_from(table).where(*where)).scalar() or 0
        )


def test_raw_results_past_raw_days_go_and_uptime_stays(store: HistoryStore) -> None:
    m = add_monitor(store.database, "kept")
    seed(store, m)
    history = History(store.database, clock=lambda: NOW)
    before = {w: history.uptime(m, w) for w in ("24h", "7d", "30d")}
    cutoff = to_ms(NOW - timedelta(days=2))
    assert count(store, monitor_results, monitor_results.c.at_ms < cutoff) > 0
    # Small batches: several go through the writer.
    done = HistoryRetention(2.0, 400.0, batch_rows=50)(NOW, runner(store))
    assert done is not None
    assert done.rows > 0
    assert count(store, monitor_results, monitor_results.c.at_ms < cutoff) == 0
    assert count(store, monitor_results) > 0  # the last two days stay
    # Hourly rollups go with the raw results; the daily ones stay, and with them uptime.
    r = monitor_rollups.c
    assert count(store, monitor_rollups, r.period == "h", r.start_ms < cutoff - 3_600_000) == 0
    assert {w: history.uptime(m, w) for w in ("7d", "30d")} == {w: before[w] for w in ("7d", "30d")}
    assert history.uptime(m, "24h") == before["24h"]


def test_daily_rollups_and_closed_incidents_past_rollup_days_go(store: HistoryStore) -> None:
    m = add_monitor(store.database, "old")
    seed(store, m)
    assert count(store, incidents, incidents.c.ended_at < NOW - timedelta(days=3)) > 0
    r = monitor_rollups.c
    HistoryRetention(1.0, 3.0, batch_monitors=1)(NOW, runner(store))
    cutoff = to_ms(NOW - timedelta(days=3))
    assert count(store, monitor_rollups, r.period == "d", r.start_ms < cutoff) == 0
    assert count(store, monitor_rollups, r.period == "d") > 0
    assert count(store, incidents, incidents.c.ended_at < NOW - timedelta(days=3)) == 0


def test_the_retention_loop_runs_history_retention_after_the_jobs(store: HistoryStore) -> None:
    m = add_monitor(store.database, "looped")
    seed(store, m)
    loop = RetentionLoop(
        store.writer.submit,
        retention_days=30,
        max_jobs=1000,
        interval_s=3600,
        clock=lambda: NOW,
        tasks=[HistoryRetention(2.0, 400.0)],
    ).start()
    try:
        assert wait_until(lambda: loop.last_round is not None, 30.0)
    finally:
        loop.stop()
    assert loop.last_round is not None
    assert loop.last_round.rows > 0
    cutoff = to_ms(NOW - timedelta(days=2))
    assert count(store, monitor_results, monitor_results.c.at_ms < cutoff) == 0
