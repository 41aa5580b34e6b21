"""Hourly ('h') and daily ('d') rollups of a monitor's results, kept current with every result.

Each result adds one to its hour's and its UTC day's row: checks, the count of its outcome,
and (for results that answered correctly: up or degraded, whose latency is the target's
answer time, not a timeout) the latency count, sum, min, max and histogram bucket
(app/monitors/buckets.py). Counts in rollups therefore equal counts of raw results exactly.

The rows are read and written back merged in the recorder's transaction, after the monitor's
row was updated (on PostgreSQL that UPDATE holds the row's lock until commit, so a second
writer of the same monitor waits, then reads what the first committed). The write is one
statement for both dialects: INSERT ... ON CONFLICT (key) DO UPDATE.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Final

from sqlalchemy import Connection, and_, or_, select
from sqlalchemy.dialects import postgresql, sqlite

from app.db.schema import monitor_rollups
from app.monitors import buckets
from app.schemas.results import CheckResult

HOUR_MS: Final = 3_600_000
DAY_MS: Final = 86_400_000
PERIODS: Final = {"h": HOUR_MS, "d": DAY_MS}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_KEY = ("monitor_id", "period", "start_ms")
_COUNTED = ("up", "degraded")  # outcomes whose latency is counted


def period_start(at_ms: int, period: str) -> int:
    size = PERIODS[period]
    return at_ms - at_ms % size


def latency_us(result: CheckResult) -> int | None:
    """The latency a rollup counts for this result, if any."""
    if result.outcome not in _COUNTED or result.elapsed_ms is None:
        return None
    return max(0, round(result.elapsed_ms * 1000))


def add(connection: Connection, monitor_id: int, at: datetime, result: CheckResult) -> None:
    at_ms = (at - _EPOCH) // timedelta(milliseconds=1)
    starts = {period: period_start(at_ms, period) for period in PERIODS}
    r = monitor_rollups.c
    found = {
        row.period: row
        for row in connection.execute(
            select(monitor_rollups).where(
                r.monitor_id == monitor_id,
                or_(*(and_(r.period == p, r.start_ms == s) for p, s in starts.items())),
            )
        )
    }
    latency = latency_us(result)
    for period, start in starts.items():
        row = found.get(period)
        values = _merged(row._asdict() if row is not None else None, result.outcome, latency)
        upsert(
            connection, {"monitor_id": monitor_id, "period": period, "start_ms": start, **values}
        )


def _merged(row: dict[str, Any] | None, outcome: str, latency: int | None) -> dict[str, Any]:
    old = row or {
        "checks": 0,
        "up": 0,
        "degraded": 0,
        "down": 0,
        "latency_count": 0,
        "latency_sum_us": 0,
        "latency_min_us": None,
        "latency_max_us": None,
        "histogram": {},
    }
    values = {key: old[key] for key in ("checks", "up", "degraded", "down")}
    values["checks"] += 1
    values[outcome] += 1
    low, high = old["latency_min_us"], old["latency_max_us"]
    if latency is None:
        return {
            **values,
            "latency_count": old["latency_count"],
            "latency_sum_us": old["latency_sum_us"],
            "latency_min_us": low,
            "latency_max_us": high,
            "histogram": old["histogram"],
        }
    return {
        **values,
        "latency_count": old["latency_count"] + 1,
        "latency_sum_us": old["latency_sum_us"] + latency,
        "latency_min_us": latency if low is None else min(low, latency),
        "latency_max_us": latency if high is None else max(high, latency),
        "histogram": buckets.add(old["histogram"], latency),
    }


def upsert(connection: Connection, values: dict[str, Any]) -> None:
    """Insert the rollup row, or replace its counts: one statement on either dialect."""
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(monitor_rollups).values(**values)
    changed = {k: statement.excluded[k] for k in values if k not in _KEY}
    connection.execute(statement.on_conflict_do_update(index_elements=_KEY, set_=changed))
