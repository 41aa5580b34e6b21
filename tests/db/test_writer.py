"""The writer thread: batched commits, futures for outcomes, a bounded queue, a flush at stop,
one failing write failing alone. On every backend."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import Future

import pytest
from sqlalchemy import Connection, Insert, event, func, select
from sqlalchemy.exc import IntegrityError

from app.db.engine import Database
from app.db.migrator import upgrade
from app.db.schema import jobs, results
from app.db.writer import Writer, WriterClosed, WriterFull
from tests.support.dbrows import add_job, result_row
from tests.support.process import wait_until


@pytest.fixture
def db(database: Database) -> Database:
    upgrade(database)
    return database


@pytest.fixture
def commits(db: Database) -> list[int]:
    """One entry per committed transaction on the database."""
    seen: list[int] = []
    event.listen(db.engine, "commit", lambda _conn: seen.append(1))
    return seen


@pytest.fixture
def writers() -> Iterator[list[Writer]]:
    started: list[Writer] = []
    yield started
    for writer in started:
        writer.stop(timeout_s=30)


def job_count(db: Database) -> int:
    with db.engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(jobs)).scalar_one())


def test_submit_returns_the_outcome_once_committed(
    db: Database, writers: list[Writer], commits: list[int]
) -> None:
    writer = Writer(db, flush_interval_s=5.0, queue_max=100).start()
    writers.append(writer)

    # Someone waits: the batch commits now, not after the 5 s flush interval.
    outcome = writer.submit(add_job("a" * 32)).result(timeout=4.0)

    assert outcome == "a" * 32
    assert job_count(db) == 1
    assert len(commits) == 1


def test_many_writes_share_a_commit(
    db: Database, writers: list[Writer], commits: list[int]
) -> None:
    writer = Writer(db, flush_interval_s=0.05, queue_max=1000).start()
    writers.append(writer)
    gate, busy = threading.Event(), threading.Event()

    def held(connection: Connection) -> None:
        busy.set()
        gate.wait(30)

    first = writer.submit(held)
    assert busy.wait(30)
    for n in range(200):  # queued while the first batch is being written
        writer.put(add_job(f"{n:032d}"))
    gate.set()
    first.result(timeout=30)
    assert writer.stop(timeout_s=30)

    assert job_count(db) == 200
    assert len(commits) == 2  # the held write's batch, then all 200 together
    assert writer.stats().written == 201


def test_puts_reach_the_database_without_a_stop(db: Database, writers: list[Writer]) -> None:
    writer = Writer(db, flush_interval_s=0.1, queue_max=100).start()
    writers.append(writer)

    writer.put(add_job("b" * 32))

    assert wait_until(lambda: job_count(db) == 1, timeout_s=10)


def test_a_failing_write_fails_alone(db: Database, writers: list[Writer]) -> None:
    writer = Writer(db, flush_interval_s=0.05, queue_max=100).start()
    writers.append(writer)
    gate, busy = threading.Event(), threading.Event()

    def held(connection: Connection) -> None:
        busy.set()
        gate.wait(30)

    writer.submit(held)
    assert busy.wait(30)
    good: list[Future[str]] = [writer.submit(add_job(f"{n:032d}")) for n in range(3)]
    duplicate = writer.submit(add_job(f"{1:032d}"))  # same key as good[1]: in one batch
    writer.put(add_job(f"{2:032d}"))  # fire-and-forget, fails too: counted
    gate.set()

    assert [f.result(timeout=30) for f in good] == [f"{n:032d}" for n in range(3)]
    with pytest.raises(IntegrityError):
        duplicate.result(timeout=30)
    assert writer.stop(timeout_s=30)
    assert job_count(db) == 3
    assert writer.stats().failed == 2


def test_a_full_queue_refuses_at_once(db: Database) -> None:
    writer = Writer(db, flush_interval_s=0.05, queue_max=2)  # not started: nothing drains

    writer.put(add_job("1" * 32))
    writer.put(add_job("2" * 32))
    with pytest.raises(WriterFull, match="2 writes are waiting"):
        writer.put(add_job("3" * 32))
    with pytest.raises(WriterFull):
        writer.submit(add_job("3" * 32))
    assert writer.stats().queued == 2


def test_stop_flushes_everything_queued_then_refuses(db: Database) -> None:
    writer = Writer(db, flush_interval_s=10.0, queue_max=1000).start()
    for n in range(50):
        writer.put(add_job(f"{n:032d}"))

    # The writer may be waiting out its 10 s interval for company: stop must not wait for it.
    assert writer.stop(timeout_s=8.0)

    assert job_count(db) == 50
    with pytest.raises(WriterClosed):
        writer.put(add_job("x" * 32))


def test_a_cancelled_submit_is_not_written(db: Database, writers: list[Writer]) -> None:
    writer = Writer(db, flush_interval_s=0.05, queue_max=100).start()
    writers.append(writer)
    gate, busy = threading.Event(), threading.Event()

    def held(connection: Connection) -> None:
        busy.set()
        gate.wait(30)

    writer.submit(held)
    assert busy.wait(30)
    cancelled = writer.submit(add_job("c" * 32))
    assert cancelled.cancel()
    kept = writer.submit(add_job("d" * 32))
    gate.set()

    assert kept.result(timeout=30) == "d" * 32
    assert job_count(db) == 1


def test_consecutive_rows_for_a_table_go_in_one_statement_in_order(
    db: Database, writers: list[Writer]
) -> None:
    writer = Writer(db, flush_interval_s=0.05, queue_max=1000).start()
    writers.append(writer)
    inserts: list[str] = []

    def seen(conn: Connection, clause: object, *args: object) -> None:
        if isinstance(clause, Insert):
            inserts.append(clause.table.name)

    gate, busy = threading.Event(), threading.Event()

    def held(connection: Connection) -> None:
        busy.set()
        gate.wait(30)

    writer.submit(held)
    assert busy.wait(30)
    event.listen(db.engine, "before_execute", seen)
    for job_id, count in (("j" * 32, 100), ("k" * 32, 10)):
        writer.put(add_job(job_id))  # the job first: its results refer to it
        for idx in range(count):
            writer.put_row(results, result_row(job_id, idx))
    gate.set()
    assert writer.stop(timeout_s=30)

    assert inserts == ["jobs", "results", "jobs", "results"]
    with db.engine.connect() as connection:
        rows = connection.execute(
            select(results.c.job_id, func.count()).group_by(results.c.job_id)
        ).all()
    counts = {str(job_id): int(count) for job_id, count in rows}

    assert counts == {"j" * 32: 100, "k" * 32: 10}


def test_a_bad_row_fails_alone(db: Database, writers: list[Writer]) -> None:
    writer = Writer(db, flush_interval_s=0.05, queue_max=1000).start()
    writers.append(writer)
    gate, busy = threading.Event(), threading.Event()

    def held(connection: Connection) -> None:
        busy.set()
        gate.wait(30)

    writer.submit(add_job("j" * 32)).result(timeout=30)
    writer.submit(held)
    assert busy.wait(30)
    for idx in (0, 1, 2, 1, 3):  # the second 1 is a duplicate key
        writer.put_row(results, result_row("j" * 32, idx))
    gate.set()
    assert writer.stop(timeout_s=30)

    with db.engine.connect() as connection:
        kept = sorted(connection.execute(select(results.c.idx)).scalars())
    assert kept == [0, 1, 2, 3]
    assert writer.stats().failed == 1
