"""Retention on disk: finished jobs older than the age limit, or beyond the newest N jobs, are
deleted with their URLs and results. Jobs not final (queued, running) are never deleted.

The work is cut into small batches, each one short transaction, meant to run through the
writer one at a time (`writer.submit(lambda c: prune_batch(c, ...))`): results written
meanwhile queue behind one batch, never behind the whole clean-up. A batch is bounded in jobs
and in rows, so a job with 100,000 results goes over several calls, its job row last.

SQLite keeps freed pages in the file until they are given back: with auto_vacuum=INCREMENTAL
(app/db/engine.py) each batch then returns up to `vacuum_pages` of them. Python's sqlite3
steps a statement that returns no rows once, and one step of `incremental_vacuum` frees one
page, so the pragma runs once a page (cheap: a prepared statement, no I/O until commit).
In WAL mode the file itself shrinks at the next checkpoint.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, TypeVar

from sqlalchemy import Connection, delete, or_, select

from app.db import schema
from app.db.engine import Database

log = logging.getLogger(__name__)

BATCH_JOBS = 500
BATCH_ROWS = 5_000  # URLs + results deleted in one transaction, about (bench/retention.py)
VACUUM_PAGES = 250  # 1 MB of 4 KB pages given back per batch: moving pages is the slow part
MAX_BATCHES_PER_ROUND = 100_000  # a bound, not a target: a round ends when nothing is left


@dataclass(frozen=True, slots=True)
class Pruned:
    """What one batch (or a sum of them) did; `more`: call again, something is left.
    `deleted`: the jobs deleted, by their (final) status, so that counts kept elsewhere
    (the store's jobs by status) can follow without counting the table again."""

    jobs: int = 0
    rows: int = 0
    pages: int = 0
    more: bool = False
    deleted: Mapping[str, int] = field(default_factory=dict)

    def __add__(self, other: Pruned) -> Pruned:
        deleted = dict(self.deleted)
        for status, count in other.deleted.items():
            deleted[status] = deleted.get(status, 0) + count
        return Pruned(
            self.jobs + other.jobs,
            self.rows + other.rows,
            self.pages + other.pages,
            other.more,
            deleted,
        )


def prune_batch(
    connection: Connection,
    *,
    older_than: datetime,
    keep_max_jobs: int,
    batch_jobs: int = BATCH_JOBS,
    batch_rows: int = BATCH_ROWS,
    vacuum_pages: int = VACUUM_PAGES,
) -> Pruned:
    """Delete one batch of expired finished jobs, oldest first, inside the caller's
    transaction: those finished before `older_than`, and those beyond the newest
    `keep_max_jobs` (every job counts towards it; only final ones are deleted)."""
    candidates, full = _candidates(connection, older_than, keep_max_jobs, batch_jobs)
    if not candidates:
        return vacuum(connection, vacuum_pages, Pruned())
    first_id, (first_total, first_status) = candidates[0]
    if 2 * first_total > batch_rows:  # URLs and results: more than one batch holds
        part = _prune_part(connection, first_id, first_status, batch_rows)
        return vacuum(connection, vacuum_pages, part)
    taken: list[str] = []
    deleted: dict[str, int] = {}
    budget = batch_rows
    for job_id, (total, status) in candidates:
        if 2 * total > budget:
            break
        taken.append(job_id)
        deleted[status] = deleted.get(status, 0) + 1
        budget -= 2 * total
    rows = 0
    for table in (schema.results, schema.job_urls):
        rows += connection.execute(delete(table).where(table.c.job_id.in_(taken))).rowcount
    connection.execute(delete(schema.jobs).where(schema.jobs.c.id.in_(taken)))
    more = full or len(taken) < len(candidates)
    return vacuum(connection, vacuum_pages, Pruned(len(taken), rows, 0, more, deleted))


def _candidates(
    connection: Connection, older_than: datetime, keep_max_jobs: int, limit: int
) -> tuple[list[tuple[str, tuple[int, str]]], bool]:
    """Up to `limit` (job id, (URL count, status)) to delete, and whether the limit was
    reached.

    One query per reason, each a range of an index, so that finding nothing to delete in
    100,000 jobs reads only the index entries near the limits (one query with an OR of the
    reasons was measured scanning every job: 80 ms with nothing to do)."""
    jobs = schema.jobs
    final = jobs.c.status.not_in(schema.UNFINISHED)
    found = select(jobs.c.id, jobs.c.total, jobs.c.status)
    queries = []
    # The newest job beyond the count limit: it and every older one are in excess.
    boundary = connection.execute(
        select(jobs.c.created_at, jobs.c.id)
        .order_by(jobs.c.created_at.desc(), jobs.c.id.desc())
        .offset(keep_max_jobs)
        .limit(1)
    ).first()
    if boundary is not None:
        at, last_id = boundary
        queries.append(
            found.where(
                final,
                jobs.c.created_at <= at,  # the index range; the OR below only filters it
                or_(jobs.c.created_at < at, jobs.c.id <= last_id),
            ).order_by(jobs.c.created_at, jobs.c.id)
        )
    queries.append(found.where(final, jobs.c.finished_at < older_than).order_by(jobs.c.finished_at))
    # A final job without an end time (none should exist): aged by its creation.
    queries.append(found.where(final, jobs.c.finished_at.is_(None), jobs.c.created_at < older_than))
    candidates: dict[str, tuple[int, str]] = {}
    for query in queries:
        want = limit - len(candidates)
        if want <= 0:
            return list(candidates.items()), True
        rows = connection.execute(query.limit(want)).all()
        for job_id, total, status in rows:
            candidates.setdefault(job_id, (total, status))
        if len(rows) == want:
            return list(candidates.items()), True
    return list(candidates.items()), False


def _prune_part(connection: Connection, job_id: str, status: str, batch_rows: int) -> Pruned:
    """Up to `batch_rows` of one big job's rows; the job's row too once none are left."""
    budget = batch_rows
    for table in (schema.results, schema.job_urls):
        some = select(table.c.idx).where(table.c.job_id == job_id).limit(budget)
        statement = delete(table).where(table.c.job_id == job_id, table.c.idx.in_(some))
        budget -= connection.execute(statement).rowcount
        if budget <= 0:
            return Pruned(0, batch_rows, 0, True)
    connection.execute(delete(schema.jobs).where(schema.jobs.c.id == job_id))
    return Pruned(1, batch_rows - budget, 0, True, {status: 1})


def vacuum(connection: Connection, pages: int, pruned: Pruned) -> Pruned:
    if connection.dialect.name != "sqlite" or pages <= 0:
        return pruned
    free = int(connection.exec_driver_sql("PRAGMA freelist_count").scalar_one())
    for _ in range(min(free, pages)):
        connection.exec_driver_sql("PRAGMA incremental_vacuum(1)")
    left = int(connection.exec_driver_sql("PRAGMA freelist_count").scalar_one())
    return replace(pruned, pages=free - left, more=pruned.more or 0 < left < free)


def prune(
    database: Database,
    *,
    older_than: datetime,
    keep_max_jobs: int,
    batch_jobs: int = BATCH_JOBS,
    batch_rows: int = BATCH_ROWS,
    vacuum_pages: int = VACUUM_PAGES,
) -> Pruned:
    """Every batch, one transaction each, on this connection pool: for a process that has
    no writer (a CLI command) and for tests. A service prunes through its writer."""
    total = Pruned(more=True)
    for _ in range(MAX_BATCHES_PER_ROUND):
        with database.write_engine.begin() as connection:
            total += prune_batch(
                connection,
                older_than=older_than,
                keep_max_jobs=keep_max_jobs,
                batch_jobs=batch_jobs,
                batch_rows=batch_rows,
                vacuum_pages=vacuum_pages,
            )
        if not total.more:
            break
    return total


T = TypeVar("T")


class Submit(Protocol):
    """The writer's `submit`."""

    def __call__(self, write: Callable[[Connection], T]) -> Future[T]: ...


class RunBatch(Protocol):
    """Runs one batch through the writer and waits for it: its result, or None once the loop
    is stopping (the batch then is not made, if the writer had not started it)."""

    def __call__(self, write: Callable[[Connection], T]) -> T | None: ...


# More to prune in each round, after the jobs (app/monitors/retention.py): given the round's
# time and a way to run batches, the round's total, or None if stopped before its end.
RetentionTask = Callable[[datetime, RunBatch], Pruned | None]


def _utcnow() -> datetime:
    return datetime.now(UTC)


class RetentionLoop:
    """A thread that prunes every `interval_s` (first at start), one batch at a time through
    `submit` (the writer's), waiting for each before the next. stop() ends it at once.

    `on_deleted` is told the jobs each batch deleted, by status, once it is committed (from
    the writer's thread, as the batch's future completes), even if the loop stopped waiting
    for it: whoever counts jobs never misses a deletion."""

    def __init__(
        self,
        submit: Submit,
        *,
        retention_days: float,
        max_jobs: int,
        interval_s: float,
        clock: Callable[[], datetime] = _utcnow,
        batch_jobs: int = BATCH_JOBS,
        batch_rows: int = BATCH_ROWS,
        tasks: Sequence[RetentionTask] = (),
        on_deleted: Callable[[Mapping[str, int]], None] | None = None,
    ) -> None:
        self._submit = submit
        self._tasks = tuple(tasks)
        self._on_deleted = on_deleted
        self._age = timedelta(days=retention_days)
        self._max_jobs = max_jobs
        self._interval = interval_s
        self._clock = clock
        self._batch = (batch_jobs, batch_rows)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="db-retention", daemon=True)
        self.last_round: Pruned | None = None  # what the last complete round deleted

    def start(self) -> RetentionLoop:
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 10.0) -> bool:
        """End the loop (a batch already with the writer still runs); True once ended."""
        self._stop.set()
        if self._thread.ident is not None:
            self._thread.join(timeout_s)
        return not self._thread.is_alive()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                pruned = self._round()
            except Exception as exc:  # the writer stopped or gave up, the database is away
                log.warning("retention round ended early: %s", exc)
            else:
                if pruned is not None:
                    self.last_round = pruned
                    if pruned.jobs or pruned.rows or pruned.pages:
                        log.info(
                            "retention deleted %d jobs, %d rows (jobs' and monitors' history), "
                            "gave back %d pages",
                            pruned.jobs,
                            pruned.rows,
                            pruned.pages,
                        )
            self._stop.wait(self._interval)

    def _round(self) -> Pruned | None:
        """One round: batches until nothing is left; None if stopped before its end."""
        now = self._clock()
        older_than = now - self._age
        batch_jobs, batch_rows = self._batch
        total = Pruned()
        for _ in range(MAX_BATCHES_PER_ROUND):
            pruned = self._run_batch(
                lambda c: prune_batch(
                    c,
                    older_than=older_than,
                    keep_max_jobs=self._max_jobs,
                    batch_jobs=batch_jobs,
                    batch_rows=batch_rows,
                ),
                # The job counts follow what is deleted once it is committed, even if this
                # loop stopped waiting for it.
                self._committed,
            )
            if pruned is None:
                return None
            total += pruned
            if not total.more or self._stop.is_set():
                break
        for task in self._tasks:
            if self._stop.is_set():
                return None
            done = task(now, self._run_batch)
            if done is None:
                return None
            total = Pruned(total.jobs, total.rows + done.rows, total.pages + done.pages)
        return total

    def _run_batch(
        self,
        write: Callable[[Connection], T],
        committed: Callable[[Future[T]], None] | None = None,
    ) -> T | None:
        future = self._submit(write)
        if committed is not None:
            future.add_done_callback(committed)
        if not _wait(future, self._stop):
            future.cancel()  # if the writer has not started it, it is not made
            return None
        return future.result()

    def _committed(self, future: Future[Pruned]) -> None:
        if self._on_deleted is None or future.cancelled() or future.exception() is not None:
            return
        deleted = future.result().deleted
        if deleted:
            self._on_deleted(deleted)


def _wait(future: Future[Any], stop: threading.Event) -> bool:
    """Wait for `future`; False if `stop` is set first (looked at every 0.2 s)."""
    done = threading.Event()
    future.add_done_callback(lambda _f: done.set())
    while not done.wait(0.2):
        if stop.is_set():
            return False
    return True
