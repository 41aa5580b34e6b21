"""This process as one replica of several on PostgreSQL: its role, its share of the task
queue, and its wake-ups from the others. Built by the composition root when the settings ask
for a cluster (`Settings.clustered`); absent otherwise, and nothing here runs on SQLite.

Each capability registers its tasks and wake-up channels before `start()`; `start()` opens the
queue for deferring, listens, and (on a replica that runs checks) takes tasks. Stopping is in
two steps, for the shutdown order: `stop_taking()` first (no new task starts; it must not
wait), then, once the engine drained, `close()`, which waits for the tasks running (they hand
back what they did not start) and releases the connections.
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass, field

from sqlalchemy.engine import URL

from app.cluster.queue import TaskQueue, TaskSpec, conninfo
from app.cluster.wakeups import Wakeups

log = logging.getLogger("urlhealth.cluster")


@dataclass(eq=False)
class Replica:
    role: str  # all | api | worker
    queue: TaskQueue
    wakeups: Wakeups
    lease_s: float
    concurrency: int  # tasks this replica runs at once, when it runs checks
    name: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")

    @classmethod
    def build(
        cls, url: URL, role: str, lease_s: float, concurrency: int, channels: tuple[str, ...]
    ) -> Replica:
        return cls(role, TaskQueue(url), Wakeups(conninfo(url), channels), lease_s, concurrency)

    @property
    def runs_checks(self) -> bool:
        return self.role in ("all", "worker")

    @property
    def serves_api(self) -> bool:
        return self.role in ("all", "api")

    def register(self, spec: TaskSpec) -> None:
        self.queue.register(spec)

    def start(self) -> None:
        self.queue.open()
        self.wakeups.start()
        if self.runs_checks:
            self.queue.start_worker(self.concurrency, self.lease_s, self.name)
        log.info("replica %s started as %s", self.name, self.role)

    def problem(self) -> str | None:
        """Why this replica cannot do its share now, or None."""
        if self.runs_checks:
            return self.queue.worker_failure
        return None

    def stop_taking(self) -> None:
        """No new task starts here; those running go on. Does not wait."""
        self.queue.request_stop()

    def close(self, timeout_s: float) -> None:
        if not self.queue.stop_worker(timeout_s):
            log.warning("tasks still running after %.1f s at shutdown", timeout_s)
        self.wakeups.stop()
        self.queue.close()
