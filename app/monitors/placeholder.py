"""A stand-in for the monitor scheduler (app/monitors/scheduler.py, being built separately),
so the service starts and `POST /v1/monitors/{ref}/check` works before it lands.

PLACEHOLDER: it keeps what it is given and schedules nothing; `run_now` runs the check on
the dispatcher's synchronous path (no reserved capacity, nothing recorded). The lead
replaces it with MonitorScheduler when that is merged.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future
from datetime import datetime

from app.engine.dispatcher import Dispatcher
from app.monitors.scheduled import Scheduled
from app.schemas.results import CheckResult


class PlaceholderScheduler:
    def __init__(self, dispatcher: Dispatcher) -> None:
        self._dispatcher = dispatcher
        self._lock = threading.Lock()
        self._monitors: dict[int, tuple[Scheduled, datetime | None]] = {}

    def put(self, monitor: Scheduled, due_at: datetime | None) -> None:
        with self._lock:
            self._monitors[monitor.id] = (monitor, due_at)

    def remove(self, monitor_id: int) -> None:
        with self._lock:
            self._monitors.pop(monitor_id, None)

    def run_now(self, monitor_id: int) -> Future[CheckResult]:
        with self._lock:
            monitor, _due = self._monitors[monitor_id]
        futures = self._dispatcher.check_now(
            [monitor.url], monitor.options, parsed=[monitor.parsed]
        )
        return futures[0]
