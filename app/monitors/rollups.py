"""Hourly ('h') and daily ('d') rollups of a monitor's results, kept current with every result.

Each result adds one to its hour's and its UTC day's row: checks, the count of its outcome,
and (for results that answered correctly: up or degraded, whose latency is the target's
answer time, not a timeout) the latency count, sum, min, max and histogram bucket
(app/monitors/buckets.py). Counts in rollups therefore equal counts of raw results exactly.

The rows are read and written back merged in the recorder's transaction, after the monitor's
row was updated (on PostgreSQL that UPDATE holds the row's lock until commit, so a second
writer of the same monitor waits, then reads what the first committed). The write is one
statement for both dialects: INSERT ... ON CONFLICT (key) DO UPDATE (see _UPSERT).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Final

from sqlalchemy import JSON, Connection, and_, bindparam, or_, select, text

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


_R = monitor_rollups.c
_READ = select(monitor_rollups).where(
    _R.monitor_id == bindparam("m_id"),
    or_(
        and_(_R.period == "h", _R.start_ms == bindparam("h_start")),
        and_(_R.period == "d", _R.start_ms == bindparam("d_start")),
    ),
)


def add(connection: Connection, monitor_id: int, at: datetime, result: CheckResult) -> None:
    at_ms = (at - _EPOCH) // timedelta(milliseconds=1)
    starts = {period: period_start(at_ms, period) for period in PERIODS}
    params = {"m_id": monitor_id, "h_start": starts["h"], "d_start": starts["d"]}
    found = {row.period: row for row in connection.execute(_READ, params)}
    latency = latency_us(result)
    rows = []
    for period, start in starts.items():
        row = found.get(period)
        values = _merged(row._asdict() if row is not None else None, result.outcome, latency)
        rows.append({"monitor_id": monitor_id, "period": period, "start_ms": start, **values})
    upsert(connection, rows)


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


_COLUMNS = tuple(column.name for column in monitor_rollups.columns)
# INSERT ... ON CONFLICT (key) DO UPDATE: the same text on SQLite (3.24+) and PostgreSQL,
# so one code path. Kept as text: the dialects' insert constructs are not cacheable in
# SQLAlchemy 2.0 (compiled anew for every result: ~2 ms of CPU each, measured).
_UPSERT = text(
    f"INSERT INTO monitor_rollups ({', '.join(_COLUMNS)}) "
    f"VALUES ({', '.join(':' + c for c in _COLUMNS)}) "
    f"ON CONFLICT ({', '.join(_KEY)}) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in _COLUMNS if c not in _KEY)
).bindparams(bindparam("histogram", type_=JSON))


def upsert(connection: Connection, rows: list[dict[str, Any]]) -> None:
    """Insert the rollup rows, or replace their counts (both periods in one call)."""
    connection.execute(_UPSERT, rows)
