"""The queue (app/cluster/queue.py) on a real PostgreSQL: a worker that stops on an error
starts again by itself, says why meanwhile, and then takes tasks; ended tasks are pruned."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import pytest
from sqlalchemy import Connection, text

from app.cluster.queue import TaskQueue, TaskSpec
from app.cluster.retention import QueueRetention
from app.db.engine import Database, open_database
from app.db.migrator import upgrade
from app.db.retention import Pruned, RunBatch
from app.db.url import sqlalchemy_url
from tests.support.process import wait_until

T = TypeVar("T")


@pytest.fixture
def empty(pg_url: str, tmp_path: Path) -> Iterator[Database]:
    database = open_database(sqlalchemy_url(pg_url, tmp_path))
    yield database
    database.close()


def test_a_worker_that_failed_restarts_by_itself_and_then_takes_tasks(empty: Database) -> None:
    ran = threading.Event()
    queue = TaskQueue(empty.url, [TaskSpec("urlhealth.test", lambda: ran.set())])
    queue.open()  # before the worker, as a replica does (app/cluster/replica.py)
    # No schema yet: procrastinate cannot register its worker, so the worker fails.
    queue.start_worker(concurrency=1, lease_s=6.0, name="restarting")
    try:
        assert wait_until(lambda: queue.worker_failure is not None, 20.0)
        assert "restarting" in (queue.worker_failure or "")

        upgrade(empty)  # the schema arrives (another replica migrated it)

        assert wait_until(lambda: queue.worker_failure is None, 30.0)
        queue.defer("urlhealth.test", [{}])
        assert ran.wait(20.0)
    finally:
        assert queue.stop_worker(20.0)
        queue.close()


def test_ended_tasks_are_pruned_once_old_and_waiting_ones_never(migrated: Database) -> None:
    queue = TaskQueue(migrated.url, [TaskSpec("urlhealth.test", lambda: None)]).open()
    try:
        waiting, cancelled = queue.defer("urlhealth.test", [{}, {}])
        assert queue.cancel([cancelled]) == [cancelled]
        now = datetime.now(UTC)
        run = _runner(migrated)

        assert QueueRetention(days=1.0)(now, run) == Pruned(rows=0)  # ended just now: kept
        assert QueueRetention(days=1.0)(now + timedelta(days=2), run) == Pruned(rows=1)

        with migrated.engine.connect() as connection:
            left = connection.execute(text("SELECT id, status FROM procrastinate_jobs")).all()
        assert [(row.id, row.status) for row in left] == [(waiting, "todo")]
    finally:
        queue.close()


def _runner(database: Database) -> RunBatch:
    def run(write: Callable[[Connection], T]) -> T:
        with database.engine.begin() as connection:
            return write(connection)

    return run
