"""The claim of due monitor checks (app/monitors/claims.py) on a real PostgreSQL: of several
replicas claiming one due check, exactly one wins; the next interval's is claimable again."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select, update

from app.cluster.queue import conninfo
from app.db.engine import Database, open_database
from app.db.migrator import upgrade
from app.db.schema import monitors
from app.db.url import sqlalchemy_url
from app.monitors.claims import ClaimsUnavailable, Due, DueClaims
from tests.support.monitor_rows import monitor_row
from tests.support.servers import refused_port

INTERVAL = 2.0
T = 1_800_000_000.0  # a grid time, epoch seconds


@pytest.fixture
def database(pg_url: str, tmp_path: Path) -> Iterator[Database]:
    opened = open_database(sqlalchemy_url(pg_url, tmp_path))
    upgrade(opened)
    with opened.engine.begin() as connection:
        rows = [monitor_row(i, "http://127.0.0.1:9/") for i in range(1, 51)]
        for row in rows:
            row["interval_s"] = INTERVAL
        connection.execute(monitors.insert(), rows)
    yield opened
    opened.close()


def claimers(database: Database, count: int) -> list[DueClaims]:
    return [DueClaims(conninfo(database.url)) for _ in range(count)]


def due(ids: range, following: float) -> list[Due]:
    return [Due(i, following, INTERVAL) for i in ids]


def test_of_two_claimers_one_wins_and_the_next_interval_is_claimable(database: Database) -> None:
    first, second = claimers(database, 2)
    try:
        assert first(due(range(1, 4), T + INTERVAL)) == {1, 2, 3}
        assert second(due(range(1, 4), T + INTERVAL)) == set()
        # A replica a hair off the grid (float rounding, a catch-up time) still loses.
        assert second(due(range(1, 4), T + INTERVAL + 0.001)) == set()
        assert second(due(range(1, 4), T + 2 * INTERVAL)) == {1, 2, 3}
        assert first(due(range(1, 4), T + 2 * INTERVAL)) == set()
    finally:
        first.close()
        second.close()


def test_paused_and_deleted_monitors_are_never_won(database: Database) -> None:
    with database.engine.begin() as connection:
        connection.execute(update(monitors).where(monitors.c.id == 1).values(paused=True))
        connection.execute(monitors.delete().where(monitors.c.id == 2))
    (claim,) = claimers(database, 1)
    try:
        assert claim(due(range(1, 4), T)) == {3}
    finally:
        claim.close()


def test_replicas_claiming_at_once_win_each_check_once(database: Database) -> None:
    """Three claimers race, over many intervals, on overlapping batches in different
    orders (the locks are taken in id order: no deadlock): each check is won exactly once."""
    count, rounds = 3, 20
    racing = claimers(database, count)
    won: list[list[set[int]]] = [[] for _ in range(count)]
    errors: list[BaseException] = []
    barrier = threading.Barrier(count)

    def run(index: int) -> None:
        ids = list(range(1, 51))
        if index % 2:
            ids.reverse()
        try:
            for n in range(rounds):
                barrier.wait(timeout=30)
                batch = [Due(i, T + n * INTERVAL, INTERVAL) for i in ids]
                won[index].append(racing[index](batch))
        except BaseException as exc:
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
    finally:
        for claim in racing:
            claim.close()
    assert errors == []
    for n in range(rounds):
        winners = [won[i][n] for i in range(count)]
        assert sorted(m for w in winners for m in w) == list(range(1, 51)), n
    with database.engine.connect() as connection:
        stored = connection.execute(select(monitors.c.next_due_at)).scalars().all()
    assert {at.timestamp() for at in stored} == {T + (rounds - 1) * INTERVAL}


def test_a_lost_connection_is_opened_again(database: Database) -> None:
    (claim,) = claimers(database, 1)
    try:
        assert claim(due(range(1, 2), T)) == {1}
        with database.engine.connect() as connection:
            connection.exec_driver_sql(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE pid <> pg_backend_pid() AND datname = current_database() "
                "AND application_name = ''"
            )
        assert claim(due(range(1, 2), T + INTERVAL)) == {1}
    finally:
        claim.close()


def test_a_database_out_of_reach_is_said_and_wins_nothing() -> None:
    claim = DueClaims(f"postgresql://postgres@127.0.0.1:{refused_port()}/postgres")
    with pytest.raises(ClaimsUnavailable):
        claim(due(range(1, 2), T))
    claim.close()
