"""One writer of cluster job results per worker process: the batches of every chunk running
here, grouped by job, each job's written in ONE transaction per turn (group commit).

A job's row lock makes its `seq` dense (app/cluster/batch.py), so its writers take turns on
it. With every chunk writing its own batches, the chunks of one job on every worker queued
on that lock (99 % of PostgreSQL's statement time in bench S3). Here a chunk hands its batch
to `write` and waits on the future for the `Written` (its cancel flag); the thread writes, per
job, everything handed in since its last turn: at most one transaction per job per process
is in flight, each carrying all that arrived meanwhile.

A chunk's results are committed before its `write` returns, so a chunk never ends (and the
queue never marks its task done) with results in hand. The database away (PostgreSQL
restarted) is waited for with the batches kept; a batch waiting longer than the patience
fails with HandBack, as ChunkRunner._retrying did (its chunk runs again elsewhere). After
`stop` begins, a failed write is not retried: the batches it carried fail with HandBack.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field

from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from app.cluster.batch import Written
from app.cluster.group_write import write_group
from app.cluster.queue import HandBack
from app.db.engine import Database
from app.store.base import StoredResult

log = logging.getLogger("urlhealth.cluster")

Batch = Sequence[tuple[int, StoredResult]]

# Longest wait for a batch before the stop flag is looked at again.
_POLL_S = 0.5
DATABASE_PATIENCE_S = 120.0


@dataclass(eq=False, slots=True)
class _Handed:
    batch: Batch
    future: Future[Written | None] = field(default_factory=Future)
    since: float = field(default_factory=time.monotonic)


class ResultsWriter:
    def __init__(self, database: Database, patience_s: float = DATABASE_PATIENCE_S) -> None:
        self._database = database
        self._patience_s = patience_s
        self._lock = threading.Lock()
        self._pending: dict[str, list[_Handed]] = {}  # job id -> batches, in hand-in order
        self._wake = threading.Event()  # a batch was handed in, or stop began
        self._halt = threading.Event()  # stop began: no retry, no wait between retries
        self._closed = False
        self._thread: threading.Thread | None = None
        # Kept open between turns, by the writer's thread only: a checkout per turn cost a
        # pre-ping and a reset, two round trips more than the turn's two statements.
        self._connection: Connection | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="results-writer", daemon=True)
        self._thread.start()

    def write(self, job_id: str, batch: Batch) -> Future[Written | None]:
        """Hand in a batch; the future gives its job's `Written` (None: the job is gone)
        once committed, or raises HandBack."""
        handed = _Handed(list(batch))
        with self._lock:
            closed = self._closed
            if not closed:
                self._pending.setdefault(job_id, []).append(handed)
        if closed:
            handed.future.set_exception(HandBack())
        else:
            self._wake.set()
        return handed.future

    def stop(self, timeout_s: float) -> bool:
        """Write what was handed in (once: no retry), then end; called once no chunk runs.
        False if the thread did not end in time."""
        with self._lock:
            self._closed = True
        self._halt.set()
        self._wake.set()
        if self._thread is None:
            return True
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    def _loop(self) -> None:
        try:
            self._turns()
        finally:
            self._disconnect()

    def _turns(self) -> None:
        delay = 0.1
        while True:
            self._wake.wait(_POLL_S)
            self._wake.clear()
            with self._lock:
                taken, self._pending = self._pending, {}
                closed = self._closed
            if not taken:
                if closed:
                    return
                continue
            failed = [job_id for job_id, handed in taken.items() if not self._turn(job_id, handed)]
            if not failed:
                delay = 0.1
                continue
            with self._lock:  # kept for the next turn, before what came meanwhile
                for job_id in failed:
                    self._pending[job_id] = taken[job_id] + self._pending.get(job_id, [])
            self._wake.set()
            self._halt.wait(delay)  # not `_wake`: batches handed in meanwhile wait too
            delay = min(2.0, delay * 2)

    def _turn(self, job_id: str, handed: list[_Handed]) -> bool:
        """One transaction for the job's batches; False if it is to be tried again."""
        batches = [h.batch for h in handed]
        try:
            written = self._transaction(job_id, batches)
        except SQLAlchemyError as exc:
            return self._failed(job_id, handed, exc)
        except Exception as exc:  # a bug: the chunks' own handling ends their job
            log.exception("results of job %s could not be written", job_id)
            for h in handed:
                h.future.set_exception(exc)
            return True
        for h in handed:
            h.future.set_result(written)
        return True

    def _transaction(self, job_id: str, batches: list[Batch]) -> Written | None:
        """Each statement its own transaction (see app/cluster/group_write.py), on the
        writer's connection; after an error it is given up and the next turn opens one
        (the pool's pre-ping then checks it)."""
        if self._connection is None:
            opened = self._database.engine.connect()
            self._connection = opened.execution_options(isolation_level="AUTOCOMMIT")
        connection = self._connection
        try:
            try:
                written = write_group(connection, job_id, batches)
            except IntegrityError:
                # Another writer kept one of these indexes after this one's read: again.
                written = write_group(connection, job_id, batches)
            connection.commit()  # ends SQLAlchemy's own transaction; nothing is sent
            return written
        except BaseException:
            self._disconnect()
            raise

    def _disconnect(self) -> None:
        connection, self._connection = self._connection, None
        if connection is None:
            return
        try:
            connection.invalidate()  # not back to the pool: it may be broken
            connection.close()
        except SQLAlchemyError as exc:
            log.debug("the results writer's connection closed with an error: %s", exc)

    def _failed(self, job_id: str, handed: list[_Handed], exc: SQLAlchemyError) -> bool:
        """After a failed transaction: HandBack for the batches waiting longer than the
        patience (all of them once stop began); True if none is left to retry."""
        now = time.monotonic()
        given_up = [h for h in handed if self._halt.is_set() or now - h.since >= self._patience_s]
        for h in given_up:
            h.future.set_exception(HandBack())
        if given_up:
            log.error("results of job %s handed back: the database is away", job_id)
        kept = [h for h in handed if h not in given_up]
        if not kept:
            return True
        log.warning("results of job %s not written, retrying: %s", job_id, str(exc).splitlines()[0])
        handed[:] = kept
        return False
