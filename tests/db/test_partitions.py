"""Monitor results partitioned by day on PostgreSQL: rows land in their day's partition,
retention drops whole days, and the migration carries existing rows over with their ids."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import pytest
from alembic import command
from sqlalchemy import Connection, func, insert, select, text

from app.db import partitions
from app.db.engine import Database, open_database
from app.db.migrator import alembic_config, upgrade
from app.db.retention import RunBatch
from app.db.schema import monitor_results
from app.db.url import sqlalchemy_url
from app.monitors.recorder import to_ms
from app.monitors.retention import HistoryRetention
from tests.support.monitors import add_monitor

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
T = TypeVar("T")


@pytest.fixture
def pg(pg_url: str, tmp_path: Path) -> Iterator[Database]:
    database = open_database(sqlalchemy_url(pg_url, tmp_path))
    yield database
    database.close()


def _result(monitor_id: int, at: datetime) -> dict[str, object]:
    return {"monitor_id": monitor_id, "at_ms": to_ms(at), "outcome": 0, "status": 200}


def _insert(connection: Connection, row: dict[str, object]) -> int:
    statement = insert(monitor_results).values(row).returning(monitor_results.c.id)
    return int(connection.execute(statement).scalar_one())


def _where(database: Database) -> dict[int, str]:
    """Each row's partition, by id."""
    with database.engine.connect() as connection:
        rows = connection.execute(
            text("SELECT id, tableoid::regclass::text FROM monitor_results")
        ).all()
    return {row[0]: row[1] for row in rows}


def _run(database: Database) -> RunBatch:
    def run(write: Callable[[Connection], T]) -> T:
        with database.write_engine.begin() as connection:
            return write(connection)

    return run


def test_rows_land_in_their_days_partition_and_unplanned_days_in_the_default(
    pg: Database,
) -> None:
    upgrade(pg)
    m = add_monitor(pg, "daily")
    today = datetime.now(UTC)
    with pg.write_engine.begin() as connection:
        assert partitions.partitioned(connection)
        ids = [
            _insert(connection, _result(m, at))
            for at in (today, today + timedelta(days=2), today - timedelta(days=40))
        ]
    where = _where(pg)
    assert where[ids[0]] == partitions.day_name(today.date())
    assert where[ids[1]] == partitions.day_name((today + timedelta(days=2)).date())
    assert where[ids[2]] == "monitor_results_default"


def test_retention_drops_whole_days_past_raw_days_and_keeps_the_rest(pg: Database) -> None:
    upgrade(pg)
    m = add_monitor(pg, "kept")
    with pg.write_engine.begin() as connection:
        partitions.ensure_days(connection, (NOW - timedelta(days=12)).date(), NOW.date())
        for days_ago in (11, 10, 9, 3, 1, 0):
            connection.execute(
                insert(monitor_results).values(_result(m, NOW - timedelta(days=days_ago)))
            )
        connection.exec_driver_sql("ANALYZE monitor_results")

    done = HistoryRetention(7.0, 400.0)(NOW, _run(pg))

    assert done is not None
    assert done.rows >= 3
    with pg.engine.connect() as connection:
        days = partitions.existing_days(connection)
        kept = connection.execute(select(func.count()).select_from(monitor_results)).scalar()
    assert min(days) == (NOW - timedelta(days=7)).date()  # the day partly inside stays
    assert max(days) >= (NOW + timedelta(days=partitions.DAYS_AHEAD)).date()
    assert kept == 3


def test_two_replicas_making_partitions_at_once_make_each_day_once(pg: Database) -> None:
    upgrade(pg)
    first, last = (NOW - timedelta(days=30)).date(), (NOW - timedelta(days=20)).date()
    with pg.write_engine.begin() as one, pg.write_engine.begin() as two:
        made_one = partitions.ensure_days(one, first, last)
        made_two = partitions.ensure_days(two, first, last)  # the lock is held: it skips
    assert (made_one, made_two) == (11, 0)


def test_migration_carries_existing_results_over_with_their_ids(pg: Database) -> None:
    config = alembic_config()
    with pg.write_engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0006")
    m = add_monitor(pg, "old")
    old = datetime.now(UTC) - timedelta(days=5)
    with pg.write_engine.begin() as connection:
        assert not partitions.partitioned(connection)
        for minutes in range(3):
            connection.execute(
                insert(monitor_results).values(_result(m, old + timedelta(minutes=minutes)))
            )
    before = sorted(_where(pg))

    upgrade(pg)

    where = _where(pg)
    assert sorted(where) == before
    assert set(where.values()) == {partitions.day_name(old.date())}
    with pg.write_engine.begin() as connection:
        new_id = _insert(connection, _result(m, datetime.now(UTC)))
    assert new_id > max(before)


def test_sqlite_has_no_partitions(tmp_path: Path) -> None:
    database = open_database(sqlalchemy_url(f"sqlite:///{tmp_path / 'x.db'}", tmp_path))
    try:
        upgrade(database)
        with database.write_engine.begin() as connection:
            assert not partitions.partitioned(connection)
            assert partitions.ensure_ahead(connection, NOW) == 0
            assert partitions.drop_before(connection, to_ms(NOW)) == 0
    finally:
        database.close()


def test_a_day_whose_rows_went_to_the_default_partition_keeps_them_there(pg: Database) -> None:
    upgrade(pg)
    m = add_monitor(pg, "early")
    day = NOW - timedelta(days=50)
    with pg.write_engine.begin() as connection:
        connection.execute(insert(monitor_results).values(_result(m, day)))
    with pg.write_engine.begin() as connection:
        made = partitions.ensure_days(connection, day.date(), (day + timedelta(days=1)).date())
        days = partitions.existing_days(connection)
    assert made == 1  # the next day only: PostgreSQL would refuse the first
    assert day.date() not in days
    assert set(_where(pg).values()) == {"monitor_results_default"}
