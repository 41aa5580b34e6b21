"""The `urlhealth.chunk` task: a range of a cluster job's URLs, run on this replica's one
shared pool (`Dispatcher.check_now`), written back in batches (app/cluster/batch.py).

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
from concurrent.futures import FIRST_COMPLETED, Future, wait
from typing import TypeVar

import httpx
from sqlalchemy import Connection
from sqlalchemy.exc import SQLAlchemyError

from app.cluster.batch import Written, cancel_requested, mark_running, read_chunk, write_batch
from app.cluster.jobs import cancelled_result
from app.cluster.queue import HandBack
from app.db.engine import Database
from app.engine.dispatcher import Dispatcher, DispatchError
from app.engine.options import CheckOptions, parse_status_ranges
from app.schemas.jobs import CheckOptionsPublic
from app.schemas.results import CheckResult, ErrorKind
from app.store.base import StoredResult

log = logging.getLogger("urlhealth.cluster")

T = TypeVar("T")

# A batch is written when it holds this many results, or its first waited this long.
BATCH_RESULTS = 100
BATCH_WAIT_S = 0.05
_CANCEL_POLL_S = 0.5
# How long the database may be away before the chunk gives up (the queue's lease
# recovery then runs it again elsewhere).
_DATABASE_PATIENCE_S = 120.0


def engine_options(stored: CheckOptionsPublic) -> CheckOptions:
    """The options a job was accepted with, as the engine takes them (the inverse of
    app/inputs.public_options)."""
    return CheckOptions(
        method=stored.method,
        timeout_s=stored.timeout_s,
        follow_redirects=stored.follow_redirects,
        max_redirects=stored.max_redirects,
        expected_status=parse_status_ranges(stored.expected_status),
        headers=dict(stored.headers),
        sensitive_headers=tuple(stored.sensitive_headers),
        forward_headers_on_redirect=stored.forward_headers_on_redirect,
        verify_tls=stored.verify_tls,
        max_body_bytes=stored.max_body_bytes,
        retries=stored.retries,
        assertions=stored.assertions,
    )


class ChunkRunner:
    def __init__(
        self, database: Database, dispatcher: Dispatcher, stopping: threading.Event
    ) -> None:
        self._database = database
        self._dispatcher = dispatcher
        self._stopping = stopping  # set when this process begins its shutdown
        self._pause = threading.Event()  # never set: the wait between database retries

    def __call__(self, job_id: str, start: int, stop: int) -> None:
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
        if self._run(job_id, dict(zip(futures, plan.urls, strict=True))):
            raise HandBack

    def _run(self, job_id: str, checks: dict[Future[CheckResult], tuple[int, str]]) -> bool:
        """Wait for the checks, writing batches; True if some are left for another worker."""
        pending: set[Future[CheckResult]] = set(checks)
        batch: list[tuple[int, StoredResult]] = []
        first_at = looked_at = time.monotonic()
        left = cancelling = False
        while pending:
            done, pending = wait(pending, timeout=BATCH_WAIT_S, return_when=FIRST_COMPLETED)
            if self._stopping.is_set():  # cancelled by the drain: maybe never notified
                done |= {f for f in pending if f.cancelled()}
                pending -= done
            for future in done:
                index = checks[future][0]
                if future.cancelled():
                    left = True  # the drain's: another worker runs it
                    continue
                result = future.result()
                if result.error is not None and result.error.kind is ErrorKind.INTERRUPTED:
                    left = True  # cut off by this process's shutdown: not the target's fault
                    continue
                if not batch:
                    first_at = time.monotonic()
                batch.append((index, StoredResult.of(result)))
            now = time.monotonic()
            flush = len(batch) >= BATCH_RESULTS or now - first_at >= BATCH_WAIT_S
            if batch and (flush or not pending):
                written = self._write(job_id, batch)
                batch, looked_at = [], now
                cancel = written is not None and written.cancel_requested
            elif now - looked_at >= _CANCEL_POLL_S:
                looked_at = now
                cancel = self._retrying(lambda c: cancel_requested(c, job_id), "look")
            else:
                cancel = False
            if cancel and not cancelling:
                cancelling = True
                # Checks not started end here; running ones finish (as single-process does).
                for future in [f for f in pending if f.cancel()]:
                    pending.discard(future)
                    batch.append((checks[future][0], cancelled_result(checks[future][1])))
                first_at = time.monotonic() - BATCH_WAIT_S  # written at the next turn
        if batch:
            self._write(job_id, batch)
        return left

    def _write(self, job_id: str, batch: list[tuple[int, StoredResult]]) -> Written | None:
        return self._retrying(lambda c: write_batch(c, job_id, batch), "write")

    def _retrying(self, work: Callable[[Connection], T], what: str) -> T:
        """Run `work` in a transaction, again while the database is away (every transaction
        here may be repeated: a batch keeps only results not yet kept)."""
        deadline = time.monotonic() + _DATABASE_PATIENCE_S
        delay = 0.1
        while True:
            try:
                with self._database.engine.begin() as connection:
                    return work(connection)
            except SQLAlchemyError as exc:
                if time.monotonic() >= deadline:
                    raise
                log.warning("chunk could not %s, retrying: %s", what, str(exc).splitlines()[0])
            # Not the stopping event: during a drain, results in hand must still be written.
            self._pause.wait(delay)
            delay = min(2.0, delay * 2)
