"""Batch jobs on a cluster, from the API's side: submitting and cancelling, on any replica.

A job submitted here is admitted against `max_queued_checks` for the whole cluster (the
checks of unfinished jobs, counted in the database under an advisory lock, so two replicas
admitting at once cannot both pass the bound), and kept with its URLs and its chunk tasks in
ONE transaction: an accepted job always has tasks that will run it, and a job whose tasks
could not be queued was never accepted (the client gets 503 and nothing is left behind).
Its owner is CLUSTER_OWNER, not this process: the API replica that took it may restart
without the job being called interrupted (app/store/recovery.py leaves such jobs to the
queue, whose own recovery re-runs a dead worker's chunks).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from sqlalchemy import Connection, func, select, text, update
from sqlalchemy.exc import SQLAlchemyError

from app.cluster.batch import JOBS_CHANNEL, write_batch
from app.cluster.queue import TaskQueue
from app.cluster.wakeups import notify
from app.db.engine import Database
from app.db.schema import UNFINISHED, job_urls, jobs
from app.engine.checker import unfinished_result
from app.engine.ledger import Overloaded
from app.schemas.jobs import CheckOptionsPublic, JobHeader
from app.schemas.results import ErrorKind
from app.store import rows, views
from app.store.base import JobNotFound, StoredResult, StoreUnavailable
from app.store.rows import CLUSTER_OWNER
from app.store.stored import StoredJobs, reason_of

T = TypeVar("T")

CHUNK_TASK = "urlhealth.chunk"
# The same words as single-process mode (app/engine/dispatcher.py).
CANCELLED_MESSAGE = "job cancelled before this check started"
# One lock for admission across the cluster (pg_advisory_xact_lock's key).
_ADMISSION_LOCK = 0x75726C68  # "urlh"


class ClusterJobs:
    def __init__(
        self, database: Database, queue: TaskQueue, max_queued: int, chunk_size: int
    ) -> None:
        self._database = database
        self._queue = queue
        self._max_queued = max_queued
        self._chunk_size = chunk_size

    def submit(
        self, urls: Sequence[str], options: CheckOptionsPublic, duplicates_removed: int = 0
    ) -> JobHeader:
        """Admit, keep and queue a job; raises Overloaded (429) or StoreUnavailable (503)."""
        fields = rows.new_job(len(urls), options, duplicates_removed)
        job_id = fields["id"]
        keep = rows.insert_job(fields, urls, CLUSTER_OWNER)
        chunks = [
            {"job_id": job_id, "start": start, "stop": min(start + self._chunk_size, len(urls))}
            for start in range(0, len(urls), self._chunk_size)
        ]

        def write(connection: Connection) -> None:
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ADMISSION_LOCK})
            pending = int(
                connection.execute(
                    select(func.coalesce(func.sum(jobs.c.total - jobs.c.completed), 0)).where(
                        jobs.c.status.in_(UNFINISHED)
                    )
                ).scalar_one()
            )
            if pending + len(urls) > self._max_queued:
                raise Overloaded(pending, self._max_queued, len(urls))
            keep(connection)
            self._queue.defer_in(connection, CHUNK_TASK, chunks)
            notify(connection, JOBS_CHANNEL, job_id)

        self._transaction(write, "the job could not be kept")
        return self.header(job_id)

    def cancel(self, job_id: str) -> JobHeader:
        """Ask the job's chunks to stop: those not started are cancelled in the queue and
        their URLs recorded `cancelled` here; running ones see the flag within a second and
        record the rest the same way. Raises JobNotFound."""

        def ask(connection: Connection) -> None:
            found = connection.execute(select(jobs.c.status).where(jobs.c.id == job_id)).first()
            if found is None:
                raise JobNotFound(job_id)
            if found.status in UNFINISHED:
                connection.execute(
                    update(jobs).where(jobs.c.id == job_id).values(cancel_requested=True)
                )
                notify(connection, JOBS_CHANNEL, job_id)

        self._transaction(ask, "the job could not be cancelled")
        waiting = self._transaction(
            lambda c: self._queue.waiting(c, CHUNK_TASK, "job_id", job_id), "the job's tasks"
        )
        cancelled = set(self._queue.cancel([queue_id for queue_id, _ in waiting]))
        ranges = [(a["start"], a["stop"]) for queue_id, a in waiting if queue_id in cancelled]
        if ranges:
            self._transaction(lambda c: self._cancel_ranges(c, job_id, ranges), "cancelled checks")
        return self.header(job_id)

    @staticmethod
    def _cancel_ranges(connection: Connection, job_id: str, ranges: list[tuple[int, int]]) -> None:
        """`cancelled` results for the URLs of chunks that will not run (write_batch keeps
        only those with no result yet)."""
        batch: list[tuple[int, StoredResult]] = []
        for start, stop in ranges:
            found = connection.execute(
                select(job_urls.c.idx, job_urls.c.url).where(
                    job_urls.c.job_id == job_id, job_urls.c.idx >= start, job_urls.c.idx < stop
                )
            )
            batch.extend((index, cancelled_result(url)) for index, url in found)
        write_batch(connection, job_id, batch)

    def header(self, job_id: str) -> JobHeader:
        return views.header_model(StoredJobs(self._database).header(job_id))

    def _transaction(self, write: Callable[[Connection], T], what: str) -> T:
        try:
            with self._database.engine.begin() as connection:
                return write(connection)
        except SQLAlchemyError as exc:
            reason = reason_of(exc, self._database.url.password)
            raise StoreUnavailable(f"{what}: {reason}") from None


def cancelled_result(url: str) -> StoredResult:
    return StoredResult.of(unfinished_result(url, ErrorKind.CANCELLED, CANCELLED_MESSAGE))
