"""The writer while the database is away: a batch that fails because the database cannot be
reached or written is kept and retried with backoff, new writes queue up to the bound, the
health flag says so, and when the database returns everything lands, in order. A bad write
still fails alone. stop() gives up after its timeout, counting and failing what is left.

Real faults: SQLite made "full" (`PRAGMA max_page_count`) or read-only (`PRAGMA
query_only`) on the connections the writer checks out; a real PostgreSQL server stopped and
started again."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, event, func, insert, select, text
from sqlalchemy.exc import DBAPIError, OperationalError

from app.db.engine import Database, open_database
from app.db.faults import describe, is_outage
from app.db.migrator import upgrade
from app.db.schema import jobs, results
from app.db.url import sqlalchemy_url
from app.db.writer import Writer, WriterFull, WriterGaveUp
from tests.support.dbfaults import SqliteFault
from tests.support.dbrows import T0, add_job, result_row
from tests.support.postgres import PostgresServer
from tests.support.process import wait_until

BIG = b"x" * 6000  # a result body larger than a page: every insert needs new pages


@pytest.fixture(params=("memory", "sqlite"))
def sqlite_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    url = "memory://" if request.param == "memory" else f"sqlite:///{tmp_path / 'u.db'}"
    db = open_database(sqlalchemy_url(url, tmp_path))
    upgrade(db)
    yield db
    db.close()


@pytest.fixture
def writers() -> Iterator[list[Writer]]:
    started: list[Writer] = []
    yield started
    for writer in started:
        writer.stop(timeout_s=5)


def ordered_job(n: int) -> Callable[[Connection], None]:
    """Job n records how many jobs were committed before it: n, if writes land in order."""

    def write(connection: Connection) -> None:
        before = connection.execute(select(func.count()).select_from(jobs)).scalar_one()
        connection.execute(
            insert(jobs).values(
                id=f"{n:032d}", status="done", options={}, total=before, created_at=T0, errors={}
            )
        )

    return write


def count(db: Database, table: Any) -> int:
    with db.engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(table)).scalar_one())


@pytest.mark.parametrize("mode", ["full", "readonly"])
def test_writes_queued_while_sqlite_cannot_write_all_land_afterwards(
    sqlite_db: Database, writers: list[Writer], mode: str
) -> None:
    outage_then_return(sqlite_db, writers, mode)


def test_writes_queued_while_sqlite_is_reopened_read_only_all_land_afterwards(
    tmp_path: Path, writers: list[Writer]
) -> None:
    # An SQLite file only: an in-memory database cannot be opened again.
    db = open_database(sqlalchemy_url(f"sqlite:///{tmp_path / 'u.db'}", tmp_path))
    try:
        upgrade(db)
        outage_then_return(db, writers, "reopen")
    finally:
        for writer in writers:
            writer.stop(timeout_s=5)
        db.close()


def outage_then_return(db: Database, writers: list[Writer], mode: str) -> None:
    fault = SqliteFault(db)
    writer = Writer(db, flush_interval_s=0.02, queue_max=1000, retry_max_delay_s=0.2).start()
    writers.append(writer)
    job = "j" * 32
    writer.submit(add_job(job)).result(timeout=10)
    assert writer.healthy
    assert writer.last_error is None

    fault.mode = mode
    writer.put_row(results, result_row(job, 0, BIG))
    assert wait_until(lambda: not writer.healthy, timeout_s=10)
    reason = writer.last_error
    assert reason is not None
    assert ("full" if mode == "full" else "readonly") in reason
    outcome = writer.submit(add_job("k" * 32))
    for idx in range(1, 50):  # queued while the database cannot be written
        writer.put_row(results, result_row(job, idx, BIG))
    assert wait_until(lambda: writer.stats().behind_s > 0.2, timeout_s=10)
    assert not outcome.done()
    assert count(db, results) == 0

    fault.mode = "none"
    assert outcome.result(timeout=15) == "k" * 32
    assert wait_until(lambda: count(db, results) == 50, timeout_s=15)
    assert wait_until(lambda: writer.healthy, timeout_s=10)
    stats = writer.stats()
    assert (stats.failed, stats.dropped, stats.behind_s) == (0, 0, 0.0)
    assert writer.last_error is None


def test_a_bad_write_fails_alone_and_is_not_retried(
    database: Database, writers: list[Writer]
) -> None:
    # SQLite reports a missing table as an OperationalError too: it is not an outage.
    upgrade(database)
    writer = Writer(database, flush_interval_s=0.02, queue_max=100).start()
    writers.append(writer)

    bad = writer.submit(lambda c: c.execute(text("INSERT INTO nowhere VALUES (1)")))
    good = writer.submit(add_job("g" * 32))

    with pytest.raises(DBAPIError, match="nowhere"):
        bad.result(timeout=10)
    assert good.result(timeout=10) == "g" * 32
    assert writer.healthy
    assert writer.stats().failed == 1


def test_a_full_buffer_refuses_and_counts_what_it_drops(
    sqlite_db: Database, writers: list[Writer]
) -> None:
    fault = SqliteFault(sqlite_db)
    writer = Writer(sqlite_db, flush_interval_s=0.02, queue_max=5, retry_max_delay_s=0.2).start()
    writers.append(writer)
    fault.mode = "readonly"
    writer.put(add_job("0" * 32))  # the writer takes it, fails, and holds it for a retry
    assert wait_until(lambda: not writer.healthy, timeout_s=10)

    for n in range(1, 6):
        writer.put(add_job(f"{n:032d}"))
    with pytest.raises(WriterFull):
        writer.put(add_job("6" * 32))  # fire-and-forget: lost, so counted
    with pytest.raises(WriterFull):
        writer.submit(add_job("7" * 32))  # the caller is told (429): not counted
    assert writer.stats().dropped == 1

    fault.mode = "none"
    assert wait_until(lambda: count(sqlite_db, jobs) == 6, timeout_s=15)
    assert writer.stats().dropped == 1


def test_stop_gives_up_after_its_timeout_and_fails_what_is_left(
    sqlite_db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    fault = SqliteFault(sqlite_db)
    writer = Writer(sqlite_db, flush_interval_s=0.02, queue_max=100, retry_max_delay_s=0.2)
    writer.start()
    fault.mode = "readonly"
    pending: list[Future[str]] = [writer.submit(add_job(f"{n:032d}")) for n in range(4)]
    for n in range(4, 10):
        writer.put(add_job(f"{n:032d}"))
    assert wait_until(lambda: not writer.healthy, timeout_s=10)

    started = time.monotonic()
    with caplog.at_level(logging.ERROR, logger="app.db.writer"):
        assert not writer.stop(timeout_s=1.0)
    assert time.monotonic() - started < 8  # the timeout plus a little, never forever

    for future in pending:
        with pytest.raises(WriterGaveUp):
            future.result(timeout=5)
    assert writer.stats().dropped == 10
    assert "10 writes" in caplog.text
    assert not writer.stop(timeout_s=1.0)  # asked again: it still did not write them
    fault.mode = "none"
    assert count(sqlite_db, jobs) == 0


def test_stop_with_a_healthy_database_still_writes_everything(sqlite_db: Database) -> None:
    writer = Writer(sqlite_db, flush_interval_s=0.02, queue_max=1000).start()
    for n in range(200):
        writer.put(add_job(f"{n:032d}"))

    assert writer.stop(timeout_s=15)
    assert count(sqlite_db, jobs) == 200
    assert writer.stats().dropped == 0


def test_a_reason_never_shows_the_password() -> None:
    url = sqlalchemy_url("postgresql://u:s3cret-pw@127.0.0.1:1/db", Path("."))
    echoed = OperationalError("SELECT 1", {}, Exception("auth failed for s3cret-pw\nmore"))

    assert describe(echoed, url) == (
        "database postgresql+psycopg://u:***@127.0.0.1:1/db: auth failed for ***"
    )
    assert is_outage(echoed)  # an unknown driver's OperationalError: taken for an outage


def test_postgres_stopped_mid_stream_loses_nothing(
    postgres: PostgresServer, tmp_path: Path
) -> None:
    name = postgres.create_database()
    url = postgres.url(name, password="s3cret-pw")  # trust auth: accepted, never shown
    db = open_database(sqlalchemy_url(url, tmp_path))
    writer = Writer(db, flush_interval_s=0.02, queue_max=10_000, retry_max_delay_s=0.5)
    done, put = threading.Event(), [0]

    def stream() -> None:  # a write every 10 ms, before, during and after the outage
        while put[0] < 3000 and not done.wait(0.01):
            writer.put(ordered_job(put[0]))
            put[0] += 1

    producer = threading.Thread(target=stream)
    try:
        upgrade(db)
        writer.start()
        producer.start()
        assert wait_until(lambda: count(db, jobs) >= 20, timeout_s=10)

        postgres.stop_server()
        try:
            assert wait_until(lambda: not writer.healthy, timeout_s=10)
            reason = writer.last_error or ""
            assert reason
            assert "s3cret-pw" not in reason
            assert db.masked_url in reason
            threading.Event().wait(2)  # away for a few seconds
            assert writer.stats().behind_s > 1
        finally:
            postgres.start()
        assert wait_until(lambda: writer.healthy, timeout_s=15)
        threading.Event().wait(0.3)  # a few more after the return
        done.set()
        producer.join(10)

        assert wait_until(lambda: count(db, jobs) == put[0], timeout_s=20)
        with db.engine.connect() as connection:
            rows = connection.execute(select(jobs.c.id, jobs.c.total)).all()
        assert sorted((int(i), int(t)) for i, t in rows) == [(n, n) for n in range(put[0])]
        stats = writer.stats()
        assert (stats.failed, stats.dropped) == (0, 0)
    finally:
        done.set()
        if producer.is_alive():
            producer.join(10)
        writer.stop(timeout_s=5)
        db.close()
        postgres.drop_database(name)


def test_stop_gives_up_while_postgres_is_away(postgres: PostgresServer, tmp_path: Path) -> None:
    name = postgres.create_database()
    db = open_database(sqlalchemy_url(postgres.url(name), tmp_path))
    try:
        upgrade(db)
        writer = Writer(db, flush_interval_s=0.02, queue_max=100, retry_max_delay_s=0.2)
        writer.start()
        postgres.stop_server()
        try:
            pending = [writer.submit(add_job(f"{n:032d}")) for n in range(3)]
            assert wait_until(lambda: not writer.healthy, timeout_s=10)
            assert not writer.stop(timeout_s=1.0)
            for future in pending:
                with pytest.raises(WriterGaveUp):
                    future.result(timeout=10)
            assert writer.stats().dropped == 3
        finally:
            postgres.start()
    finally:
        db.close()
        postgres.drop_database(name)


def test_stop_of_a_writer_never_started_fails_what_was_queued(sqlite_db: Database) -> None:
    writer = Writer(sqlite_db, flush_interval_s=0.02, queue_max=100)
    pending = [writer.submit(add_job(f"{n:032d}")) for n in range(2)]
    writer.put(add_job("p" * 32))

    assert not writer.stop(timeout_s=1.0)

    for future in pending:
        with pytest.raises(WriterGaveUp):
            future.result(timeout=1)
    assert writer.stats().dropped == 3


def test_retries_back_off_up_to_the_cap(sqlite_db: Database, writers: list[Writer]) -> None:
    fault = SqliteFault(sqlite_db)
    attempts: list[float] = []
    event.listen(sqlite_db.engine, "handle_error", lambda _ctx: attempts.append(time.monotonic()))
    writer = Writer(sqlite_db, flush_interval_s=0.02, queue_max=100, retry_max_delay_s=0.4)
    writers.append(writer.start())
    fault.mode = "readonly"

    outcome = writer.submit(add_job("b" * 32))
    threading.Event().wait(3.5)
    fault.mode = "none"
    assert outcome.result(timeout=10) == "b" * 32

    gaps = [later - earlier for earlier, later in pairwise(attempts)]
    # Not a tight loop: the waits double (0.05, 0.1, 0.2, 0.4 s) ...
    assert 4 <= len(attempts) <= 20
    assert gaps[0] < gaps[3]
    # ... and stop at the cap (uncapped, one would be 1.6 s within 3.5 s).
    assert max(gaps) < 1.2
