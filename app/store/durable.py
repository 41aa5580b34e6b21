"""The durable results store: the memory store for jobs not yet wholly on disk, a database
behind it for everything.

Accepted means kept: a job's row and URLs are committed before `create_job` returns. Results
go to memory first (first writer wins, streams are woken as before), then to the writer's
queue as rows; a job's final row follows its last result (the writer is FIFO), and once it is
committed the job leaves memory: memory holds running jobs, not history. Reads look in memory
first, then in the database, so a job is found at every moment: it leaves memory only after
its final row is committed. No database I/O happens under the memory store's lock, nor under
this store's own (which only counts the rows queued per job). Jobs by status are counted as
they change (app/store/counts.py), not in the database at every `/v1/status`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Connection

from app.db.engine import Database
from app.db.schema import results
from app.db.writer import Writer, WriterClosed, WriterFull
from app.schemas.jobs import CheckOptionsPublic, JobHeader, JobPublic, JobStatus
from app.schemas.results import CheckResult
from app.store import rows, views
from app.store.base import (
    NO_FILTER,
    JobFilter,
    JobNotFound,
    StoreBusy,
    StoredResult,
    StoreUnavailable,
    StreamRead,
    Unsubscribe,
)
from app.store.counts import JobCounts
from app.store.memory import MemoryStore
from app.store.stored import StoredJobs, reason_of

log = logging.getLogger("urlhealth.store")

T = TypeVar("T")

# Results a stream reads from the database at a time (a finished job's may be 100,000).
STREAM_BATCH = 5000
# How long a result waits before it tries the writer's full queue again.
_FULL_PAUSE_S = 0.01


@dataclass(slots=True)
class _Queued:
    """A job in memory: how many of its results were handed to the writer, and its final
    header's fields once its last result was recorded."""

    total: int
    queued: int = 0
    final: dict[str, Any] | None = None
    status: JobStatus = JobStatus.QUEUED  # as counted in DurableStore's counts


class DurableStore:
    def __init__(
        self,
        database: Database,
        writer: Writer,
        memory: MemoryStore,
        owner: str,
        queue_max: int,
        commit_timeout_s: float = 10.0,
    ) -> None:
        self.database = database
        self.writer = writer
        self.memory = memory
        self.stored = StoredJobs(database)
        self._owner = owner
        self.commit_timeout_s = commit_timeout_s
        self._queue_max = queue_max
        self._lock = threading.Lock()
        self._queued: dict[str, _Queued] = {}
        self._room = threading.Event()  # never set: the pause while the queue is full
        self.lost = 0  # results the writer would not take (its queue full, or stopped)
        self._warned_at = -float("inf")  # when waiting for the writer was last logged
        # Read once, at start (after crash recovery, before any job is created here).
        self.counts = JobCounts(self.stored.counts_by_status())
        # On a cluster (set by Services.build): a job on disk may still change, written by
        # another replica; `watch` subscribes to its wake-ups, `cluster_counts` counts jobs
        # by status across the cluster.
        self.watch: Callable[[str, Callable[[], None]], Unsubscribe] | None = None
        self.cluster_counts: Callable[[], dict[JobStatus, int]] | None = None

    # --- writes ---------------------------------------------------------------------------
    def create_job(
        self, urls: Sequence[str], options: CheckOptionsPublic, duplicates_removed: int = 0
    ) -> JobHeader:
        reason = self.unavailable()
        if reason is not None:  # refused now, rather than after the commit timeout
            raise StoreUnavailable(f"the job could not be kept: the database is away ({reason})")
        fields = rows.new_job(len(urls), options, duplicates_removed)
        job_id, created_at = fields["id"], fields["created_at"]
        self._commit(
            rows.insert_job(fields, urls, self._owner),
            "the job could not be kept",
            undo=rows.delete_job(job_id),
        )
        # In memory only once on disk: if keeping it failed, nothing is left behind.
        with self._lock:
            self._queued[job_id] = _Queued(len(urls))
            self.counts.created()  # under this lock too, so no move of the job comes first
        return self.memory.create_job(
            urls, options, duplicates_removed, job_id=job_id, created_at=created_at
        )

    def mark_started(self, job_id: str) -> None:
        started_at = self.memory.start(job_id)
        if started_at is not None:
            self._move(job_id, JobStatus.RUNNING)
            self._put(rows.mark_started(job_id, started_at))

    def record(self, job_id: str, index: int, result: CheckResult | StoredResult) -> bool:
        stored = result if isinstance(result, StoredResult) else StoredResult.of(result)
        kept = self.memory.keep(job_id, index, stored)
        if kept is None:
            return False
        self._put_result(rows.result_row(job_id, index, kept.seq, stored))
        with self._lock:
            queued = self._queued[job_id]
            queued.queued += 1
            if kept.final is not None:
                queued.final = kept.final
                self._move_locked(queued, kept.final["status"])
            final = queued.final if queued.queued == queued.total else None
        # Every result of the job is in the writer's queue before its final row.
        if final is not None:
            self._finish(job_id, final)
        return True

    def _put_result(self, row: dict[str, Any]) -> None:
        what = f"a result of job {row['job_id']}"
        self._offer(lambda: self.writer.put_row(results, row), what)

    def _finish(self, job_id: str, final: dict[str, Any]) -> None:
        future = self._offer(lambda: self.writer.submit(rows.finish_job(final)), f"job {job_id}")
        if future is not None:
            future.add_done_callback(lambda done: self._on_disk(job_id, done))

    def _offer(self, send: Callable[[], T], what: str) -> T | None:
        """Hand a write to the writer. While its queue is full and the database is there, wait
        for room, however long that takes: the caller holds no lock, and waiting slows the
        checks down to what the database can keep, as it should (a job accepted is kept).
        Giving up after a while lost results of accepted jobs when the writer was merely
        slow, starved of the GIL by hundreds of check threads (4 jobs of 25,000 at once).
        While the database is away, do not wait: what the writer refuses is counted (`lost`
        here, `dropped` by the writer) and the checks go on. A writer that stops refuses
        everything (WriterClosed): nobody waits for a writer that is gone. Room is looked
        for before trying, because the writer counts a refused put as dropped."""
        warn_at = time.monotonic() + self.commit_timeout_s
        while True:
            while self._full() and self._healthy():
                if time.monotonic() >= warn_at:
                    self._warn_behind()
                    warn_at = float("inf")  # once per wait
                self._room.wait(_FULL_PAUSE_S)
            try:
                return send()
            except WriterClosed as exc:
                self._lose(f"{what} was not written: {exc}")
                return None
            except WriterFull as exc:
                if not self._healthy():
                    self._lose(f"{what} was not written: {exc}")
                    return None

    def _warn_behind(self) -> None:
        """One line per commit timeout for the whole store, not one per waiting result: under
        a long stall every check thread waits, and each would log its own."""
        now = time.monotonic()
        with self._lock:
            due = now - self._warned_at >= self.commit_timeout_s
            if due:
                self._warned_at = now
        if due:
            log.warning("results wait for the database: its writer is behind")

    def unavailable(self) -> str | None:
        """Why the database cannot be written now (URL masked), or None if it can."""
        if self._healthy():
            return None
        return self.writer.last_error or "the database is unavailable"

    def _full(self) -> bool:
        return self.writer.queued() >= self._queue_max

    def _healthy(self) -> bool:
        return self.writer.healthy

    def _on_disk(self, job_id: str, done: Future[None]) -> None:
        """Run by the writer thread once the final row is committed (or failed)."""
        if done.cancelled() or done.exception() is not None:
            log.error("job %s stays in memory: its final state was not written", job_id)
            return
        with self._lock:
            self._queued.pop(job_id, None)
        self.memory.discard(job_id)

    def request_cancel(self, job_id: str) -> JobHeader:
        try:
            return self.memory.request_cancel(job_id)
        except JobNotFound:
            return self.header(job_id)  # final, on disk: nothing to cancel

    def mark_interrupted(self, job_id: str) -> None:
        self.memory.mark_interrupted(job_id)

    def unfinished(self, job_id: str) -> list[int]:
        try:
            return self.memory.unfinished(job_id)
        except JobNotFound:
            self.stored.header(job_id)  # on disk, final: raises JobNotFound if not
            return []

    def urls(self, job_id: str) -> Sequence[str]:
        return self.memory.urls(job_id)

    def subscribe(self, job_id: str, callback: Callable[[], None]) -> Unsubscribe:
        try:
            return self.memory.subscribe(job_id, callback)
        except JobNotFound:
            fields = self.stored.header(job_id)  # raises JobNotFound if not on disk either
        if self.watch is not None and not fields["status"].final:
            return self.watch(job_id, callback)  # another replica's job, still running
        return lambda: None  # final on disk: it will not change, nothing to call

    def expire(self) -> int:
        return self.memory.expire()

    # --- reads: memory first, then the database -------------------------------------------
    def header(self, job_id: str) -> JobHeader:
        try:
            return self.memory.header(job_id)
        except JobNotFound:
            return views.header_model(self.stored.header(job_id))

    def page(self, job_id: str, offset: int, limit: int) -> JobPublic:
        return JobPublic.model_validate_json(self.page_json(job_id, offset, limit))

    def page_json(self, job_id: str, offset: int, limit: int) -> bytes:
        try:
            return self.memory.page_json(job_id, offset, limit)
        except JobNotFound:
            fields, bodies = self.stored.page(job_id, offset, limit)
        return views.page_json(views.header_json(fields), bodies, offset, limit)

    def results_since(self, job_id: str, start: int) -> tuple[list[bytes], JobHeader]:
        try:
            return self.memory.results_since(job_id, start)
        except JobNotFound:
            fields, bodies = self.stored.page(job_id, start, None)
        return bodies, views.header_model(fields)

    def results_since_json(self, job_id: str, start: int) -> StreamRead:
        """For a job on disk, at most STREAM_BATCH results at a time, read by seq; the header
        comes with the last of them."""
        try:
            return self.memory.results_since_json(job_id, start)
        except JobNotFound:
            fields, found = self.stored.stream(job_id, start, STREAM_BATCH)
        next_start = found[-1][0] + 1 if found else start
        # Done at `completed`, or where the results on disk end (should some have been lost,
        # see `lost`): a stream must end either way.
        end = next_start >= fields["completed"] or len(found) < STREAM_BATCH
        done = fields["status"].final and end
        header = views.header_json(fields) if done else None
        return StreamRead([body for _, body in found], next_start, header)

    def list_jobs(
        self, offset: int, limit: int, where: JobFilter = NO_FILTER
    ) -> tuple[list[JobHeader], int]:
        listed, count = self._listed(offset, limit, where)
        return [views.header_model(fields) for fields in listed], count

    def list_json(self, offset: int, limit: int, where: JobFilter = NO_FILTER) -> bytes:
        listed, count = self._listed(offset, limit, where)
        return views.list_json([views.header_json(f) for f in listed], count, offset, limit)

    def _listed(
        self, offset: int, limit: int, where: JobFilter
    ) -> tuple[list[dict[str, Any]], int]:
        """The database's page of jobs, with the live state of those still in memory (the
        database's may be a flush interval behind)."""
        stored, count = self.stored.listed(offset, limit, where)
        live = self.memory.header_fields([fields["id"] for fields in stored])
        return [live.get(fields["id"], fields) for fields in stored], count

    def in_memory(self, job_id: str) -> bool:
        return self.memory.in_memory(job_id)

    def active_job_ids(self) -> list[str]:
        return self.memory.active_job_ids()

    def count_by_status(self) -> dict[JobStatus, int]:
        if self.cluster_counts is not None:
            return self.cluster_counts()
        return self.counts.snapshot()

    def _move(self, job_id: str, status: JobStatus) -> None:
        with self._lock:
            queued = self._queued.get(job_id)
            if queued is not None:
                self._move_locked(queued, status)

    def _move_locked(self, queued: _Queued, status: JobStatus) -> None:
        """Count the job in `status` now. Its moves may arrive out of order (a job started
        and finished on two threads at once): a final status is never left, and queued
        never returned to."""
        if queued.status.final or status is queued.status or status is JobStatus.QUEUED:
            return
        self.counts.moved(queued.status, status)
        queued.status = status

    @property
    def max_bytes(self) -> int:
        return self.memory.max_bytes

    def retained_bytes(self) -> int:
        return self.memory.retained_bytes()

    # --- the writer -----------------------------------------------------------------------
    def _commit(
        self, write: Callable[[Connection], Any], what: str, undo: Callable[[Connection], Any]
    ) -> None:
        """Run `write` through the writer and wait until it is committed. Refused after all
        (no answer in time), the write is cancelled if not begun, else taken back by `undo`
        should it commit later."""
        try:
            future = self.writer.submit(write)
        except WriterFull as exc:
            raise StoreBusy(f"{what}: the database is behind ({exc})") from None
        except WriterClosed as exc:
            raise StoreUnavailable(f"{what}: {exc}") from None
        try:
            try:
                future.result(self.commit_timeout_s)
            except FutureTimeout:
                if future.cancel():  # the writer had not begun it: it never will
                    raise
                # Begun: it commits or fails soon. Refusing now would leave a job kept that
                # its client was told was not.
                log.warning(
                    "a write begun by the database is not confirmed after %g s: waiting once more",
                    self.commit_timeout_s,
                )
                future.result(self.commit_timeout_s)
        except FutureTimeout:
            future.add_done_callback(lambda done: self._take_back(done, undo, what))
            raise StoreUnavailable(
                f"{what}: the database did not confirm it within {self.commit_timeout_s:g} s"
            ) from None
        except Exception as exc:
            reason = reason_of(exc, self.database.url.password)
            raise StoreUnavailable(f"{what}: {reason}") from None

    def _take_back(self, done: Future[Any], undo: Callable[[Connection], Any], what: str) -> None:
        """Run by the writer thread: a write refused to its caller committed late."""
        if done.cancelled() or done.exception() is not None:
            return  # never kept: nothing to take back
        try:  # not _offer: its wait for room would be the writer waiting for itself
            self.writer.put(undo)
        except (WriterFull, WriterClosed) as exc:
            log.error(
                "a write refused to its caller (%s) committed late, and could not be "
                "taken back: %s",
                what,
                exc,
            )

    def _put(self, write: Callable[[Connection], Any]) -> None:
        self._offer(lambda: self.writer.put(write), "a job's state")

    def _lose(self, message: str) -> None:
        with self._lock:
            self.lost += 1
        log.warning("%s", message)
