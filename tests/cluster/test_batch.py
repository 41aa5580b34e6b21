"""A cluster job's batch transaction (app/cluster/batch.py) on a real PostgreSQL: dense seq
across batches, each index kept once, summary counts by JobRecord.add's rules, and the final
status as single-process mode gives it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select, update

from app.cluster.batch import mark_running, read_chunk, write_batch
from app.cluster.jobs import cancelled_result
from app.db.engine import Database
from app.db.schema import jobs, results
from app.engine.checker import unfinished_result
from app.schemas.jobs import JobStatus
from app.schemas.results import CheckResult, ErrorKind
from app.store import rows
from app.store.base import StoredResult
from tests.support.jobs import stored_options

OPTIONS = stored_options()


@pytest.fixture
def database(migrated: Database) -> Database:
    return migrated


def make_job(database: Database, total: int) -> str:
    job_id = f"job{total:04d}".ljust(32, "0")
    fields = {
        "id": job_id,
        "status": JobStatus.QUEUED,
        "total": total,
        "duplicates_removed": 0,
        "options": OPTIONS,
        "created_at": datetime.now(UTC),
    }
    urls = [f"http://127.0.0.1:9/{i}" for i in range(total)]
    with database.engine.begin() as connection:
        rows.insert_job(fields, urls, rows.CLUSTER_OWNER)(connection)
    return job_id


def up(index: int) -> StoredResult:
    return StoredResult.of(
        CheckResult(
            url=f"http://127.0.0.1:9/{index}",
            ok=True,
            outcome="up",
            status_code=200,
            checked_at=datetime.now(UTC),
        )
    )


def down(index: int) -> StoredResult:
    return StoredResult.of(
        unfinished_result(f"http://127.0.0.1:9/{index}", ErrorKind.CONNECT, "refused")
    )


def stored_rows(database: Database, job_id: str) -> list[tuple[int, int]]:
    with database.engine.connect() as connection:
        found = connection.execute(
            select(results.c.seq, results.c.idx).where(results.c.job_id == job_id)
        )
        return sorted((int(seq), int(idx)) for seq, idx in found)


def job_row(database: Database, job_id: str):  # type: ignore[no-untyped-def]
    with database.engine.connect() as connection:
        return connection.execute(select(jobs).where(jobs.c.id == job_id)).one()


def test_batches_keep_each_index_once_with_dense_seq_and_finish_the_job(
    database: Database,
) -> None:
    job_id = make_job(database, 6)
    with database.engine.begin() as connection:
        mark_running(connection, job_id)
        first = write_batch(connection, job_id, [(0, up(0)), (3, down(3))])
    assert first is not None
    assert first.kept == 2
    assert first.status is JobStatus.RUNNING
    # A chunk run again: 3 is written already, and is not kept twice.
    with database.engine.begin() as connection:
        again = write_batch(connection, job_id, [(3, down(3)), (4, up(4))])
    assert again is not None
    assert again.kept == 1
    with database.engine.begin() as connection:
        plan = read_chunk(connection, job_id, 0, 6)
    assert plan is not None
    assert [i for i, _ in plan.urls] == [1, 2, 5]
    with database.engine.begin() as connection:
        last = write_batch(connection, job_id, [(1, up(1)), (2, cancelled_result("u")), (5, up(5))])
    assert last is not None
    assert last.status is JobStatus.DONE
    assert [seq for seq, _ in stored_rows(database, job_id)] == list(range(6))
    assert sorted(idx for _, idx in stored_rows(database, job_id)) == list(range(6))
    row = job_row(database, job_id)
    assert (row.status, row.completed, row.up, row.down, row.degraded) == ("done", 6, 4, 1, 0)
    assert row.errors == {"connect": 1, "cancelled": 1}
    assert row.started_at is not None
    assert row.finished_at is not None
    # A final job takes nothing more.
    with database.engine.begin() as connection:
        late = write_batch(connection, job_id, [(0, up(0))])
    assert late is not None
    assert late.kept == 0
    with database.engine.begin() as connection:
        assert read_chunk(connection, job_id, 0, 6) is None


def test_a_job_asked_to_cancel_ends_cancelled(database: Database) -> None:
    job_id = make_job(database, 2)
    with database.engine.begin() as connection:
        write_batch(connection, job_id, [(0, up(0))])
        connection.execute(update(jobs).where(jobs.c.id == job_id).values(cancel_requested=True))
    with database.engine.begin() as connection:
        written = write_batch(connection, job_id, [(1, cancelled_result("u"))])
    assert written is not None
    assert written.cancel_requested
    assert written.status is JobStatus.CANCELLED
    row = job_row(database, job_id)
    assert (row.status, row.completed, row.up, row.down) == ("cancelled", 2, 1, 0)
