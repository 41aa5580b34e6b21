"""Following monitor changes made on other replicas (app/monitors/follow.py), against a real
PostgreSQL: a wake-up with a monitor's id reloads that monitor as stored; the periodic
resync, with no wake-up at all, finds rows changed, added, paused and deleted behind its
back by their stamps and brings the schedule in step."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

import pytest
from sqlalchemy import delete, insert, update

from app.db.engine import Database, open_database
from app.db.migrator import upgrade
from app.db.schema import monitors
from app.db.url import sqlalchemy_url
from app.monitors.definition import MonitorRecord
from app.monitors.follow import CHANNEL, Follower
from app.monitors.service import Monitors
from tests.support.monitor_rows import T0, monitor_row
from tests.support.process import wait_until


class Schedule:
    """What the follower drives of the facade: `later` (one thread, in turn) and
    `schedule_stored`; keeps the schedule as {id: url}."""

    def __init__(self) -> None:
        self._changes = ThreadPoolExecutor(max_workers=1)
        self._lock = threading.Lock()
        self.scheduled: dict[int, str] = {}

    def later(self, work: Callable[[], None]) -> bool:
        self._changes.submit(work)
        return True

    def schedule_stored(self, monitor_id: int, record: MonitorRecord | None) -> None:
        with self._lock:
            if record is None or record.paused:
                self.scheduled.pop(monitor_id, None)
            else:
                self.scheduled[monitor_id] = record.url

    def now(self) -> dict[int, str]:
        with self._lock:
            return dict(self.scheduled)


@pytest.fixture
def database(pg_url: str, tmp_path: Path) -> Iterator[Database]:
    opened = open_database(sqlalchemy_url(pg_url, tmp_path))
    upgrade(opened)
    with opened.engine.begin() as connection:
        connection.execute(
            insert(monitors), [monitor_row(i, f"http://127.0.0.1:9/{i}") for i in (1, 2, 3)]
        )
    yield opened
    opened.close()


def write(database: Database, statement: Any) -> None:
    with database.engine.begin() as connection:
        connection.execute(statement)


def test_wake_ups_and_the_periodic_resync_keep_the_schedule_as_stored(database: Database) -> None:
    schedule = Schedule()
    subscribed: list[str] = []

    def subscribe(channel: str, callback: Callable[[str], None]) -> Callable[[], None]:
        subscribed.append(channel)
        return lambda: None

    follower = Follower(database, cast(Monitors, schedule), subscribe, resync_s=0.5)
    follower.start()
    try:
        assert subscribed == [CHANNEL]
        everything = {i: f"http://127.0.0.1:9/{i}" for i in (1, 2, 3)}
        assert wait_until(lambda: schedule.now() == everything, 10.0)

        # A wake-up for one monitor: that one is read again.
        later = T0 + timedelta(seconds=1)
        write(
            database,
            update(monitors)
            .where(monitors.c.id == 1)
            .values(url="http://127.0.0.1:9/new", updated_at=later),
        )
        follower.woken("1")
        assert wait_until(lambda: schedule.now()[1] == "http://127.0.0.1:9/new", 10.0)

        # No wake-up at all: the resync finds what changed by the stamps.
        write(
            database,
            update(monitors).where(monitors.c.id == 2).values(paused=True, updated_at=later),
        )
        write(database, delete(monitors).where(monitors.c.id == 3))
        write(database, insert(monitors).values(monitor_row(4, "http://127.0.0.1:9/4")))
        expected = {1: "http://127.0.0.1:9/new", 4: "http://127.0.0.1:9/4"}
        assert wait_until(lambda: schedule.now() == expected, 10.0), schedule.now()
    finally:
        follower.stop()
