"""Monitors and their results on a running service, through the real recorder: the rows,
rollups, state and incidents the status page reads are the ones checks would write."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from app.monitors.model import Outcome
from app.monitors.recorder import Recorder
from app.services import Services
from tests.support.monitors import add_monitor, check


def seed(services: Services, slug: str, outcomes: list[Outcome], **values: object) -> int:
    """A monitor (failure/success thresholds 1) and one result per outcome, a second apart,
    ending now; returns its id once every result is written."""
    database = services.storage.database
    monitor_id = add_monitor(database, slug, failure_threshold=1, success_threshold=1, **values)
    record(services, monitor_id, outcomes)
    return monitor_id


def record(services: Services, monitor_id: int, outcomes: list[Outcome]) -> None:
    recorder = Recorder(services.storage.writer)
    now = datetime.now(UTC)
    for n, outcome in enumerate(outcomes):
        at = now - timedelta(seconds=len(outcomes) - n)
        recorder.submit(monitor_id, 1, at, check(outcome, 20.0 + n, at)).result(timeout=30)
