"""The in-process results store: one lock guards the state; readers get copies."""

from __future__ import annotations

import threading
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from app.schemas.jobs import CheckOptionsPublic, JobHeader, JobPublic, JobStatus
from app.schemas.results import CheckResult
from app.store import views
from app.store.base import (
    NO_FILTER,
    JobFilter,
    JobNotFound,
    StoredResult,
    StreamRead,
    Unsubscribe,
)
from app.store.job import JobRecord


@dataclass(frozen=True, slots=True)
class Kept:
    """Where `keep` put a result: `seq`, its place in completion order; `final`, the job's
    header fields if this result finished it."""

    seq: int
    final: dict[str, Any] | None


class MemoryStore:
    """Thread-safe store. Memory is bounded: finished jobs are evicted, oldest first, past
    `max_jobs`, past `max_age_s`, or while the jobs kept take more than `max_bytes` (their
    results' JSON and an estimate of the rest). Jobs still queued or running are never
    evicted (admission bounds them), nor, for bytes, the job that finished last: a client
    can always read the job it waited for, so the budget may be exceeded by one job."""

    def __init__(self, max_jobs: int, max_age_s: float, max_bytes: int = 256 * 2**20) -> None:
        self._max_jobs = max_jobs
        self._max_age_s = max_age_s
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._jobs: OrderedDict[str, JobRecord] = OrderedDict()
        self._finished: deque[tuple[float, str]] = deque()
        self._bytes = 0

    # --- writes -------------------------------------------------------------------------
    def create_job(
        self,
        urls: Sequence[str],
        options: CheckOptionsPublic,
        duplicates_removed: int = 0,
        *,
        job_id: str | None = None,
        created_at: datetime | None = None,
    ) -> JobHeader:
        """`job_id` and `created_at` for a store that kept the job elsewhere first."""
        job = JobRecord(
            id=job_id or uuid.uuid4().hex,
            urls=tuple(urls),
            options=options,
            duplicates_removed=duplicates_removed,
            created_at=created_at or datetime.now(UTC),
        )
        with self._lock:
            self._jobs[job.id] = job
            self._bytes += job.size
            evicted = self._evict_locked(time.monotonic())
            fields = job.copy_header_fields()
        del evicted  # freed here, outside the lock
        return views.header_model(fields)

    def mark_started(self, job_id: str) -> None:
        self.start(job_id)

    def start(self, job_id: str) -> datetime | None:
        """`mark_started`, returning when the job started if this call started it."""
        started_at = None
        with self._lock:
            job = self._jobs.get(job_id)
            if job is not None and job.status is JobStatus.QUEUED:
                job.status = JobStatus.RUNNING
                job.started_at = started_at = datetime.now(UTC)
                subscribers = tuple(job.subscribers)
            else:
                subscribers = ()
        for callback in subscribers:
            callback()
        return started_at

    def record(self, job_id: str, index: int, result: CheckResult | StoredResult) -> bool:
        # Encoded outside the lock (the dispatcher encodes in its workers already).
        stored = result if isinstance(result, StoredResult) else StoredResult.of(result)
        return self.keep(job_id, index, stored) is not None

    def keep(self, job_id: str, index: int, stored: StoredResult) -> Kept | None:
        """`record`, saying where the result went: its place in completion order and, if it
        was the job's last, the final header's fields. None if not kept (first writer wins)."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None or job.recorded[index]:
                return None
            job.recorded[index] = 1
            self._bytes += job.add(stored)
            seq = len(job.results) - 1
            final = None
            if len(job.results) == len(job.urls):
                self._finish_locked(job)
                final = job.copy_header_fields()
            evicted = self._evict_locked(time.monotonic()) if self._bytes > self.max_bytes else []
            subscribers = tuple(job.subscribers)
        del evicted  # freed here, outside the lock
        for callback in subscribers:
            callback()
        return Kept(seq, final)

    def discard(self, job_id: str) -> None:
        """Let a job go (a durable store's job, once it is on disk), whatever its state."""
        with self._lock:
            job = self._jobs.pop(job_id, None)
            if job is not None:
                self._bytes -= job.size
        del job  # freed here, outside the lock

    def _finish_locked(self, job: JobRecord) -> None:
        if job.interrupted:
            job.status = JobStatus.INTERRUPTED
        elif job.cancel_requested:
            job.status = JobStatus.CANCELLED
        else:
            job.status = JobStatus.DONE
        now = datetime.now(UTC)
        job.started_at = job.started_at or now
        job.finished_at = now
        self._finished.append((time.monotonic(), job.id))

    def request_cancel(self, job_id: str) -> JobHeader:
        with self._lock:
            job = self._get_locked(job_id)
            if not job.status.final:
                job.cancel_requested = True
            fields = job.copy_header_fields()
        return views.header_model(fields)

    def mark_interrupted(self, job_id: str) -> None:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is not None and not job.status.final:
                job.interrupted = True

    def subscribe(self, job_id: str, callback: Callable[[], None]) -> Unsubscribe:
        with self._lock:
            self._get_locked(job_id).subscribers.append(callback)

        def unsubscribe() -> None:
            with self._lock:
                job = self._jobs.get(job_id)
                if job is not None and callback in job.subscribers:
                    job.subscribers.remove(callback)

        return unsubscribe

    def expire(self) -> int:
        with self._lock:
            evicted = self._evict_locked(time.monotonic())
        return len(evicted)

    def _evict_locked(self, now: float) -> list[JobRecord]:
        """Take out the finished jobs past retention, oldest first. The caller drops them
        after releasing the lock: freeing a large job's results takes a while."""
        evicted: list[JobRecord] = []
        finished = self._finished
        while finished and (
            len(finished) > self._max_jobs
            or now - finished[0][0] > self._max_age_s
            or (self._bytes > self.max_bytes and len(finished) > 1)
        ):
            _, job_id = finished.popleft()
            job = self._jobs.pop(job_id, None)
            if job is not None:
                self._bytes -= job.size
                evicted.append(job)
        return evicted

    # --- reads (copies) -----------------------------------------------------------------
    def _get_locked(self, job_id: str) -> JobRecord:
        job = self._jobs.get(job_id)
        if job is None:
            raise JobNotFound(job_id)
        return job

    def header(self, job_id: str) -> JobHeader:
        with self._lock:
            fields = self._get_locked(job_id).copy_header_fields()
        return views.header_model(fields)

    def page(self, job_id: str, offset: int, limit: int) -> JobPublic:
        return JobPublic.model_validate_json(self.page_json(job_id, offset, limit))

    def page_json(self, job_id: str, offset: int, limit: int) -> bytes:
        with self._lock:
            job = self._get_locked(job_id)
            snapshot = _snapshot_locked(job)
            encoded = job.results[offset : offset + limit]
        return views.page_json(self._encoded(job, snapshot), encoded, offset, limit)

    def results_since(self, job_id: str, start: int) -> tuple[list[bytes], JobHeader]:
        with self._lock:
            job = self._get_locked(job_id)
            results = job.results[start:]
            fields = job.copy_header_fields()
        return results, views.header_model(fields)

    def results_since_json(self, job_id: str, start: int) -> StreamRead:
        with self._lock:
            job = self._get_locked(job_id)
            results = job.results[start:]
            snapshot = _snapshot_locked(job) if job.status.final else None
        header = None if snapshot is None else self._encoded(job, snapshot)
        return StreamRead(results, start + len(results), header)

    def _encoded(self, job: JobRecord, snapshot: bytes | dict[str, Any]) -> bytes:
        """The header's JSON; a final job's is kept, as it will not change again."""
        if isinstance(snapshot, bytes):
            return snapshot
        encoded = views.header_json(snapshot)
        if snapshot["status"].final:
            with self._lock:
                job.final_header_json = encoded
        return encoded

    def unfinished(self, job_id: str) -> list[int]:
        with self._lock:
            recorded = bytes(self._get_locked(job_id).recorded)
        return [index for index, done in enumerate(recorded) if not done]

    def urls(self, job_id: str) -> Sequence[str]:
        with self._lock:
            return self._get_locked(job_id).urls  # an immutable tuple: no copy needed

    def list_jobs(
        self, offset: int, limit: int, where: JobFilter = NO_FILTER
    ) -> tuple[list[JobHeader], int]:
        with self._lock:
            evicted = self._evict_locked(time.monotonic())
            matching = _newest_first_locked(self._jobs, where)
            rows = [job.copy_header_fields() for job in matching[offset : offset + limit]]
        del evicted
        return [views.header_model(fields) for fields in rows], len(matching)

    def list_json(self, offset: int, limit: int, where: JobFilter = NO_FILTER) -> bytes:
        with self._lock:
            evicted = self._evict_locked(time.monotonic())
            matching = _newest_first_locked(self._jobs, where)
            rows = [(job, _snapshot_locked(job)) for job in matching[offset : offset + limit]]
            count = len(matching)
        del evicted
        headers = [self._encoded(job, snapshot) for job, snapshot in rows]
        return views.list_json(headers, count, offset, limit)

    def in_memory(self, job_id: str) -> bool:
        with self._lock:
            return job_id in self._jobs

    def active_job_ids(self) -> list[str]:
        with self._lock:
            return [job.id for job in self._jobs.values() if not job.status.final]

    def retained_bytes(self) -> int:
        with self._lock:
            return self._bytes

    def statuses(self) -> dict[str, JobStatus]:
        """Every job kept here, with its status."""
        with self._lock:
            return {job.id: job.status for job in self._jobs.values()}

    def header_fields(self, job_ids: list[str]) -> dict[str, dict[str, Any]]:
        """The header fields of those of `job_ids` kept here."""
        with self._lock:
            found = [self._jobs.get(job_id) for job_id in job_ids]
            return {job.id: job.copy_header_fields() for job in found if job is not None}

    def count_by_status(self) -> dict[JobStatus, int]:
        with self._lock:
            statuses = [job.status for job in self._jobs.values()]
        counts = dict.fromkeys(JobStatus, 0)
        for status in statuses:
            counts[status] += 1
        return counts


def _newest_first_locked(jobs: OrderedDict[str, JobRecord], where: JobFilter) -> list[JobRecord]:
    if where is NO_FILTER:
        return list(reversed(jobs.values()))
    return [job for job in reversed(jobs.values()) if where.admits(job.status, job.created_at)]


def _snapshot_locked(job: JobRecord) -> bytes | dict[str, Any]:
    """The header as kept JSON if the job is final and was read before, else its fields."""
    return job.final_header_json or job.copy_header_fields()
