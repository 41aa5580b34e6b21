"""Retention on disk: finished jobs older than the age limit or beyond the newest N go, with
their URLs and results, in small batches, through the writer; jobs not final are never
deleted; SQLite gives the space back (incremental vacuum). On every backend."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, func, insert, select, update

from app.db.engine import Database, open_database
from app.db.migrator import upgrade
from app.db.retention import Pruned, RetentionLoop, prune, prune_batch
from app.db.schema import job_urls, jobs, results
from app.db.url import sqlalchemy_url
from app.db.writer import Writer
from tests.support.process import wait_until

NOW = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
CUTOFF = NOW - timedelta(days=30)
NO_COUNT_LIMIT = 1_000_000


@pytest.fixture
def db(database: Database) -> Database:
    upgrade(database)
    return database


def add_job(
    db: Database,
    job_id: str,
    *,
    status: str = "done",
    age_days: float = 0.0,
    urls: int = 2,
    body: bytes = b'{"ok": true}',
) -> None:
    created = NOW - timedelta(days=age_days, minutes=1)
    finished = None if status in ("queued", "running") else created + timedelta(seconds=30)
    done = urls if finished else 0
    with db.write_engine.begin() as connection:
        connection.execute(
            insert(jobs).values(
                id=job_id,
                status=status,
                options={},
                total=urls,
                created_at=created,
                started_at=created,
                finished_at=finished,
                completed=done,
                up=done,
                errors={},
            )
        )
        connection.execute(
            insert(job_urls),
            [{"job_id": job_id, "idx": i, "url": f"http://127.0.0.1/{i}"} for i in range(urls)],
        )
        if done:
            connection.execute(
                insert(results),
                [
                    {
                        "job_id": job_id,
                        "idx": i,
                        "seq": i,
                        "ok": True,
                        "outcome": "up",
                        "error_kind": None,
                        "body": body,
                    }
                    for i in range(done)
                ],
            )


def jid(name: str) -> str:
    return name.ljust(32, "0")


def job_ids(db: Database) -> set[str]:
    with db.engine.connect() as connection:
        return {str(i) for i in connection.execute(select(jobs.c.id)).scalars()}


def rows_of(db: Database, table: Any, job_id: str) -> int:
    with db.engine.connect() as connection:
        statement = select(func.count()).select_from(table).where(table.c.job_id == job_id)
        return int(connection.execute(statement).scalar_one())


def test_old_finished_jobs_go_with_their_urls_and_results_running_ones_stay(
    db: Database,
) -> None:
    for status in ("done", "cancelled", "interrupted"):
        add_job(db, jid(f"old{status}"), status=status, age_days=40)
        add_job(db, jid(f"new{status}"), status=status, age_days=3)
    add_job(db, jid("oldrunning"), status="running", age_days=40)
    add_job(db, jid("oldqueued"), status="queued", age_days=40)

    pruned = prune(db, older_than=CUTOFF, keep_max_jobs=NO_COUNT_LIMIT)

    assert pruned.jobs == 3
    assert job_ids(db) == {
        jid("newdone"),
        jid("newcancelled"),
        jid("newinterrupted"),
        jid("oldrunning"),
        jid("oldqueued"),
    }
    for status in ("done", "cancelled", "interrupted"):
        assert rows_of(db, results, jid(f"old{status}")) == 0
        assert rows_of(db, job_urls, jid(f"old{status}")) == 0
        assert rows_of(db, results, jid(f"new{status}")) == 2
    assert rows_of(db, job_urls, jid("oldrunning")) == 2


def test_beyond_the_newest_n_the_finished_jobs_go(db: Database) -> None:
    for n in range(10):  # job 0 is the oldest (10 days), job 9 the newest
        add_job(db, jid(f"j{n}"), age_days=10 - n)
    add_job(db, jid("running"), status="running", age_days=20)  # older than all: kept

    pruned = prune(db, older_than=CUTOFF, keep_max_jobs=4)

    # The 4 newest are kept; of the others, only the one not final stays.
    assert job_ids(db) == {jid(f"j{n}") for n in range(6, 10)} | {jid("running")}
    assert pruned.jobs == 6


def test_a_final_job_without_an_end_time_ages_by_its_creation(db: Database) -> None:
    for name, age in (("old", 40), ("new", 3)):
        add_job(db, jid(name), age_days=age)
        with db.write_engine.begin() as connection:
            connection.execute(update(jobs).where(jobs.c.id == jid(name)).values(finished_at=None))

    assert prune(db, older_than=CUTOFF, keep_max_jobs=NO_COUNT_LIMIT).jobs == 1
    assert job_ids(db) == {jid("new")}


def test_nothing_to_prune_deletes_nothing(db: Database) -> None:
    add_job(db, jid("a"), age_days=1)
    with db.write_engine.begin() as connection:
        pruned = prune_batch(connection, older_than=CUTOFF, keep_max_jobs=10)

    assert (pruned.jobs, pruned.rows, pruned.more) == (0, 0, False)
    assert job_ids(db) == {jid("a")}


def test_each_call_deletes_one_small_batch(db: Database) -> None:
    for n in range(11):
        add_job(db, jid(f"j{n:02d}"), age_days=40)
    add_job(db, jid("big"), age_days=50, urls=30)  # the oldest: more rows than a batch

    calls: list[Pruned] = []
    while True:
        with db.write_engine.begin() as connection:
            pruned = prune_batch(
                connection,
                older_than=CUTOFF,
                keep_max_jobs=NO_COUNT_LIMIT,
                batch_jobs=4,
                batch_rows=16,
            )
        calls.append(pruned)
        if not pruned.more:
            break
        assert len(calls) < 50

    assert job_ids(db) == set()
    assert all(call.jobs <= 4 for call in calls)
    assert all(call.rows <= 16 for call in calls)
    assert sum(call.jobs for call in calls) == 12
    # The big job (60 rows) took several calls of at most 16 rows each, then 11 small ones
    # (4 rows each) went 4 at a time.
    assert len(calls) >= 4 + 3


def test_through_the_writer_one_batch_per_call(db: Database) -> None:
    for n in range(9):
        add_job(db, jid(f"j{n}"), age_days=40)
    writer = Writer(db, flush_interval_s=0.02, queue_max=100).start()
    try:
        calls = 0
        while True:
            pruned = writer.submit(
                lambda c: prune_batch(c, older_than=CUTOFF, keep_max_jobs=10, batch_jobs=2)
            ).result(timeout=10)
            calls += 1
            if not pruned.more:
                break
            assert calls < 20
    finally:
        assert writer.stop(timeout_s=10)

    assert calls == 5
    assert job_ids(db) == set()


def test_the_loop_prunes_at_start_and_stops_at_once(db: Database) -> None:
    add_job(db, jid("old"), age_days=40)
    add_job(db, jid("new"), age_days=1)
    writer = Writer(db, flush_interval_s=0.02, queue_max=100).start()
    loop = RetentionLoop(
        writer.submit,
        retention_days=30,
        max_jobs=100,
        interval_s=3600,  # stop() must not wait for it
        clock=lambda: NOW,
    )
    try:
        loop.start()
        assert wait_until(lambda: job_ids(db) == {jid("new")}, timeout_s=10)
        assert wait_until(lambda: loop.last_round is not None, timeout_s=10)
        assert loop.last_round is not None
        assert loop.last_round.jobs == 1
    finally:
        assert loop.stop(timeout_s=5)
        assert writer.stop(timeout_s=10)


def test_the_loop_stops_while_the_writer_holds_its_batch(db: Database) -> None:
    # A round waits for its batch; stop() must not wait for the writer to get to it.
    writer = Writer(db, flush_interval_s=0.02, queue_max=100).start()
    gate, busy = threading.Event(), threading.Event()

    def held(connection: Connection) -> None:
        busy.set()
        gate.wait(30)

    writer.submit(held)
    assert busy.wait(10)
    loop = RetentionLoop(writer.submit, retention_days=30, max_jobs=100, interval_s=3600)
    try:
        loop.start()
        assert loop.stop(timeout_s=5)
    finally:
        gate.set()
        assert writer.stop(timeout_s=10)


@pytest.fixture
def sqlite_file(tmp_path: Path) -> Iterator[tuple[Database, Path]]:
    path = tmp_path / "urlhealth.db"
    db = open_database(sqlalchemy_url(f"sqlite:///{path}", tmp_path))
    upgrade(db)
    yield db, path
    db.close()


def pragma(db: Database, name: str) -> int:
    with db.engine.connect() as connection:
        return int(connection.exec_driver_sql(f"PRAGMA {name}").scalar_one())


def checkpoint(db: Database) -> None:
    with db.engine.connect() as connection:
        connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")


def test_sqlite_gives_the_space_back(sqlite_file: tuple[Database, Path]) -> None:
    db, path = sqlite_file
    add_job(db, jid("keep"), age_days=1, urls=5, body=b"k" * 5000)
    for n in range(4):
        add_job(db, jid(f"old{n}"), age_days=40, urls=100, body=b"x" * 5000)
    checkpoint(db)
    size_before, pages_before = path.stat().st_size, pragma(db, "page_count")

    # Deleting alone leaves the pages on the freelist: the file does not shrink.
    with db.write_engine.begin() as connection:
        deleted = prune_batch(
            connection, older_than=CUTOFF, keep_max_jobs=NO_COUNT_LIMIT, vacuum_pages=0
        )
    assert deleted.jobs == 4
    free = pragma(db, "freelist_count")
    assert free > 500  # 400 results of 5 KB

    with db.write_engine.begin() as connection:
        some = prune_batch(
            connection, older_than=CUTOFF, keep_max_jobs=NO_COUNT_LIMIT, vacuum_pages=100
        )
    assert some.pages == 100
    assert pragma(db, "freelist_count") == free - 100

    rest = prune(db, older_than=CUTOFF, keep_max_jobs=NO_COUNT_LIMIT)
    assert rest.pages == free - 100
    assert pragma(db, "freelist_count") == 0
    assert pragma(db, "page_count") <= pages_before - free
    checkpoint(db)
    assert path.stat().st_size < size_before / 2
    assert job_ids(db) == {jid("keep")}
    assert rows_of(db, results, jid("keep")) == 5
