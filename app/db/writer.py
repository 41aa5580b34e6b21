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
answers 429) rather than letting memory grow; a `put`/`put_row` refused so is counted as
`dropped` (nobody else will write it), a refused `submit` is not (its caller is told).

While the database is away (app/db/faults.py tells an outage from a bad write), the batch in
hand is kept and retried, the waits doubling up to `retry_max_delay_s`; new writes queue up
to the bound meanwhile, and `healthy` is False, with the reason in `last_error`, until a
batch commits again. A bad write fails alone: the batch is retried write by write.

`stop(timeout_s)` accepts nothing more and lets the writer flush what is queued; past the
timeout the writer gives up: every write not yet committed is counted as `dropped`, logged,
and its Future (if any) fails with WriterGaveUp. Nothing is lost silently, and no Future is
left waiting.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Connection, Table

from app.db.batch import Item, Row, Write, apply
from app.db.durations import Durations, DurationsSnapshot
from app.db.engine import Database
from app.db.faults import describe, is_outage

log = logging.getLogger(__name__)

T = TypeVar("T")
MAX_BATCH = 1000
FIRST_RETRY_S = 0.05
# After the flush timeout, how long stop() waits for the writer to fail what is left: it
# may be inside a database call (a connect, a busy wait) that has its own timeout.
GIVE_UP_GRACE_S = 2.0


class WriterFull(RuntimeError):
    """The write queue is full: the database is behind."""


class WriterClosed(RuntimeError):
    """The writer was stopped; nothing more is accepted."""


class WriterGaveUp(RuntimeError):
    """The writer stopped before this write could be committed: it was not written."""


class _GivenUp(Exception):
    def __init__(self, items: list[Item]) -> None:
        super().__init__()
        self.items = items


@dataclass(slots=True)
class WriterStats:
    """Counters, copied for /v1/status."""

    queued: int  # waiting in the queue
    written: int
    failed: int  # bad writes, each failed alone
    batches: int
    dropped: int = 0  # refused put/put_row (queue full) + given up at stop
    behind_s: float = 0.0  # age of the oldest write not yet committed
    retrying: int = 0  # writes in the batch held while the database is away
    healthy: bool = True
    last_error: str | None = None


class Writer:
    def __init__(
        self,
        database: Database,
        flush_interval_s: float,
        queue_max: int,
        retry_max_delay_s: float = 5.0,
    ) -> None:
        self._database = database
        self._interval = flush_interval_s
        self._retry_max = retry_max_delay_s
        # Unbounded underneath: the bound is checked in _enqueue, so the stop sentinel always
        # fits, however full the queue.
        self._queue: queue.Queue[Item | None] = queue.Queue()
        self._max = queue_max
        self._accepting = True
        self._gate = threading.Lock()  # the accepting flag, the sentinel, `dropped`
        self._give_up = threading.Event()
        self._written = self._failed = self._batches = self._dropped = 0
        self._held: list[Item] | None = None  # the batch in hand (writer thread only)
        self._last_error: str | None = None
        self._away_since = 0.0
        self._commits = Durations()  # each committed transaction, begin to commit (/metrics)
        self._thread = threading.Thread(target=self._run, name="db-writer", daemon=True)

    def start(self) -> Writer:
        self._thread.start()
        return self

    def put(self, write: Write) -> None:
        """Queue a write whose outcome nobody waits for; raises WriterFull, WriterClosed."""
        self._enqueue(Item(write, None))

    def put_row(self, table: Table, row: dict[str, Any]) -> None:
        """Queue a row to insert, fire-and-forget. Rows for one table that follow each other
        in a batch go in one executemany: many times faster than a statement each."""
        self._enqueue(Item(Row(table, row), None))

    def submit(self, write: Callable[[Connection], T]) -> Future[T]:
        """Queue a write; the Future has its return value once committed, or its error
        (WriterGaveUp if the writer stopped first)."""
        future: Future[T] = Future()
        self._enqueue(Item(write, future))
        return future

    @property
    def healthy(self) -> bool:
        """False from the first batch that failed for want of a database until one commits."""
        return self._last_error is None

    @property
    def last_error(self) -> str | None:
        """Why the database cannot be written (URL masked), while it cannot; else None."""
        return self._last_error

    def queued(self) -> int:
        """Writes waiting in the queue: what stats().queued says, without building the rest
        (the store asks before every result it hands over)."""
        return max(0, self._queue.qsize() - (0 if self._accepting else 1))

    def commit_durations(self) -> DurationsSnapshot:
        """How long committed transactions took, begin to commit, as a histogram."""
        return self._commits.snapshot()

    def stats(self) -> WriterStats:
        held, reason = self._held, self._last_error
        oldest = held[0].queued_at if held else self._oldest_queued()
        return WriterStats(
            # Once stopped, the queue ends with the sentinel until the writer takes it, and
            # nothing follows it: it is the one entry not to count.
            queued=self.queued(),
            written=self._written,
            failed=self._failed,
            batches=self._batches,
            dropped=self._dropped,
            behind_s=0.0 if oldest is None else max(0.0, time.monotonic() - oldest),
            retrying=len(held) if held and reason is not None else 0,
            healthy=reason is None,
            last_error=reason,
        )

    def stop(self, timeout_s: float | None = None) -> bool:
        """Accept nothing more and let the writer flush what is queued; True if it finished
        within `timeout_s` (None: however long that takes). Past it, what is not written is
        given up: counted as dropped, logged, its Futures failed with WriterGaveUp."""
        with self._gate:
            first_call, self._accepting = self._accepting, False
            if first_call:
                # Every write accepted before this point is queued already (enqueuing
                # happens under the gate), so the sentinel follows them all.
                self._queue.put_nowait(None)
        if self._thread.ident is None:  # never started: nothing will write what is queued
            return self._abandon([], "the writer was never started") == 0
        self._thread.join(timeout_s)
        if not self._thread.is_alive():
            return not self._give_up.is_set()  # a second call after giving up: still False
        self._give_up.set()
        self._thread.join(GIVE_UP_GRACE_S)
        if self._thread.is_alive():
            log.error(
                "the database writer is still inside a database call %.1f s after its "
                "flush timeout; its writes fail when the call returns",
                GIVE_UP_GRACE_S,
            )
        return False

    def _enqueue(self, item: Item) -> None:
        with self._gate:
            if not self._accepting:
                raise WriterClosed("the database writer is stopped")
            if self._queue.qsize() >= self._max:
                if item.future is None:
                    self._dropped += 1
                raise WriterFull(f"{self._max} writes are waiting for the database")
            self._queue.put_nowait(item)

    def _oldest_queued(self) -> float | None:
        with self._queue.mutex:  # a peek: the queue's own lock, held for one read
            head = self._queue.queue[0] if self._queue.queue else None
        return None if head is None else head.queued_at

    # --- the writer thread ----------------------------------------------------------------
    def _run(self) -> None:
        try:
            stopping = False
            while not stopping:
                first = self._queue.get()
                if first is None:
                    break
                self._held = [first]
                if self._give_up.is_set():
                    raise _GivenUp([first])
                batch, stopping = self._collect(first)
                self._held = batch
                self._commit(batch)
                self._held = None
        except _GivenUp as given_up:
            self._held = None
            self._abandon(given_up.items, self._last_error or "the flush timeout passed")
        except Exception:
            log.exception("the database writer failed")
            with self._gate:
                self._accepting = False
            self._abandon(self._held or [], "the database writer failed")
            self._held = None

    def _collect(self, first: Item) -> tuple[list[Item], bool]:
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

    def _commit(self, batch: list[Item]) -> None:
        """Commit the batch, or each write alone if one of them is bad; raises _GivenUp with
        the writes not committed when stop()'s timeout passes during an outage."""
        # A caller may have cancelled its Future while it waited: that write is not made.
        batch = [i for i in batch if i.future is None or i.future.set_running_or_notify_cancel()]
        if not batch:
            return
        try:
            outcomes = self._write(batch)
        except _GivenUp:
            raise _GivenUp(batch) from None
        except Exception:
            self._batches += 1
            log.warning("a batch of %d writes failed; retrying them one by one", len(batch))
            for n, item in enumerate(batch):
                self._commit_one(item, batch[n:])
            return
        self._batches += 1
        self._written += len(batch)
        for item, outcome in zip(batch, outcomes, strict=True):
            if item.future is not None:
                item.future.set_result(outcome)

    def _commit_one(self, item: Item, unresolved: list[Item]) -> None:
        try:
            outcome = self._write([item])[0]
        except _GivenUp:
            raise _GivenUp(unresolved) from None
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

    def _write(self, items: list[Item]) -> list[Any]:
        """Run `items` in one transaction, trying again while the database is away (waits
        doubling up to retry_max_delay_s); raises a bad write's error, or _GivenUp."""
        delay = min(FIRST_RETRY_S, self._retry_max)
        while True:
            started = time.perf_counter()
            try:
                with self._database.write_engine.begin() as connection:
                    outcomes = apply(connection, items)
            except Exception as exc:
                if not is_outage(exc):
                    raise
                self._away(exc, delay)
                if self._give_up.wait(delay):  # set by stop() once its timeout passed
                    raise _GivenUp([]) from None
                delay = min(delay * 2, self._retry_max)
                continue
            self._commits.observe(time.perf_counter() - started)
            if self._last_error is not None:
                log.warning(
                    "database writes succeed again after %.1f s",
                    time.monotonic() - self._away_since,
                )
                self._last_error = None
            return outcomes

    def _away(self, exc: Exception, delay: float) -> None:
        reason = describe(exc, self._database.url)
        if self._last_error is None:
            self._away_since = time.monotonic()
            log.warning(
                "cannot write to the %s; keeping the writes and retrying (at most %.1f s "
                "apart): %s",
                self._database.dialect,
                self._retry_max,
                reason,
            )
        self._last_error = reason

    def _abandon(self, items: list[Item], reason: str) -> int:
        """Give up `items` and everything still queued: count, log, fail their Futures."""
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                items.append(item)
        if not items:
            return 0
        error = WriterGaveUp(f"not written: the database writer stopped ({reason})")
        for item in items:
            if item.future is not None and not item.future.done():
                item.future.set_exception(error)
        with self._gate:
            self._dropped += len(items)
        log.error("the database writer stopped with %d writes not written: %s", len(items), reason)
        return len(items)
