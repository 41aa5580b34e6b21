"""Deliverers in real processes: after SIGTERM the next process sends what was owed and
nothing twice; after SIGKILL mid-send nothing is lost, and the one repeat (the send cut
between the receiver's answer and our record of it) carries the same keys."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, select

from app.alerts.outbox import AlertHook
from app.db.schema import alert_outbox
from app.db.url import sqlalchemy_url
from app.monitors.recorder import Recorder
from tests.support.alerts import Receiver, add_channel, add_rule, record
from tests.support.backends import url_for
from tests.support.monitors import add_monitor, history_store

DEADLINE_S = 30.0


@pytest.fixture(params=("sqlite", "postgresql"))
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return url_for(request.param, tmp_path, request)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    started = Receiver(hold=True)
    yield started
    started.stop()


def owed(url: str, tmp_path: Path, receiver: Receiver, channels: int, monitors: int) -> None:
    """`monitors` monitors confirmed down, alerting `channels` channels; then closed (an
    SQLite file serves one process at a time)."""
    with history_store(url, tmp_path) as store:
        names = [f"ch{n}" for n in range(channels)]
        for name in names:
            add_channel(store.database, store.writer, name, receiver.url)
        add_rule(store.writer, "all", names)
        recorder = Recorder(store.writer, on_transition=AlertHook())
        for n in range(monitors):
            record(recorder, add_monitor(store.database, f"m{n}"), ["down"] * 3)


def rows(url: str, tmp_path: Path) -> list[Any]:
    """A look from outside (a plain engine: the SQLite file's lock is the deliverer's)."""
    engine = create_engine(sqlalchemy_url(url, tmp_path))
    try:
        with engine.connect() as connection:
            return list(connection.execute(select(alert_outbox).order_by(alert_outbox.c.id)))
    finally:
        engine.dispose()


class Deliverer:
    def __init__(self, url: str, tmp_path: Path, lease_s: float, workers: int = 4) -> None:
        command = [sys.executable, "-m", "tests.support.alert_process", url, str(tmp_path)]
        self.process = subprocess.Popen(
            [*command, str(lease_s), str(workers)],
            stdout=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).resolve().parents[2],
        )
        assert self.process.stdout is not None
        assert self.process.stdout.readline().strip() == "started"

    def line(self) -> str:
        assert self.process.stdout is not None
        return self.process.stdout.readline().strip()

    def signal(self, number: int) -> None:
        os.kill(self.process.pid, number)

    def wait(self) -> int:
        try:
            return self.process.wait(DEADLINE_S)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait(5)


def wait_for(predicate: Any) -> bool:
    pause = threading.Event()
    for _ in range(int(DEADLINE_S / 0.1)):
        if predicate():
            return True
        pause.wait(0.1)
    return bool(predicate())


def test_after_sigterm_the_next_process_sends_what_was_owed_and_nothing_twice(
    url: str, tmp_path: Path, receiver: Receiver
) -> None:
    owed(url, tmp_path, receiver, channels=2, monitors=3)
    first = Deliverer(url, tmp_path, lease_s=60, workers=1)  # one batch in flight, one queued
    assert receiver.arrived.wait(DEADLINE_S)
    first.signal(signal.SIGTERM)
    assert first.line() == "stopping"  # the flag is set before the send in flight ends
    receiver.release.set()
    assert first.wait() == 0
    before = Counter(r.status for r in rows(url, tmp_path))
    assert before == {"sent": 3, "pending": 3}  # the queued batch was given back
    second = Deliverer(url, tmp_path, lease_s=60)
    assert wait_for(lambda: all(r.status == "sent" for r in rows(url, tmp_path)))
    second.signal(signal.SIGTERM)
    assert second.wait() == 0
    keys = Counter(receiver.accepted_keys())
    assert sorted(keys) == sorted(r.key for r in rows(url, tmp_path))
    assert set(keys.values()) == {1}


def test_after_sigkill_mid_send_nothing_is_lost_and_the_repeat_has_the_same_keys(
    url: str, tmp_path: Path, receiver: Receiver
) -> None:
    owed(url, tmp_path, receiver, channels=1, monitors=4)
    first = Deliverer(url, tmp_path, lease_s=2)
    assert receiver.arrived.wait(DEADLINE_S)
    first.signal(signal.SIGKILL)
    assert first.wait() == -signal.SIGKILL
    receiver.release.set()  # the receiver took it; the killed sender never recorded that
    assert {r.status for r in rows(url, tmp_path)} == {"sending"}
    second = Deliverer(url, tmp_path, lease_s=2)
    assert wait_for(lambda: all(r.status == "sent" for r in rows(url, tmp_path)))
    second.signal(signal.SIGTERM)
    assert second.wait() == 0
    keys = Counter(receiver.accepted_keys())
    assert sorted(keys) == sorted(r.key for r in rows(url, tmp_path))
    assert set(keys.values()) == {2}  # sent twice, under the same key both times
    assert {r.attempts for r in rows(url, tmp_path)} == {2}
