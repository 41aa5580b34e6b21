"""The in-process results store: one lock guards the state; readers get copies."""

from __future__ import annotations

import sys
import threading
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from app.schemas.jobs import CheckOptionsPublic, JobHeader, JobPublic, JobStatus, JobSummary
from app.schemas.results import CheckResult
from app.store.base import JobNotFound, StoredResult, Unsubscribe

# What the budget counts beside the JSON itself, estimated from CPython's layout: per result,
# the bytes object's header (33) and its slot in the list (8), rounded up for the allocator;
# per job, the _Job, its options, timestamps and bookkeeping; per URL, the str
# (sys.getsizeof), its tuple slot and its `recorded` byte. Measured on 100 jobs x 1,000
# blocked results (485 B of JSON each): RSS grew 56.6 MB, the budget counted 63.8 MB.
RESULT_OVERHEAD = 64
JOB_OVERHEAD = 2048
URL_SLOT = 8 + 1

_CANCELLED = "cancelled"
_INTERRUPTED = "interrupted"


@dataclass(slots=True, eq=False)
class _Job:
    id: str
    urls: tuple[str, ...]
    options: CheckOptionsPublic
    duplicates_removed: int
    created_at: datetime
    status: JobStatus = JobStatus.QUEUED
    started_at: datetime | None = None
    finished_at: datetime | None = None
    results: list[bytes] = field(default_factory=list)  # JSON, in completion order
    recorded: bytearray = field(default_factory=bytearray)
    up: int = 0
    degraded: int = 0
    down: int = 0
    cancelled_checks: int = 0  # never ran: cancelled, or shut down before they started
    interrupted_checks: int = 0  # cut off by shutdown: they say nothing about the target
    errors: dict[str, int] = field(default_factory=dict)
    cancel_requested: bool = False
    interrupted: bool = False
    subscribers: list[Callable[[], None]] = field(default_factory=list)
    size: int = 0  # bytes counted against the store's budget

    def copy_header_fields(self) -> dict[str, Any]:
        """The header's values, copied under the lock; the model is built outside it."""
        return {
            "id": self.id,
            "status": self.status,
            "total": len(self.urls),
            "completed": len(self.results),
            "duplicates_removed": self.duplicates_removed,
            "summary": (
                self.up,
                self.degraded,
                self.down,
                self.cancelled_checks,
                self.interrupted_checks,
                dict(self.errors),
            ),
            "options": self.options,
            "created_at": self.created_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
        }


def _header(fields: dict[str, Any]) -> JobHeader:
    up, degraded, down, cancelled, interrupted, errors = fields.pop("summary")
    summary = JobSummary(
        up=up,
        degraded=degraded,
        down=down,
        cancelled=cancelled,
        interrupted=interrupted,
        errors=errors,
    )
    return JobHeader(**fields, summary=summary)


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
        self._jobs: OrderedDict[str, _Job] = OrderedDict()
        self._finished: deque[tuple[float, str]] = deque()
        self._bytes = 0

    # --- writes -------------------------------------------------------------------------
    def create_job(
        self, urls: Sequence[str], options: CheckOptionsPublic, duplicates_removed: int = 0
    ) -> JobHeader:
        job = _Job(
            id=uuid.uuid4().hex,
            urls=tuple(urls),
            options=options,
            duplicates_removed=duplicates_removed,
            created_at=datetime.now(UTC),
            recorded=bytearray(len(urls)),
        )
        job.size = JOB_OVERHEAD + sum(sys.getsizeof(url) + URL_SLOT for url in job.urls)
        with self._lock:
            self._jobs[job.id] = job
            self._bytes += job.size
            evicted = self._evict_locked(time.monotonic())
            fields = job.copy_header_fields()
        del evicted  # freed here, outside the lock
        return _header(fields)

    def mark_started(self, job_id: str) -> None:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is not None and job.status is JobStatus.QUEUED:
                job.status = JobStatus.RUNNING
                job.started_at = datetime.now(UTC)
                subscribers = tuple(job.subscribers)
            else:
                subscribers = ()
        for callback in subscribers:
            callback()

    def record(self, job_id: str, index: int, result: CheckResult | StoredResult) -> bool:
        # Encoded outside the lock (the dispatcher encodes in its workers already).
        stored = result if isinstance(result, StoredResult) else StoredResult.of(result)
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None or job.recorded[index]:
                return False
            job.recorded[index] = 1
            job.results.append(stored.json)
            size = len(stored.json) + RESULT_OVERHEAD
            job.size += size
            self._bytes += size
            _count_locked(job, stored)
            if len(job.results) == len(job.urls):
                self._finish_locked(job)
            evicted = self._evict_locked(time.monotonic()) if self._bytes > self.max_bytes else []
            subscribers = tuple(job.subscribers)
        del evicted  # freed here, outside the lock
        for callback in subscribers:
            callback()
        return True

    def _finish_locked(self, job: _Job) -> None:
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
        return _header(fields)

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

    def _evict_locked(self, now: float) -> list[_Job]:
        """Take out the finished jobs past retention, oldest first. The caller drops them
        after releasing the lock: freeing a large job's results takes a while."""
        evicted: list[_Job] = []
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
    def _get_locked(self, job_id: str) -> _Job:
        job = self._jobs.get(job_id)
        if job is None:
            raise JobNotFound(job_id)
        return job

    def header(self, job_id: str) -> JobHeader:
        with self._lock:
            fields = self._get_locked(job_id).copy_header_fields()
        return _header(fields)

    def page(self, job_id: str, offset: int, limit: int) -> JobPublic:
        with self._lock:
            job = self._get_locked(job_id)
            fields = job.copy_header_fields()
            encoded = job.results[offset : offset + limit]
        header = _header(fields)
        results = [CheckResult.model_validate_json(data) for data in encoded]
        return JobPublic(**dict(header), results=results, offset=offset, limit=limit)

    def results_since(self, job_id: str, start: int) -> tuple[list[bytes], JobHeader]:
        with self._lock:
            job = self._get_locked(job_id)
            results = job.results[start:]
            fields = job.copy_header_fields()
        return results, _header(fields)

    def unfinished(self, job_id: str) -> list[int]:
        with self._lock:
            recorded = bytes(self._get_locked(job_id).recorded)
        return [index for index, done in enumerate(recorded) if not done]

    def urls(self, job_id: str) -> Sequence[str]:
        with self._lock:
            return self._get_locked(job_id).urls  # an immutable tuple: no copy needed

    def list_jobs(self, offset: int, limit: int) -> tuple[list[JobHeader], int]:
        with self._lock:
            evicted = self._evict_locked(time.monotonic())
            newest_first = list(reversed(self._jobs.values()))[offset : offset + limit]
            rows = [job.copy_header_fields() for job in newest_first]
            count = len(self._jobs)
        del evicted
        return [_header(fields) for fields in rows], count

    def active_job_ids(self) -> list[str]:
        with self._lock:
            return [job.id for job in self._jobs.values() if not job.status.final]

    def retained_bytes(self) -> int:
        with self._lock:
            return self._bytes

    def count_by_status(self) -> dict[JobStatus, int]:
        with self._lock:
            statuses = [job.status for job in self._jobs.values()]
        counts = dict.fromkeys(JobStatus, 0)
        for status in statuses:
            counts[status] += 1
        return counts


def _count_locked(job: _Job, stored: StoredResult) -> None:
    """Add a result to its job's summary. A check that never ran or was cut off by shutdown
    is not evidence that its target is down: it has counts of its own."""
    kind = stored.error_kind
    if stored.ok:
        job.up += 1
        return
    if kind is not None:
        job.errors[kind] = job.errors.get(kind, 0) + 1
    if kind == _CANCELLED:
        job.cancelled_checks += 1
    elif kind == _INTERRUPTED:
        job.interrupted_checks += 1
    elif stored.degraded:
        job.degraded += 1
    else:
        job.down += 1
