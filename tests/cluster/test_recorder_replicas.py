"""The recorder's conditional update (app/monitors/recorder.py) with several replicas
recording one monitor at once, each in its own transaction on its own connection, on a real
PostgreSQL: a confirmed state change is decided exactly once, whoever records the results."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Connection, func, select

from app.db.engine import Database, open_database
from app.db.migrator import upgrade
from app.db.schema import incidents, monitors
from app.db.url import sqlalchemy_url
from app.monitors.recorder import Transition, write_check
from app.schemas.monitoring import Outcome
from tests.support.monitors import T0, add_monitor, check

REPLICAS = 3


@pytest.fixture
def databases(pg_url: str, tmp_path: Path) -> Iterator[list[Database]]:
    opened = [open_database(sqlalchemy_url(pg_url, tmp_path)) for _ in range(REPLICAS)]
    upgrade(opened[0])
    yield opened
    for database in opened:
        database.close()


def test_replicas_recording_one_monitor_at_once_decide_each_change_once(
    databases: list[Database],
) -> None:
    monitor_id = add_monitor(databases[0], "shared", state="up", failure_threshold=2)
    lock = threading.Lock()
    transitions: list[Transition] = []
    errors: list[BaseException] = []
    rounds = 10
    barrier = threading.Barrier(REPLICAS)

    def hook(connection: Connection, transition: Transition) -> None:
        with lock:
            transitions.append(transition)

    def replica(index: int) -> None:
        # Every round, each replica records one result at the same moment: all down in the
        # even rounds, all up in the odd ones, so each round confirms exactly one change.
        try:
            for n in range(rounds):
                barrier.wait(timeout=30)
                outcome: Outcome = "down" if n % 2 == 0 else "up"
                at = T0 + timedelta(seconds=10 * n, milliseconds=index)
                with databases[index].write_engine.begin() as connection:
                    write_check(connection, monitor_id, 1, at, check(outcome, at=at), hook)
        except BaseException as exc:
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=replica, args=(i,)) for i in range(REPLICAS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    changes = [(t.from_state, t.to_state) for t in transitions]
    assert changes == [("up", "down"), ("down", "up")] * (rounds // 2)
    with databases[0].engine.connect() as connection:
        state = connection.execute(select(monitors.c.state).where(monitors.c.id == monitor_id))
        opened = connection.execute(select(func.count()).select_from(incidents)).scalar()
    assert state.scalar() == "up"
    assert opened == rounds // 2
