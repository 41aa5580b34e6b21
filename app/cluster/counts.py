"""Jobs by status across the cluster, for `/v1/status`: one GROUP BY over the jobs table,
at most once a `max_age_s`, never on the caller's thread. A caller gets the last counts read
at once (the event loop never waits for the database); a read older than `max_age_s`
starts one refresh in a thread of its own, whose answer the next caller gets."""

from __future__ import annotations

import logging
import threading
import time

from sqlalchemy import func, select

from app.db.engine import Database
from app.db.schema import jobs
from app.schemas.jobs import JobStatus

log = logging.getLogger("urlhealth.cluster")


class ClusterJobCounts:
    def __init__(self, database: Database, max_age_s: float = 1.0) -> None:
        self._database = database
        self._max_age_s = max_age_s
        self._lock = threading.Lock()
        self._counts: dict[JobStatus, int] = dict.fromkeys(JobStatus, 0)
        self._read_at = -max_age_s
        self._refreshing = False

    def snapshot(self) -> dict[JobStatus, int]:
        now = time.monotonic()
        with self._lock:
            counts = dict(self._counts)
            stale = not self._refreshing and now - self._read_at >= self._max_age_s
            if stale:
                self._refreshing = True
        if stale:
            threading.Thread(target=self.refresh, name="job-counts", daemon=True).start()
        return counts

    def refresh(self) -> None:
        counts = dict.fromkeys(JobStatus, 0)
        try:
            with self._database.engine.connect() as connection:
                rows = connection.execute(
                    select(jobs.c.status, func.count()).group_by(jobs.c.status)
                )
                for status, count in rows:
                    counts[JobStatus(status)] = int(count)
        except Exception as exc:  # the database away: the last counts stand
            log.warning("jobs not counted: %s", str(exc).splitlines()[0] if str(exc) else exc)
            with self._lock:  # tried again after max_age_s, not at every call
                self._read_at = time.monotonic()
                self._refreshing = False
            return
        with self._lock:
            self._counts = counts
            self._read_at = time.monotonic()
            self._refreshing = False
