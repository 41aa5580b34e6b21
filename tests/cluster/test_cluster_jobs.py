"""Submitting and cancelling a cluster job (app/cluster/jobs.py) on a real PostgreSQL, with
no worker: admission counts the whole cluster's unfinished checks; a job is kept with its
chunk tasks; a cancel before any chunk started ends every URL `cancelled` through the queue;
crash recovery leaves a cluster's jobs to the queue."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import select

from app.cluster.jobs import CHUNK_TASK, ClusterJobs
from app.cluster.queue import TaskQueue
from app.db.engine import Database
from app.db.schema import results
from app.engine.ledger import Overloaded
from app.schemas.jobs import JobStatus
from app.store.recovery import orphaned_jobs
from tests.support.jobs import stored_options

OPTIONS = stored_options()


@pytest.fixture
def database(migrated: Database) -> Database:
    return migrated


@pytest.fixture
def queue(database: Database) -> Iterator[TaskQueue]:
    opened = TaskQueue(database.url).open()
    yield opened
    opened.close()


def urls(count: int) -> list[str]:
    return [f"http://127.0.0.1:9/{i}" for i in range(count)]


def test_admission_counts_the_unfinished_checks_of_the_whole_cluster(
    database: Database, queue: TaskQueue
) -> None:
    # Two replicas' views of one database: what one admitted, the other counts.
    first = ClusterJobs(database, queue, max_queued=250, chunk_size=40)
    second = ClusterJobs(database, queue, max_queued=250, chunk_size=40)
    header = first.submit(urls(200), OPTIONS)
    assert header.status is JobStatus.QUEUED
    assert header.total == 200
    with database.engine.connect() as connection:
        chunks = queue.waiting(connection, CHUNK_TASK, "job_id", header.id)
    assert sorted((a["start"], a["stop"]) for _, a in chunks) == [
        (0, 40),
        (40, 80),
        (80, 120),
        (120, 160),
        (160, 200),
    ]
    with pytest.raises(Overloaded):
        second.submit(urls(51), OPTIONS)
    assert second.submit(urls(50), OPTIONS).total == 50


def test_a_cancel_before_any_chunk_started_ends_every_url_cancelled(
    database: Database, queue: TaskQueue
) -> None:
    jobs = ClusterJobs(database, queue, max_queued=1000, chunk_size=30)
    job_id = jobs.submit(urls(100), OPTIONS).id
    header = jobs.cancel(job_id)
    assert header.status is JobStatus.CANCELLED
    assert header.completed == 100
    assert header.summary.cancelled == 100
    with database.engine.connect() as connection:
        assert queue.waiting(connection, CHUNK_TASK, "job_id", job_id) == []
        seqs = sorted(s for (s,) in connection.execute(select(results.c.seq)))
    assert seqs == list(range(100))
    # A cancel of a final job changes nothing.
    assert jobs.cancel(job_id).completed == 100


def test_recovery_leaves_a_clusters_jobs_to_the_queue(database: Database, queue: TaskQueue) -> None:
    job_id = ClusterJobs(database, queue, 1000, 100).submit(urls(3), OPTIONS).id
    with database.engine.connect() as connection:
        assert job_id not in orphaned_jobs(connection, "me", 30.0, keep_cluster=True)
        # A single process on the same database: no worker will run it; it finalises it.
        assert job_id in orphaned_jobs(connection, "me", 30.0, keep_cluster=False)
