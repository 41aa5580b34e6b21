"""The per-process writer of chunks' results (app/cluster/results_writer.py) on a real
PostgreSQL: two writers (two worker processes) on one job at once keep each index once with
a dense seq and the right counts; a result written concurrently between a writer's read and
its lock is not kept twice; the cancel flag reaches the chunk; the database restarted is
waited for; a stopped writer hands batches back."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path

import pytest
from sqlalchemy import text, update

from app.cluster.batch import Written, write_batch
from app.cluster.group_write import MAX_ROWS
from app.cluster.jobs import cancelled_result
from app.cluster.queue import HandBack
from app.cluster.results_writer import ResultsWriter
from app.db.engine import Database, open_database
from app.db.migrator import upgrade
from app.db.schema import jobs
from app.db.url import sqlalchemy_url
from app.schemas.jobs import JobStatus
from app.store.base import StoredResult
from tests.cluster.test_batch import down, job_row, make_job, stored_rows, up
from tests.support.postgres import PostgresServer, own_server
from tests.support.process import wait_until


@pytest.fixture
def writers(migrated: Database, pg_url: str, tmp_path: Path) -> Iterator[list[ResultsWriter]]:
    """Two writers, each on an engine of its own, as two worker processes have."""
    other = open_database(sqlalchemy_url(pg_url, tmp_path))
    started = [ResultsWriter(migrated), ResultsWriter(other)]
    for writer in started:
        writer.start()
    yield started
    for writer in started:
        assert writer.stop(10.0)
    other.close()


def hand_in(writer: ResultsWriter, job_id: str, indexes: range, step: int) -> list[Written | None]:
    """As a chunk does: a batch at a time, each committed before the next."""
    done = []
    for low in range(indexes.start, indexes.stop, step):
        batch = [(i, result(i)) for i in range(low, min(low + step, indexes.stop))]
        done.append(writer.write(job_id, batch).result(timeout=60))
    return done


def result(index: int) -> StoredResult:
    """Down (connect) for multiples of 3, cancelled for other multiples of 7, else up."""
    if index % 3 == 0:
        return down(index)
    return cancelled_result(f"u{index}") if index % 7 == 0 else up(index)


def test_two_writers_on_one_job_keep_each_index_once_with_a_dense_seq(
    migrated: Database, writers: list[ResultsWriter]
) -> None:
    total = 400
    job_id = make_job(migrated, total)
    # Eight chunks, four per writer; chunks 0-1 run twice (a chunk re-run on the other
    # worker while the first still wrote): their indexes are kept once.
    chunks = [(writers[c % 2], range(c * 50, c * 50 + 50)) for c in range(8)]
    chunks += [(writers[1], range(0, 50)), (writers[0], range(50, 100))]
    threads = [
        threading.Thread(target=hand_in, args=(writer, job_id, indexes, 7))
        for writer, indexes in chunks
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    kept = stored_rows(migrated, job_id)
    assert [seq for seq, _ in kept] == list(range(total))
    assert sorted(idx for _, idx in kept) == list(range(total))
    row = job_row(migrated, job_id)
    downs = len([i for i in range(total) if i % 3 == 0])
    cancelled = len([i for i in range(total) if i % 3 and i % 7 == 0])
    ups = total - downs - cancelled
    assert (row.status, row.completed, row.up, row.down) == ("done", total, ups, downs)
    assert row.errors == {"connect": downs, "cancelled": cancelled}


def test_a_result_kept_between_the_read_and_the_lock_is_not_kept_twice(
    migrated: Database, writers: list[ResultsWriter]
) -> None:
    job_id = make_job(migrated, 3)
    with migrated.engine.begin() as other:  # another writer, holding the lock, keeps 1
        write_batch(other, job_id, [(1, up(1))])
        future = writers[1].write(job_id, [(0, up(0)), (1, up(1)), (2, up(2))])
        # The writer read (1 not yet committed) and waits for the job's row lock.
        assert wait_until(lambda: waiting_on_a_lock(migrated), 30.0)
        assert not future.done()
    written = future.result(timeout=30)
    assert written is not None
    assert written.kept == 2
    assert written.status is JobStatus.DONE
    assert stored_rows(migrated, job_id) == [(0, 1), (1, 0), (2, 2)]
    assert job_row(migrated, job_id).up == 3


def waiting_on_a_lock(database: Database) -> bool:
    with database.engine.connect() as connection:
        found = connection.execute(
            text(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE wait_event_type = 'Lock' AND datname = current_database()"
            )
        ).scalar_one()
    return bool(found)


def test_a_rewritten_index_is_ignored_and_the_cancel_flag_reaches_the_chunk(
    migrated: Database, writers: list[ResultsWriter]
) -> None:
    writer = writers[0]
    job_id = make_job(migrated, 4)
    first = writer.write(job_id, [(0, up(0)), (1, up(1))]).result(timeout=30)
    assert first == Written(2, False, JobStatus.RUNNING)
    with migrated.engine.begin() as connection:
        connection.execute(update(jobs).where(jobs.c.id == job_id).values(cancel_requested=True))
    again = writer.write(job_id, [(1, down(1)), (2, up(2))]).result(timeout=30)
    assert again == Written(1, True, JobStatus.RUNNING)
    last = writer.write(job_id, [(3, up(3))]).result(timeout=30)
    assert last == Written(1, True, JobStatus.CANCELLED)
    assert stored_rows(migrated, job_id) == [(0, 0), (1, 1), (2, 2), (3, 3)]
    row = job_row(migrated, job_id)
    assert (row.status, row.up, row.down) == ("cancelled", 4, 0)
    # A final job takes nothing more; a job that is gone gives None.
    assert writer.write(job_id, [(0, down(0))]).result(timeout=30) == Written(
        0, True, JobStatus.CANCELLED
    )
    assert writer.write("gone".ljust(32, "0"), [(0, up(0))]).result(timeout=30) is None


def test_a_stopped_writer_writes_what_it_had_and_hands_back_what_comes_after(
    migrated: Database,
) -> None:
    writer = ResultsWriter(migrated)
    job_id = make_job(migrated, 2)
    handed = writer.write(job_id, [(0, up(0))])  # before start: written once it runs
    writer.start()
    assert writer.stop(10.0)
    assert handed.result(timeout=0) == Written(1, False, JobStatus.RUNNING)
    with pytest.raises(HandBack):
        writer.write(job_id, [(1, up(1))]).result(timeout=0)


@pytest.fixture
def own_postgres() -> Iterator[PostgresServer]:
    """A server of this test's own: it is restarted under the writer."""
    server = own_server(ci=os.environ.get("CI") == "true")
    yield server
    server.remove()


def test_batches_wait_for_the_database_restarted(
    own_postgres: PostgresServer, tmp_path: Path
) -> None:
    database = open_database(sqlalchemy_url(own_postgres.url(), tmp_path))
    upgrade(database)
    writer = ResultsWriter(database)
    writer.start()
    try:
        job_id = make_job(database, 2)
        futures: list[Future[Written | None]] = []
        with own_postgres.stopped():
            futures.append(writer.write(job_id, [(0, up(0))]))
            futures.append(writer.write(job_id, [(1, up(1))]))
            assert not threading.Event().wait(0.5)  # retried meanwhile, not failed
            assert not any(future.done() for future in futures)
        assert all(f.result(timeout=60) is not None for f in futures)
        assert job_row(database, job_id).status == "done"
        assert [seq for seq, _ in stored_rows(database, job_id)] == [0, 1]
    finally:
        assert writer.stop(10.0)
        database.close()


def test_a_group_larger_than_one_statement_is_kept_dense_in_several(
    migrated: Database, writers: list[ResultsWriter]
) -> None:
    total = MAX_ROWS + 200  # as after the database was away a while
    job_id = make_job(migrated, total)
    written = writers[0].write(job_id, [(i, result(i)) for i in range(total)]).result(timeout=60)
    assert written is not None
    assert (written.kept, written.status) == (total, JobStatus.DONE)
    assert [seq for seq, _ in stored_rows(migrated, job_id)] == list(range(total))
    row = job_row(migrated, job_id)
    assert row.completed == total
    assert sum(row.errors.values()) + row.up == total
