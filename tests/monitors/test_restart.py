"""History, state and incidents are on disk: a restart (the database closed and opened
again) finds them as they were, and the next results continue the same streak."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from app.monitors.history import History
from app.monitors.recorder import Recorder
from app.schemas.monitoring import Outcome
from tests.support.backends import url_for
from tests.support.monitors import T0, add_monitor, check, history_store


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_history_and_an_open_incident_survive_a_restart(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = url_for(backend, tmp_path, request)
    now = T0 + timedelta(hours=1)
    outcomes: list[Outcome] = ["up", "up", "down", "down", "down"]
    with history_store(url, tmp_path) as first:
        m = add_monitor(first.database, "durable")
        recorder = Recorder(first.writer)
        for n, outcome in enumerate(outcomes):
            at = T0 + timedelta(minutes=n)
            recorder.record(m, 1, at, check(outcome, at=at))
        # No waiting: stopping the writer flushes what it was given.
    with history_store(url, tmp_path) as second:
        history = History(second.database, clock=lambda: now)
        assert history.uptime(m, "24h").checks == 5
        (incident,) = history.incidents(m)
        assert incident.ended_at is None
        recorder = Recorder(second.writer)
        for n in range(2):  # the recovery streak continues from the stored state
            at = T0 + timedelta(minutes=5 + n)
            recorder.submit(m, 1, at, check("up", at=at)).result(10)
        (ended,) = history.incidents(m)
        assert ended.ended_at == T0 + timedelta(minutes=5)
        assert history.summary().monitors[0].state == "up"
