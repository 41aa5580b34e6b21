"""Channel-wide wake-ups (app/cluster/wakeups.py) on a real PostgreSQL: a subscriber of a
whole channel hears every key notified there, at commit, and "" after a reconnect."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.cluster.queue import conninfo
from app.cluster.wakeups import Wakeups, notify
from app.db.engine import Database, open_database
from app.db.url import sqlalchemy_url
from tests.support.process import wait_until

CHANNEL = "urlhealth_monitors"


@pytest.fixture
def database(pg_url: str, tmp_path: Path) -> Iterator[Database]:
    opened = open_database(sqlalchemy_url(pg_url, tmp_path))
    yield opened
    opened.close()


def test_a_channel_subscriber_hears_every_key_and_everything_after_a_reconnect(
    database: Database,
) -> None:
    lock = threading.Lock()
    heard: list[str] = []

    def note(key: str) -> None:
        with lock:
            heard.append(key)

    def keys() -> list[str]:
        with lock:
            return list(heard)

    wakeups = Wakeups(conninfo(database.url), (CHANNEL, "urlhealth_jobs")).start()
    try:
        assert wakeups.connected
        stop = wakeups.subscribe_channel(CHANNEL, note)
        with database.engine.begin() as connection:
            notify(connection, CHANNEL, "7")
            notify(connection, CHANNEL, "8")
            notify(connection, "urlhealth_jobs", "9")  # another channel: not heard
            assert keys() == []  # nothing before the commit
        assert wait_until(lambda: keys() == ["7", "8"], 10.0)

        with database.engine.begin() as connection:  # the listener's connection is cut
            connection.exec_driver_sql(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE pid <> pg_backend_pid() AND starts_with(query, 'LISTEN')"
            )
        assert wait_until(lambda: "" in keys(), 15.0), keys()

        stop()
        with database.engine.begin() as connection:
            notify(connection, CHANNEL, "10")
        threading.Event().wait(1.0)
        assert "10" not in keys()
    finally:
        wakeups.stop()
