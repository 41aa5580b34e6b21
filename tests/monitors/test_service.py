"""The Monitors facade over a real SQLite database: what it stores, and what it tells the
scheduler (a recording stand-in: the scheduler is built elsewhere)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, update

from app.db.schema import monitors
from app.monitors.errors import MonitorConflict
from app.monitors.repository import MonitorRepository
from app.monitors.scheduled import Scheduled
from app.monitors.service import Monitors
from app.schemas.monitors import MonitorCreate
from app.schemas.results import CheckResult
from app.store.storage import Storage
from tests.conftest import make_settings

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


class RecordingScheduler:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls: list[tuple[str, Any, Any]] = []

    def put(self, monitor: Scheduled, due_at: datetime | None) -> None:
        with self.lock:
            self.calls.append(("put", monitor, due_at))

    def remove(self, monitor_id: int) -> None:
        with self.lock:
            self.calls.append(("remove", monitor_id, None))

    def run_now(self, monitor_id: int) -> Future[CheckResult]:
        raise NotImplementedError  # the API tests run checks

    def take(self) -> list[tuple[str, Any, Any]]:
        with self.lock:
            calls, self.calls = self.calls, []
        return calls


class Harness:
    def __init__(self, tmp_path: Path, **overrides: Any) -> None:
        self.settings = make_settings(
            database_url=f"sqlite:///{tmp_path / 'urlhealth.db'}",
            monitor_min_interval_s=2.0,
            **overrides,
        )
        self.storage = Storage.open(self.settings)
        self.repository = MonitorRepository(self.storage.database, self.storage.writer)
        self.scheduler = RecordingScheduler()
        self.monitors = self.build()
        self.closed = False

    def build(self) -> Monitors:
        return Monitors(self.settings, self.repository, self.scheduler, clock=lambda: NOW)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.monitors.stop()
            self.storage.close()


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    started = Harness(tmp_path)
    yield started
    started.close()


def body(name: str = "web", **fields: Any) -> MonitorCreate:
    return MonitorCreate.model_validate(
        {"name": name, "url": "http://127.0.0.1:9/", "interval_s": 30, **fields}
    )


def test_a_created_monitor_is_scheduled_unless_paused(harness: Harness) -> None:
    created = harness.monitors.create(body())
    harness.monitors.create(body("quiet", paused=True))
    ((call, scheduled, due),) = harness.scheduler.take()
    assert (call, scheduled.id, scheduled.slug, scheduled.generation, due) == (
        "put",
        created.id,
        "web",
        1,
        None,
    )
    assert scheduled.interval_s == 30
    assert str(scheduled.parsed) == "http://127.0.0.1:9/"
    assert scheduled.options.timeout_s == harness.settings.default_timeout_s


def test_a_url_change_bumps_the_generation_and_restarts_the_streak(harness: Harness) -> None:
    created = harness.monitors.create(body())

    def unconfirmed(connection: Connection) -> None:
        connection.execute(
            update(monitors)
            .where(monitors.c.id == created.id)
            .values(pending_outcome="down", pending_count=2, state="up", next_due_at=NOW)
        )

    harness.repository.run(unconfirmed)
    assert harness.monitors.get("web").pending is not None
    harness.scheduler.take()

    changed = harness.monitors.update("web", {"url": "http://127.0.0.1:9/new"})
    assert changed.generation == 2
    assert changed.pending is None
    assert changed.state == "up"  # the confirmed state stays
    ((call, scheduled, due),) = harness.scheduler.take()
    assert (call, scheduled.generation, scheduled.url, due) == (
        "put",
        2,
        "http://127.0.0.1:9/new",
        NOW,  # not rescheduled: the due time stays
    )


def test_an_interval_change_reschedules_from_now(harness: Harness) -> None:
    harness.monitors.create(body())
    harness.scheduler.take()
    changed = harness.monitors.update("web", {"interval_s": 10})
    assert changed.generation == 1
    assert changed.next_due_at == NOW + timedelta(seconds=10)
    ((call, scheduled, due),) = harness.scheduler.take()
    assert (call, scheduled.interval_s, due) == ("put", 10, NOW + timedelta(seconds=10))


def test_pausing_removes_unpausing_puts_deleting_removes(harness: Harness) -> None:
    created = harness.monitors.create(body())
    harness.scheduler.take()
    harness.monitors.update("web", {"paused": True})
    assert harness.scheduler.take() == [("remove", created.id, None)]
    harness.monitors.update("web", {"paused": False})
    assert [call for call, _, _ in harness.scheduler.take()] == ["put"]
    harness.monitors.update("web", {"paused": False})  # no change: nothing to tell
    assert harness.scheduler.take() == []
    harness.monitors.delete("web")
    assert harness.scheduler.take() == [("remove", created.id, None)]


def test_start_schedules_every_unpaused_monitor_with_its_due_time(harness: Harness) -> None:
    first = harness.monitors.create(body("a"))
    harness.monitors.create(body("b", paused=True))
    harness.scheduler.take()
    restarted = harness.build()
    restarted.start()
    try:
        assert [(c, s.id) for c, s, _ in harness.scheduler.take()] == [("put", first.id)]
    finally:
        restarted.stop()


def test_a_monitor_a_lowered_limit_refuses_is_left_unscheduled_at_start(
    harness: Harness, tmp_path: Path
) -> None:
    harness.monitors.create(body("slow", options={"timeout_s": 30}))
    harness.monitors.create(body("fine"))
    harness.close()
    stricter = Harness(tmp_path, max_timeout_s=20.0)
    try:
        stricter.monitors.start()
        calls = stricter.scheduler.take()
        assert [s.slug for c, s, _ in calls if c == "put"] == ["fine"]
        assert stricter.monitors.get("slow").options.timeout_s == 30  # kept, as written
    finally:
        stricter.close()


def test_reload_tells_the_scheduler_what_changed(harness: Harness, tmp_path: Path) -> None:
    path = tmp_path / "monitors.toml"
    text = '[[monitors]]\nname = "{0}"\nslug = "{0}"\nurl = "http://127.0.0.1:9/{0}"\n'
    path.write_text(text.format("a") + text.format("b"), encoding="utf-8")
    settings = harness.settings.model_copy(update={"monitors_file": path})
    facade = Monitors(settings, harness.repository, harness.scheduler, clock=lambda: NOW)
    try:
        facade.start()
        puts = harness.scheduler.take()
        assert sorted(s.slug for _, s, _ in puts) == ["a", "b"]
        ids = {s.slug: s.id for _, s, _ in puts}
        path.write_text(text.format("a") + text.format("c"), encoding="utf-8")
        facade.reload()
        calls = harness.scheduler.take()
        assert ("remove", ids["b"], None) in calls
        assert [s.slug for c, s, _ in calls if c == "put"] == ["c"]
        with pytest.raises(MonitorConflict):
            facade.delete("a")
    finally:
        facade.stop()


def test_reload_requests_are_coalesced_and_never_block(harness: Harness, tmp_path: Path) -> None:
    path = tmp_path / "monitors.toml"
    path.write_text('[[monitors]]\nname = "a"\nurl = "http://127.0.0.1:9/"\n', encoding="utf-8")
    settings = harness.settings.model_copy(update={"monitors_file": path})
    facade = Monitors(settings, harness.repository, harness.scheduler, clock=lambda: NOW)
    try:
        for _ in range(5):
            facade.request_reload()
        facade.reload()  # in turn after them: they are done when it returns
        assert facade.get("a").source == "file"
    finally:
        facade.stop()


def test_the_last_result_is_shown_short_with_the_urls_secrets_masked(harness: Harness) -> None:
    created = harness.monitors.create(
        body(
            url="http://127.0.0.1:9/?token=s3cret-token", options={"headers": {"X-K": "hdr-value"}}
        )
    )
    last = {
        "url": "http://127.0.0.1:9/?token=s3cret-token",
        "ok": False,
        "outcome": "down",
        "status_code": None,
        "elapsed_ms": 1.5,
        "error": {"kind": "connect", "message": "refused: /?token=s3cret-token hdr-value"},
    }

    def checked(connection: Connection) -> None:
        connection.execute(
            update(monitors)
            .where(monitors.c.id == created.id)
            .values(last_result=json.dumps(last).encode(), last_checked_at=NOW)
        )

    harness.repository.run(checked)
    shown = harness.monitors.get(str(created.id))
    assert shown.last_checked_at == NOW
    assert shown.last_result is not None
    assert shown.last_result.model_dump(mode="json") == {
        "outcome": "down",
        "status_code": None,
        "elapsed_ms": 1.5,
        "error": {"kind": "connect", "message": "refused: /?token=*** ***"},
    }


def test_a_bad_file_at_start_is_logged_and_the_stored_monitors_run(
    harness: Harness, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    kept = harness.monitors.create(body("kept"))
    harness.scheduler.take()
    path = tmp_path / "monitors.toml"
    path.write_text('[[monitors]]\nname = "x"\nurl = "ftp://127.0.0.1/"\n', encoding="utf-8")
    settings = harness.settings.model_copy(update={"monitors_file": path})
    facade = Monitors(settings, harness.repository, harness.scheduler, clock=lambda: NOW)
    try:
        facade.start()
        assert [(c, s.id) for c, s, _ in harness.scheduler.take()] == [("put", kept.id)]
    finally:
        facade.stop()
    assert "monitors[0] 'x': url" in caplog.text
