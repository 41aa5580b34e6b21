"""The `urlhealth.chunk` task: a range of a cluster job's URLs, run on this replica's one
shared pool (`Dispatcher.check_now`), written back in batches through the process's one
ResultsWriter (app/cluster/results_writer.py), which keeps the batches of all chunks of a
job running here in one statement (app/cluster/group_write.py).

Exactly once: the chunk runs only the URLs of its range with no result yet (a chunk taken up
again after its worker died or handed it back skips what was written), and each batch keeps
only results for indexes still without one. A cancel is seen in each batch's transaction,
or by a cheap read at least every `_CANCEL_POLL_S` while no batch is written; checks not
started then end `cancelled`. At shutdown the dispatcher's drain cancels the checks not
started (and a check cut off by the grace period ends `interrupted`): those are not
written, the chunk writes what finished and raises HandBack, and the queue runs the rest on
another worker. The database away (PostgreSQL restarted) is waited for, results in hand.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import TypeVar

import httpx
from sqlalchemy import Connection
from sqlalchemy.exc import SQLAlchemyError

from app.cluster.batch import Written, cancel_requested, mark_running, read_chunk
from app.cluster.ended import Ended
from app.cluster.jobs import cancelled_result
from app.cluster.queue import HandBack
from app.cluster.results_writer import DATABASE_PATIENCE_S, ResultsWriter
from app.db.engine import Database
from app.engine.checker import unfinished_result
from app.engine.dispatcher import Dispatcher, DispatchError
from app.inputs import engine_options
from app.schemas.jobs import CheckOptionsPublic
from app.schemas.results import CheckResult, ErrorKind
from app.store.base import StoredResult

log = logging.getLogger("urlhealth.cluster")

T = TypeVar("T")

# A batch is written when it holds this many results, or its first waited this long.
BATCH_RESULTS = 100
BATCH_WAIT_S = 0.05
_CANCEL_POLL_S = 0.5


class ChunkRunner:
    def __init__(
        self,
        database: Database,
        dispatcher: Dispatcher,
        stopping: threading.Event,
        writer: ResultsWriter,
    ) -> None:
        self._database = database
        self._dispatcher = dispatcher
        self._writer = writer  # this process's one writer of results, all chunks' batches
        self._stopping = stopping  # set when this process begins its shutdown
        self._pause = threading.Event()  # never set: the wait between database retries

    def __call__(self, job_id: str, start: int, stop: int) -> None:
        try:
            self._chunk(job_id, start, stop)
        except HandBack:
            raise
        except Exception as exc:  # a bug, or a job row it cannot read: end it, not strand it
            log.exception("chunk %s[%d:%d] failed", job_id, start, stop)
            self._fail(job_id, start, stop, f"{type(exc).__name__}: {exc}")

    def _fail(self, job_id: str, start: int, stop: int, why: str) -> None:
        """Record the chunk's URLs still without a result as `internal` errors, so its job
        ends (a failed task left the job `running` for good); raises if even that fails."""
        plan = self._retrying(lambda c: read_chunk(c, job_id, start, stop), "read")
        if plan is None or not plan.urls:
            return
        message = f"the check could not be run: {why}"
        batch = [
            (index, StoredResult.of(unfinished_result(url, ErrorKind.INTERNAL, message)))
            for index, url in plan.urls
        ]
        self._write(job_id, batch)

    def _chunk(self, job_id: str, start: int, stop: int) -> None:
        plan = self._retrying(lambda c: read_chunk(c, job_id, start, stop), "read")
        if plan is None or not plan.urls:
            return
        if plan.cancel_requested:
            batch = [(index, cancelled_result(url)) for index, url in plan.urls]
            self._write(job_id, batch)
            return
        if self._stopping.is_set():
            raise HandBack
        self._retrying(lambda c: mark_running(c, job_id), "start")
        options = engine_options(CheckOptionsPublic.model_validate(plan.options))
        urls = [url for _, url in plan.urls]
        try:
            futures = self._dispatcher.check_now(urls, options, [httpx.URL(u) for u in urls])
        except DispatchError as exc:  # shutting down, or this replica is full: elsewhere
            log.info("chunk %s[%d:%d] handed back: %s", job_id, start, stop, exc)
            self._stopping.wait(0.5)
            raise HandBack from None
        left = self._run(job_id, dict(zip(futures, plan.urls, strict=True)))
        if left:
            log.info("chunk %s[%d:%d]: %d checks handed back", job_id, start, stop, left)
            raise HandBack

    def _run(self, job_id: str, checks: dict[Future[CheckResult], tuple[int, str]]) -> int:
        """Wait for the checks, writing batches; how many are left for another worker.
        The checks' ends come a batch at a time (app/cluster/ended.py): one wake-up per
        batch, not one per result."""
        ended = Ended(checks, BATCH_RESULTS, BATCH_WAIT_S)
        remaining = len(checks)
        mine: set[Future[CheckResult]] = set()  # cancelled here: the job's cancel
        looked_at = time.monotonic()
        left = 0
        cancelling = False
        while remaining:
            taken = ended.take(_CANCEL_POLL_S)
            remaining -= len(taken)
            batch: list[tuple[int, StoredResult]] = []
            for future in taken:
                kept = self._kept(future, checks[future], future in mine)
                if kept is None:
                    left += 1  # cancelled or cut off by this process's drain: elsewhere
                else:
                    batch.append(kept)
            now = time.monotonic()
            if batch:
                written = self._write(job_id, batch)
                looked_at = now
                cancel = written is not None and written.cancel_requested
            elif now - looked_at >= _CANCEL_POLL_S:
                looked_at = now
                cancel = self._retrying(lambda c: cancel_requested(c, job_id), "look")
            else:
                cancel = False
            if cancel and not cancelling:
                cancelling = True
                # Checks not started end `cancelled`; running ones finish, as in one process.
                mine.update(f for f in checks if not f.done() and f.cancel())
        return left

    @staticmethod
    def _kept(
        future: Future[CheckResult], check: tuple[int, str], cancelled_here: bool
    ) -> tuple[int, StoredResult] | None:
        """The result to write for an ended check; None for one this process's shutdown
        stopped (cancelled by the drain before it started, or cut off by the grace period):
        another worker runs it."""
        index, url = check
        if future.cancelled():
            return (index, cancelled_result(url)) if cancelled_here else None
        result = future.result()
        if result.error is not None and result.error.kind is ErrorKind.INTERRUPTED:
            return None
        return index, StoredResult.of(result)

    def _write(self, job_id: str, batch: list[tuple[int, StoredResult]]) -> Written | None:
        """Committed when this returns (with other chunks' batches of the job); raises
        HandBack if the database stayed away longer than the writer's patience."""
        return self._writer.write(job_id, batch).result()

    def _retrying(self, work: Callable[[Connection], T], what: str) -> T:
        """Run `work` in a transaction, again while the database is away (every transaction
        here may be repeated). Away longer than the patience: the chunk is handed back whole
        (what it did not write runs again), never failed, which would leave its job
        unfinished for good."""
        deadline = time.monotonic() + DATABASE_PATIENCE_S
        delay = 0.1
        while True:
            try:
                with self._database.engine.begin() as connection:
                    return work(connection)
            except SQLAlchemyError as exc:
                if time.monotonic() >= deadline:
                    log.error("chunk handed back: the database is away (%s)", what)
                    raise HandBack from exc
                log.warning("chunk could not %s, retrying: %s", what, str(exc).splitlines()[0])
            # Not the stopping event: during a drain, results in hand must still be written.
            self._pause.wait(delay)
            delay = min(2.0, delay * 2)
