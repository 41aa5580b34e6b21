"""The durable results store: the memory store for jobs not yet wholly on disk, a database
behind it for everything.

Accepted means kept: a job's row and URLs are committed before `create_job` returns. Results
go to memory first (first writer wins, streams are woken as before), then to the writer's
queue as rows; a job's final row follows its last result (the writer is FIFO), and once it is
committed the job leaves memory: memory holds running jobs, not history. Reads look in memory
first, then in the database, so a job is found at every moment: it leaves memory only after
its final row is committed. No database I/O happens under the memory store's lock, nor under
this store's own (which only counts the rows queued per job).
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import Connection
from sqlalchemy.exc import SQLAlchemyError

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
    Unsubscribe,
)
from app.store.memory import MemoryStore

log = logging.getLogger("urlhealth.store")

T = TypeVar("T")
# Results a stream reads from the database at a time (a finished job's may be 100,000).
STREAM_BATCH = 5000


@dataclass(slots=True)
class _Queued:
    """A job in memory: how many of its results were handed to the writer, and its final
    header's fields once its last result was recorded."""

    total: int
    queued: int = 0
    final: dict[str, Any] | None = None


class DurableStore:
    def __init__(
        self,
        database: Database,
        writer: Writer,
        memory: MemoryStore,
        owner: str,
        commit_timeout_s: float = 10.0,
    ) -> None:
        self.database = database
        self.writer = writer
        self.memory = memory
        self._owner = owner
        self._commit_timeout_s = commit_timeout_s
        self._lock = threading.Lock()
        self._queued: dict[str, _Queued] = {}
        self.lost = 0  # results the writer would not take (its queue full, or stopped)

    # --- writes ---------------------------------------------------------------------------
    def create_job(
        self, urls: Sequence[str], options: CheckOptionsPublic, duplicates_removed: int = 0
    ) -> JobHeader:
        job_id, created_at = uuid.uuid4().hex, datetime.now(UTC)
        fields = {
            "id": job_id,
            "status": JobStatus.QUEUED,
            "total": len(urls),
            "duplicates_removed": duplicates_removed,
            "options": options,
            "created_at": created_at,
        }
        self._commit(rows.insert_job(fields, urls, self._owner), "the job could not be kept")
        # In memory only once on disk: if keeping it failed, nothing is left behind.
        with self._lock:
            self._queued[job_id] = _Queued(len(urls))
        return self.memory.create_job(
            urls, options, duplicates_removed, job_id=job_id, created_at=created_at
        )

    def mark_started(self, job_id: str) -> None:
        started_at = self.memory.start(job_id)
        if started_at is not None:
            self._put(rows.mark_started(job_id, started_at))

    def record(self, job_id: str, index: int, result: CheckResult | StoredResult) -> bool:
        stored = result if isinstance(result, StoredResult) else StoredResult.of(result)
        kept = self.memory.keep(job_id, index, stored)
        if kept is None:
            return False
        try:
            self.writer.put_row(results, rows.result_row(job_id, index, kept.seq, stored))
        except (WriterFull, WriterClosed) as exc:
            self._lose(f"a result of job {job_id} was not written: {exc}")
        with self._lock:
            queued = self._queued[job_id]
            queued.queued += 1
            if kept.final is not None:
                queued.final = kept.final
            final = queued.final if queued.queued == queued.total else None
        # Every result of the job is in the writer's queue before its final row.
        if final is not None:
            self._finish(job_id, final)
        return True

    def _finish(self, job_id: str, final: dict[str, Any]) -> None:
        try:
            future = self.writer.submit(rows.finish_job(final))
        except (WriterFull, WriterClosed) as exc:
            self._lose(f"job {job_id}'s final state was not written: {exc}")
            return
        future.add_done_callback(lambda done: self._on_disk(job_id, done))

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
            self.header(job_id)  # on disk, final: raises JobNotFound if not
            return []

    def urls(self, job_id: str) -> Sequence[str]:
        return self.memory.urls(job_id)

    def subscribe(self, job_id: str, callback: Callable[[], None]) -> Unsubscribe:
        try:
            return self.memory.subscribe(job_id, callback)
        except JobNotFound:
            self.header(job_id)  # a final job on disk will not change: nothing to call
            return lambda: None

    def expire(self) -> int:
        return self.memory.expire()

    # --- reads: memory first, then the database -------------------------------------------
    def header(self, job_id: str) -> JobHeader:
        try:
            return self.memory.header(job_id)
        except JobNotFound:
            return views.header_model(self._stored_header(job_id))

    def page(self, job_id: str, offset: int, limit: int) -> JobPublic:
        return JobPublic.model_validate_json(self.page_json(job_id, offset, limit))

    def page_json(self, job_id: str, offset: int, limit: int) -> bytes:
        try:
            return self.memory.page_json(job_id, offset, limit)
        except JobNotFound:
            pass

        def read(connection: Connection) -> tuple[dict[str, Any] | None, list[bytes]]:
            fields = rows.read_header(connection, job_id)
            if fields is None:
                return None, []
            return fields, rows.read_results(connection, job_id, offset, offset + limit)

        fields, bodies = self._read(read)
        if fields is None:
            raise JobNotFound(job_id)
        return views.page_json(views.header_json(fields), bodies, offset, limit)

    def results_since(self, job_id: str, start: int) -> tuple[list[bytes], JobHeader]:
        try:
            return self.memory.results_since(job_id, start)
        except JobNotFound:
            fields, bodies = self._stored_since(job_id, start, None)
            return bodies, views.header_model(fields)

    def results_since_json(self, job_id: str, start: int) -> tuple[list[bytes], bytes | None]:
        """For a job on disk, at most STREAM_BATCH results at a time; the header comes with
        the last of them."""
        try:
            return self.memory.results_since_json(job_id, start)
        except JobNotFound:
            fields, bodies = self._stored_since(job_id, start, STREAM_BATCH)
        done = fields["status"].final and start + len(bodies) >= fields["completed"]
        return bodies, views.header_json(fields) if done else None

    def _stored_since(
        self, job_id: str, start: int, count: int | None
    ) -> tuple[dict[str, Any], list[bytes]]:
        def read(connection: Connection) -> tuple[dict[str, Any] | None, list[bytes]]:
            fields = rows.read_header(connection, job_id)
            if fields is None:
                return None, []
            stop = fields["completed"] if count is None else start + count
            return fields, rows.read_results(connection, job_id, start, stop)

        fields, bodies = self._read(read)
        if fields is None:
            raise JobNotFound(job_id)
        return fields, bodies

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
        stored, count = self._read(lambda c: rows.read_list(c, offset, limit, where))
        live = self.memory.header_fields([fields["id"] for fields in stored])
        return [live.get(fields["id"], fields) for fields in stored], count

    def active_job_ids(self) -> list[str]:
        return self.memory.active_job_ids()

    def count_by_status(self) -> dict[JobStatus, int]:
        live = self.memory.statuses()

        def read(connection: Connection) -> tuple[dict[str, int], dict[str, str]]:
            return rows.count_by_status(connection), rows.statuses_of(connection, live)

        stored, stale = self._read(read)
        counts = dict.fromkeys(JobStatus, 0)
        for status, count in stored.items():
            counts[JobStatus(status)] += count
        for job_id, status in stale.items():  # counted live instead
            counts[JobStatus(status)] -= 1
            counts[live[job_id]] += 1
        return counts

    @property
    def max_bytes(self) -> int:
        return self.memory.max_bytes

    def retained_bytes(self) -> int:
        return self.memory.retained_bytes()

    # --- the database ---------------------------------------------------------------------
    def _stored_header(self, job_id: str) -> dict[str, Any]:
        fields = self._read(lambda c: rows.read_header(c, job_id))
        if fields is None:
            raise JobNotFound(job_id)
        return fields

    def _read(self, read: Callable[[Connection], T]) -> T:
        try:
            with self.database.engine.connect() as connection:
                return read(connection)
        except SQLAlchemyError as exc:
            reason = _reason(exc, self.database.url.password)
            raise StoreUnavailable(f"the database cannot be read: {reason}") from None

    def _commit(self, write: Callable[[Connection], Any], what: str) -> None:
        """Run `write` through the writer and wait until it is committed."""
        try:
            future = self.writer.submit(write)
        except WriterFull as exc:
            raise StoreBusy(f"{what}: the database is behind ({exc})") from None
        except WriterClosed as exc:
            raise StoreUnavailable(f"{what}: {exc}") from None
        try:
            future.result(self._commit_timeout_s)
        except FutureTimeout:
            future.cancel()  # if the writer has not begun it, it never will
            raise StoreUnavailable(
                f"{what}: the database did not confirm it within {self._commit_timeout_s:g} s"
            ) from None
        except Exception as exc:
            reason = _reason(exc, self.database.url.password)
            raise StoreUnavailable(f"{what}: {reason}") from None

    def _put(self, write: Callable[[Connection], Any]) -> None:
        try:
            self.writer.put(write)
        except (WriterFull, WriterClosed) as exc:
            self._lose(f"a job's state was not written: {exc}")

    def _lose(self, message: str) -> None:
        with self._lock:
            self.lost += 1
        log.warning("%s", message)


def _reason(exc: BaseException, password: str | None) -> str:
    """The driver's first line (SQLAlchemy's own adds the statement, which may be long),
    with the password scrubbed should a driver echo it."""
    original = getattr(exc, "orig", None) or exc
    text = str(original).strip()
    reason = text.splitlines()[0] if text else type(original).__name__
    return reason.replace(str(password), "***") if password else reason
