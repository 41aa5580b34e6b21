"""Retention of monitor history, run by the database's retention loop (app/db/retention.py)
after the jobs, in small batches through the writer:

- raw results older than `history_raw_days`, oldest first (their `at_ms` index);
- hourly rollups as long as the raw results, and at least `HOURLY_MIN_DAYS` (they serve the
  hour windows, at most 25 h back, and cost 24 rows a day per monitor: 400 days of them
  would cost about as much as the raw results); daily rollups and closed incidents older
  than `history_rollup_days`.

Rollups and incidents are pruned monitor by monitor, a range of each one's key: their tables
have no index by age alone (one would cost space on every row), and a scan of a table of
millions of rows per batch is what retention must not do.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, bindparam, delete, select

from app.db import partitions
from app.db.retention import BATCH_ROWS, VACUUM_PAGES, Pruned, RunBatch, vacuum
from app.db.schema import incidents, monitor_results, monitor_rollups, monitors
from app.monitors.recorder import to_ms

BATCH_MONITORS = 500
HOURLY_MIN_DAYS = 2.0  # the 24h window reaches 25 h back
MAX_BATCHES = 100_000  # a bound, not a target


def prune_raw(connection: Connection, *, before_ms: int, limit: int = BATCH_ROWS) -> Pruned:
    """Up to `limit` raw results older than `before_ms`, oldest first."""
    r = monitor_results.c
    oldest = select(r.id).where(r.at_ms < before_ms).order_by(r.at_ms).limit(limit)
    rows = connection.execute(delete(monitor_results).where(r.id.in_(oldest))).rowcount
    return vacuum(connection, VACUUM_PAGES, Pruned(rows=rows, more=rows >= limit))


_R = monitor_rollups.c
_DELETE_ROLLUPS = delete(monitor_rollups).where(
    _R.monitor_id == bindparam("m_id"),
    _R.period == bindparam("m_period"),
    _R.start_ms < bindparam("m_before"),
)


def prune_rollups(
    connection: Connection,
    *,
    after_monitor: int,
    hourly_before_ms: int,
    daily_before_ms: int,
    incidents_before: datetime,
    limit: int = BATCH_MONITORS,
) -> tuple[Pruned, int | None]:
    """Old rollups and closed incidents of up to `limit` monitors with ids past
    `after_monitor`; the last id done (None: no monitor is left)."""
    ids = list(
        connection.execute(
            select(monitors.c.id)
            .where(monitors.c.id > after_monitor)
            .order_by(monitors.c.id)
            .limit(limit)
        ).scalars()
    )
    if not ids:
        return vacuum(connection, VACUUM_PAGES, Pruned()), None
    params = [
        {"m_id": m, "m_period": period, "m_before": before}
        for m in ids
        for period, before in (("h", hourly_before_ms), ("d", daily_before_ms))
    ]
    rows = connection.execute(_DELETE_ROLLUPS, params).rowcount
    i = incidents.c
    rows += connection.execute(
        delete(incidents).where(
            i.monitor_id.in_(ids), i.ended_at.is_not(None), i.ended_at < incidents_before
        )
    ).rowcount
    pruned = vacuum(connection, VACUUM_PAGES, Pruned(rows=max(0, rows)))
    return pruned, ids[-1] if len(ids) == limit else None


def _by_partition(connection: Connection, now: datetime, before_ms: int) -> Pruned:
    """The days ahead made, the days past dropped; nothing on SQLite."""
    partitions.ensure_ahead(connection, now)
    return Pruned(rows=partitions.drop_before(connection, before_ms))


@dataclass(frozen=True, slots=True)
class HistoryRetention:
    """A retention task (app.db.retention.RetentionTask): one round over monitor history."""

    raw_days: float
    rollup_days: float
    batch_rows: int = BATCH_ROWS
    batch_monitors: int = BATCH_MONITORS

    def __call__(self, now: datetime, run: RunBatch) -> Pruned | None:
        raw_before = to_ms(now - timedelta(days=self.raw_days))
        rollup_before = now - timedelta(days=self.rollup_days)
        hourly_before = to_ms(now - timedelta(days=max(self.raw_days, HOURLY_MIN_DAYS)))
        # PostgreSQL: whole days first (app/db/partitions.py), then what is left row by row
        # (the day partly inside the window, and the DEFAULT partition).
        dropped = run(lambda c: _by_partition(c, now, raw_before))
        if dropped is None:
            return None
        total = dropped
        for _ in range(MAX_BATCHES):
            done = run(lambda c: prune_raw(c, before_ms=raw_before, limit=self.batch_rows))
            if done is None:
                return None
            total += done
            if not done.more:
                break
        after: int | None = 0
        for _ in range(MAX_BATCHES):
            step = run(
                functools.partial(
                    prune_rollups,
                    after_monitor=after or 0,
                    hourly_before_ms=hourly_before,
                    daily_before_ms=to_ms(rollup_before),
                    incidents_before=rollup_before,
                    limit=self.batch_monitors,
                )
            )
            if step is None:
                return None
            pruned, after = step
            total += pruned
            if after is None:
                break
        return Pruned(total.jobs, total.rows, total.pages, False)
