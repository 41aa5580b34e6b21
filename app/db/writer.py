"""The one thread that writes to the database, in batched transactions.

Every in-process write goes through it, so SQLite never sees two writers from one process
and a commit carries many results. A write is a function of a Connection, run inside the
batch's transaction (the statement is built where it runs). `put` is fire-and-forget: it may
wait up to `flush_interval_s` for company, so writes reach the database at most that long
after they are queued (plus the commit). `put_row` queues a row to insert: consecutive rows
for one table go in one executemany (measured: ~15 times the rows per second of one
statement each, on SQLite and PostgreSQL). `submit` returns a Future for callers that need the
outcome (a job must be committed before 202 is answered): its batch commits without waiting.

The queue is bounded: when it is full, `put`/`submit` raise WriterFull at once (admission
answers 429) rather than letting memory grow. `stop()` lets the writer finish what is queued
and returns; the stop flag is checked between batches, never inside one.

Not yet: retrying with backoff while the database is away (issue 8's faults); a failing
batch is retried write by write once, so one bad write fails alone, and what fails is counted.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import Connection, Table, insert

from app.db.engine import Database

log = logging.getLogger(__name__)

T = TypeVar("T")
Write = Callable[[Connection], Any]
MAX_BATCH = 1000


class WriterFull(RuntimeError):
    """The write queue is full: the database is behind."""


class WriterClosed(RuntimeError):
    """The writer was stopped; nothing more is accepted."""


@dataclass(frozen=True, slots=True)
class _Row:
    table: Table
    values: dict[str, Any]


@dataclass(slots=True)
class _Item:
    write: Write | _Row
    future: Future[Any] | None
    queued_at: float = field(default_factory=time.monotonic)


@dataclass(slots=True)
class WriterStats:
    """Counters, copied for /v1/status."""

    queued: int
    written: int
    failed: int
    batches: int


class Writer:
    def __init__(self, database: Database, flush_interval_s: float, queue_max: int) -> None:
        self._database = database
        self._interval = flush_interval_s
        self._queue: queue.Queue[_Item | None] = queue.Queue(maxsize=queue_max)
        self._accepting = True
        self._gate = threading.Lock()  # orders the accepting flag against the stop sentinel
        self._written = self._failed = self._batches = 0
        self._thread = threading.Thread(target=self._run, name="db-writer", daemon=True)

    def start(self) -> Writer:
        self._thread.start()
        return self

    def put(self, write: Write) -> None:
        """Queue a write whose outcome nobody waits for; raises WriterFull, WriterClosed."""
        self._enqueue(_Item(write, None))

    def put_row(self, table: Table, row: dict[str, Any]) -> None:
        """Queue a row to insert, fire-and-forget. Rows for one table that follow each other
        in a batch go in one executemany: many times faster than a statement each."""
        self._enqueue(_Item(_Row(table, row), None))

    def submit(self, write: Callable[[Connection], T]) -> Future[T]:
        """Queue a write; the Future has its return value once committed, or its error."""
        future: Future[T] = Future()
        self._enqueue(_Item(write, future))
        return future

    def stats(self) -> WriterStats:
        return WriterStats(self._queue.qsize(), self._written, self._failed, self._batches)

    def stop(self, timeout_s: float | None = None) -> bool:
        """Accept nothing more and let the writer flush what is queued; True if it finished
        within `timeout_s` (None: however long that takes)."""
        with self._gate:
            first_call, self._accepting = self._accepting, False
        # Every write accepted before this point is in the queue already (enqueuing happens
        # under the gate), so the sentinel follows them all.
        if not self._thread.is_alive():
            return self._queue.empty()
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        if first_call:
            try:
                self._queue.put(None, timeout=timeout_s)
            except queue.Full:
                return False
        self._thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        return not self._thread.is_alive()

    def _enqueue(self, item: _Item) -> None:
        with self._gate:
            if not self._accepting:
                raise WriterClosed("the database writer is stopped")
            try:
                self._queue.put_nowait(item)
            except queue.Full:
                raise WriterFull(
                    f"{self._queue.maxsize} writes are waiting for the database"
                ) from None

    # --- the writer thread ----------------------------------------------------------------
    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                break
            batch, stopping = self._collect(first)
            self._commit(batch)

    def _collect(self, first: _Item) -> tuple[list[_Item], bool]:
        """The batch starting with `first`: waiting for more until `first` is
        `flush_interval_s` old unless someone waits for an outcome, then whatever else is
        already queued. True as second value when the stop sentinel was taken."""
        batch = [first]
        deadline = first.queued_at + self._interval
        urgent = first.future is not None
        while len(batch) < MAX_BATCH:
            remaining = 0.0 if urgent else deadline - time.monotonic()
            try:
                item = (
                    self._queue.get(timeout=remaining)
                    if remaining > 0
                    else self._queue.get_nowait()
                )
            except queue.Empty:
                break
            if item is None:
                return batch, True
            batch.append(item)
            urgent = urgent or item.future is not None
        return batch, False

    def _commit(self, batch: list[_Item]) -> None:
        # A caller may have cancelled its Future while it waited: that write is not made.
        batch = [i for i in batch if i.future is None or i.future.set_running_or_notify_cancel()]
        if not batch:
            return
        try:
            with self._database.write_engine.begin() as connection:
                outcomes = _apply(connection, batch)
        except Exception:
            self._batches += 1
            log.warning("a batch of %d writes failed; retrying them one by one", len(batch))
            for item in batch:
                self._commit_one(item)
            return
        self._batches += 1
        self._written += len(batch)
        for item, outcome in zip(batch, outcomes, strict=True):
            if item.future is not None:
                item.future.set_result(outcome)

    def _commit_one(self, item: _Item) -> None:
        try:
            with self._database.write_engine.begin() as connection:
                outcome = _apply(connection, [item])[0]
        except Exception as exc:
            self._failed += 1
            if item.future is not None:
                item.future.set_exception(exc)
            else:
                log.error("a database write failed and is lost: %s", exc)
            return
        self._written += 1
        if item.future is not None:
            item.future.set_result(outcome)


def _apply(connection: Connection, batch: list[_Item]) -> list[Any]:
    """Run the batch's writes in order; consecutive rows for one table as one executemany."""
    outcomes: list[Any] = []
    start = 0
    while start < len(batch):
        write = batch[start].write
        if not isinstance(write, _Row):
            outcomes.append(write(connection))
            start += 1
            continue
        rows = [write.values]
        for item in batch[start + 1 :]:
            if not isinstance(item.write, _Row) or item.write.table is not write.table:
                break
            rows.append(item.write.values)
        connection.execute(insert(write.table), rows)
        outcomes.extend([None] * len(rows))
        start += len(rows)
    return outcomes
