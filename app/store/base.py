"""The results store's interface, so a persistent backend can stand in for the memory one."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple, Protocol

from app.schemas.jobs import CheckOptionsPublic, JobHeader, JobPublic, JobStatus
from app.schemas.results import CheckResult

Unsubscribe = Callable[[], None]


@dataclass(frozen=True, slots=True)
class StoredResult:
    """A result as the store keeps it: its JSON, and the few fields the job summary counts.
    A fraction of the memory of the model, and streamed without being encoded again."""

    json: bytes
    ok: bool
    degraded: bool
    error_kind: str | None

    @classmethod
    def of(cls, result: CheckResult) -> StoredResult:
        return cls(
            json=result.model_dump_json().encode(),
            ok=result.ok,
            degraded=result.outcome == "degraded",
            error_kind=result.error.kind.value if result.error is not None else None,
        )


class JobNotFound(LookupError):
    """No job with that id (never existed, or expired)."""


class StoreUnavailable(RuntimeError):
    """The store cannot keep or read a job now (its database is away); the message says
    why, without secrets. The API answers 503."""


class StoreBusy(StoreUnavailable):
    """The store's database is behind: its write queue is full. The API answers 429."""


class StreamRead(NamedTuple):
    """One read of a stream: results in completion order from `start` on, each as its JSON;
    where the next read starts (past a result the database lost, should one be missing, so
    no result is sent twice); the final header's JSON once the job is final and nothing is
    left to read, else None."""

    bodies: list[bytes]
    next_start: int
    final_header: bytes | None


@dataclass(frozen=True, slots=True)
class JobFilter:
    """Which jobs a list shows (GET /v1/jobs); None is no bound. `created_until` excluded."""

    status: JobStatus | None = None
    created_since: datetime | None = None
    created_until: datetime | None = None

    def admits(self, status: JobStatus, created_at: datetime) -> bool:
        return (
            (self.status is None or status is self.status)
            and (self.created_since is None or created_at >= self.created_since)
            and (self.created_until is None or created_at < self.created_until)
        )


NO_FILTER = JobFilter()


class ResultsStore(Protocol):
    def create_job(
        self, urls: Sequence[str], options: CheckOptionsPublic, duplicates_removed: int = 0
    ) -> JobHeader:
        """A new queued job whose checks are `urls`, indexed in that order."""

    def mark_started(self, job_id: str) -> None:
        """The first check of the job has started: queued becomes running."""

    def record(self, job_id: str, index: int, result: CheckResult | StoredResult) -> bool:
        """Keep check `index`'s result. First writer wins: False if it already had one."""

    def request_cancel(self, job_id: str) -> JobHeader:
        """Mark the job cancelled-on-completion; raises JobNotFound."""

    def mark_interrupted(self, job_id: str) -> None:
        """The service is shutting down under this job: it will end `interrupted`."""

    def unfinished(self, job_id: str) -> list[int]:
        """Indices of checks without a result yet."""

    def urls(self, job_id: str) -> Sequence[str]:
        """The job's URLs by index."""

    def header(self, job_id: str) -> JobHeader:
        """The job without results; raises JobNotFound."""

    def page(self, job_id: str, offset: int, limit: int) -> JobPublic:
        """The job with results[offset:offset+limit] in completion order; raises JobNotFound."""

    def page_json(self, job_id: str, offset: int, limit: int) -> bytes:
        """The same page as a JobPublic JSON document, assembled from the stored results'
        JSON (no model is built per result); raises JobNotFound."""

    def results_since(self, job_id: str, start: int) -> tuple[list[bytes], JobHeader]:
        """Results from index `start` on, each as its JSON, and the job as it was when they
        were copied."""

    def results_since_json(self, job_id: str, start: int) -> StreamRead:
        """Results from place `start` in completion order on (see StreamRead); raises
        JobNotFound."""

    def list_jobs(
        self, offset: int, limit: int, where: JobFilter = NO_FILTER
    ) -> tuple[list[JobHeader], int]:
        """Jobs `where` admits, newest first, and how many of them are kept."""

    def list_json(self, offset: int, limit: int, where: JobFilter = NO_FILTER) -> bytes:
        """The same as a JobsPublic JSON document."""

    def in_memory(self, job_id: str) -> bool:
        """The job is read from memory: its reads do no I/O (a stream reads it on the event
        loop; other jobs' reads go to a thread)."""

    def active_job_ids(self) -> list[str]:
        """Jobs not yet in a final state."""

    def count_by_status(self) -> dict[JobStatus, int]:
        """How many jobs are kept in each status."""

    def subscribe(self, job_id: str, callback: Callable[[], None]) -> Unsubscribe:
        """Call `callback` (from any thread, no lock held) whenever the job changes."""

    def expire(self) -> int:
        """Evict finished jobs past retention; returns how many went."""

    @property
    def max_bytes(self) -> int:
        """The budget of retained bytes: finished jobs are evicted, oldest first, beyond it."""

    def retained_bytes(self) -> int:
        """Bytes counted against the budget: every kept job's results as JSON, plus an
        estimate of the rest of each job."""
