"""A chunk that cannot run (a bug, a job row it cannot read) ends its job rather than
stranding it `running`: its URLs get an `internal` error result each."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from sqlalchemy import select, update

from app.cluster.chunk import ChunkRunner
from app.cluster.results_writer import ResultsWriter
from app.db.engine import Database
from app.db.schema import jobs, results
from app.engine.checker import Checker
from app.engine.dispatcher import Dispatcher
from app.store.memory import MemoryStore
from tests.cluster.test_batch import make_job
from tests.support.engine import make_http


@pytest.fixture
def dispatcher() -> Iterator[Dispatcher]:
    http = make_http()
    built = Dispatcher(MemoryStore(max_jobs=10, max_age_s=60), Checker(http), 4, 100)
    yield built
    built.close()
    http.close()


def test_a_chunk_that_cannot_read_its_jobs_options_ends_the_job_with_internal_errors(
    migrated: Database, dispatcher: Dispatcher
) -> None:
    job_id = make_job(migrated, 5)
    with migrated.engine.begin() as connection:  # written by a version that knew another shape
        connection.execute(update(jobs).where(jobs.c.id == job_id).values(options={"method": 7}))

    writer = ResultsWriter(migrated)
    writer.start()
    try:
        ChunkRunner(migrated, dispatcher, threading.Event(), writer)(job_id, 0, 5)
    finally:
        assert writer.stop(10.0)

    with migrated.engine.connect() as connection:
        job = connection.execute(select(jobs).where(jobs.c.id == job_id)).one()
        kinds = connection.execute(
            select(results.c.error_kind).where(results.c.job_id == job_id)
        ).scalars()
        assert sorted(kinds) == ["internal"] * 5
    assert (job.status, job.completed, job.down) == ("done", 5, 5)
