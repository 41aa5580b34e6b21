"""The queue's worker (app/cluster/queue.py) on a real PostgreSQL: a worker that stops on an
error starts again by itself, says why meanwhile, and then takes tasks."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.cluster.queue import TaskQueue, TaskSpec
from app.db.engine import Database, open_database
from app.db.migrator import upgrade
from app.db.url import sqlalchemy_url
from tests.support.process import wait_until


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
