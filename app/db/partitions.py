"""Monitor results on PostgreSQL, one partition a day (declarative range partitioning on
`at_ms`), so that retention drops a day's table instead of deleting its rows one by one: at a
million monitors a minute that is 1.4 billion rows a day, which a DELETE would leave behind
as dead tuples for vacuum to chase.

Days are UTC, partitions named `monitor_results_pYYYYMMDD`. They are made ahead of time
(`ensure_days`, at start and in each retention round); a row for a day without one (a clock
far off, maintenance behind) lands in the DEFAULT partition rather than failing, and the
row-by-row retention (app/monitors/retention.py) still reaches it. SQLite has no partitions:
every function here does nothing there.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import Connection, text

TABLE = "monitor_results"
DAY_MS = 86_400_000
# Partitions made ahead: a replica down for this long still finds its day's partition.
DAYS_AHEAD = 3
_NAME = re.compile(rf"^{TABLE}_p(\d{{8}})$")
# Replicas run retention each on their own; DDL on one table is serialised by this lock.
_LOCK_KEY = 0x75726C68_70617274  # "urlhpart"


def partitioned(connection: Connection) -> bool:
    if connection.dialect.name != "postgresql":
        return False
    kind = connection.execute(
        text("SELECT relkind FROM pg_class WHERE relname = :name AND relkind = 'p'"),
        {"name": TABLE},
    ).scalar()
    return kind is not None


def day_name(day: date) -> str:
    return f"{TABLE}_p{day:%Y%m%d}"


def _bounds(day: date) -> tuple[int, int]:
    start = int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000)
    return start, start + DAY_MS


def _locked(connection: Connection) -> bool:
    """This transaction's advisory lock on the partitions, or False if another replica holds
    it (that one is doing the same work)."""
    taken = connection.execute(text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
    return bool(taken.scalar())


def existing_days(connection: Connection) -> list[date]:
    rows = connection.execute(
        text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = CAST(:parent AS regclass)"
        ),
        {"parent": TABLE},
    ).scalars()
    days = []
    for name in rows:
        found = _NAME.match(name)
        if found is not None:
            days.append(datetime.strptime(found.group(1), "%Y%m%d").date())
    return sorted(days)


def ensure_days(connection: Connection, first: date, last: date) -> int:
    """Make the partitions of days `first`..`last` that do not exist; how many were made."""
    if not partitioned(connection) or not _locked(connection):
        return 0
    have = set(existing_days(connection))
    made = 0
    day = first
    while day <= last:
        start, end = _bounds(day)
        # A day whose rows already went to DEFAULT keeps them there (PostgreSQL refuses a
        # partition that rows in DEFAULT belong to); row-by-row retention reaches them.
        if day not in have and not _in_default(connection, start, end):
            connection.exec_driver_sql(
                f"CREATE TABLE IF NOT EXISTS {day_name(day)} PARTITION OF {TABLE} "
                f"FOR VALUES FROM ({start}) TO ({end})"
            )
            made += 1
        day += timedelta(days=1)
    return made


def _in_default(connection: Connection, start: int, end: int) -> bool:
    found = connection.execute(
        text(f"SELECT 1 FROM {TABLE}_default WHERE at_ms >= :start AND at_ms < :end LIMIT 1"),
        {"start": start, "end": end},
    ).scalar()
    return found is not None


def ensure_ahead(connection: Connection, now: datetime) -> int:
    today = now.astimezone(UTC).date()
    return ensure_days(connection, today, today + timedelta(days=DAYS_AHEAD))


def drop_before(connection: Connection, before_ms: int) -> int:
    """Drop the partitions whose whole day is older than `before_ms`; the rows they held
    (the planner's estimate: counting them would read them)."""
    if not partitioned(connection) or not _locked(connection):
        return 0
    rows = 0
    for day in existing_days(connection):
        if _bounds(day)[1] > before_ms:
            break
        name = day_name(day)
        estimate = connection.execute(
            text("SELECT reltuples FROM pg_class WHERE relname = :name"), {"name": name}
        ).scalar()
        connection.exec_driver_sql(f"DROP TABLE {name}")
        rows += max(0, int(estimate or 0))
    return rows
