"""Jobs by status, counted as they change rather than counted in the database at every
`GET /v1/status`: read once at start (after crash recovery: one GROUP BY), then moved by the
durable store as jobs are created, start and finish, and lowered by what retention deletes
(it says so, by status, once its batch is committed). The status counted is the live one,
which the database follows a flush interval later. With PostgreSQL, the jobs of other
replicas are not counted (they were only at the start of this one)."""

from __future__ import annotations

import threading
from collections.abc import Mapping

from app.schemas.jobs import JobStatus


class JobCounts:
    def __init__(self, stored: Mapping[str, int]) -> None:
        """`stored`: the jobs in the database by status, counted when the store opens."""
        self._lock = threading.Lock()  # held to change or copy the counts, never more
        self._counts = dict.fromkeys(JobStatus, 0)
        for status, count in stored.items():
            self._counts[JobStatus(status)] += count

    def created(self) -> None:
        with self._lock:
            self._counts[JobStatus.QUEUED] += 1

    def moved(self, before: JobStatus, after: JobStatus) -> None:
        with self._lock:
            self._counts[before] -= 1
            self._counts[after] += 1

    def deleted(self, by_status: Mapping[str, int]) -> None:
        """Jobs deleted from the database (by retention: final ones only)."""
        with self._lock:
            for status, count in by_status.items():
                self._counts[JobStatus(status)] -= count

    def snapshot(self) -> dict[JobStatus, int]:
        with self._lock:
            return dict(self._counts)
