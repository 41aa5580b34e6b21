"""Hands each monitor's check to the engine when it is due, one thread for all monitors.

The due times live in the database (monitors.next_due_at, saved through `save_due`); here they
are a cache, a heap (see DueHeap) the thread sleeps on with `Event.wait` until the earliest is
due, so a thousand idle monitors cost nothing between checks; `put` wakes it.

Due times sit on each monitor's grid (see timing.py): start to start, spread by slug. A monitor
never overlaps itself: a check (scheduled or manual) still going at the next due time makes
that time count as skipped. Lag is due -> the check's start (its result's `checked_at`).

With several replicas (`claim` given: app/monitors/claims.py), every replica keeps this same
schedule and, before handing out what came due in one tick, claims it in one statement
outside the lock: only the checks it won run here (a won check whose previous run is still
going here counts as skipped, so no other replica starts it). The claim writes next_due_at,
so `save_due` is not used then.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Collection
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime

from app.monitors.claims import ClaimsUnavailable, Due
from app.monitors.dueheap import DueHeap
from app.monitors.futures import relay, settle
from app.monitors.scheduled import Scheduled as Scheduled  # defined with the definitions
from app.monitors.timing import LagWindow, first_due, offset_s, slot_after, summarise
from app.monitors.timing import SchedulerStats as SchedulerStats
from app.schemas.results import CheckResult, ErrorKind

log = logging.getLogger("urlhealth.monitors")

# Longest sleep between looks at the heap: a wall clock stepped forward is noticed this soon.
_MAX_SLEEP_S = 1.0
# Results that say the service stopped, not that the target failed: not recorded.
_NOT_THE_TARGET = frozenset({ErrorKind.INTERRUPTED, ErrorKind.CANCELLED})


@dataclass(eq=False)
class _Entry:
    monitor: Scheduled
    offset: float  # where in each interval its checks fall
    running: Future[CheckResult] | None = None  # its check going, scheduled or manual


class MonitorScheduler:
    def __init__(
        self,
        run: Callable[[Scheduled], Future[CheckResult]],
        record: Callable[[Scheduled, datetime, CheckResult], None],
        save_due: Callable[[int, datetime], None],
        clock: Callable[[], float] = time.time,
        on_skip: Callable[[int], None] | None = None,
        lag_window: int = 2048,
        claim: Callable[[list[Due]], Collection[int]] | None = None,
    ) -> None:
        """`clock`: the wall clock in epoch seconds, as checks' `checked_at` is; `claim`:
        the ids won of the due checks given (replicas), None when this process runs alone."""
        self._run = run
        self._claim_due = claim
        self._record = record
        self._save_due = save_due
        self._clock = clock
        self._on_skip = on_skip
        self._lock = threading.Lock()
        self._entries: dict[int, _Entry] = {}
        self._due = DueHeap()
        self._lags = LagWindow(lag_window)
        self._skipped = self._started = self._running = self._errors = 0
        self._handing_out_since: float | None = None  # the thread is inside run()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    # --- the schedule ---------------------------------------------------------------------
    def put(self, monitor: Scheduled, due_at: datetime | None = None) -> None:
        """Add or change a monitor. A changed interval reschedules from now (its next grid
        time); otherwise a monitor already here keeps its due time. A new one takes `due_at`
        (the database's next_due_at) when it is within one interval ahead; overdue, it runs
        once soon (see timing.first_due). `save_due` hears of every due time set here."""
        now = self._clock()
        offset = offset_s(monitor.slug, monitor.interval_s)
        with self._lock:
            entry = self._entries.get(monitor.id)
            if entry is None:
                stored = None if due_at is None else due_at.timestamp()
                due = first_due(now, monitor.interval_s, offset, stored)
                self._entries[monitor.id] = _Entry(monitor, offset)
                changed = due != stored
            else:
                same_interval = entry.monitor.interval_s == monitor.interval_s
                entry.monitor, entry.offset = monitor, offset
                if same_interval:
                    return
                due = slot_after(now, monitor.interval_s, offset)
                changed = True
            self._due.set(monitor.id, due)
        if changed:
            self._save(monitor.id, due)
        self._wake.set()

    def remove(self, monitor_id: int) -> None:
        """Take a monitor off the schedule (deleted or paused); a check of it still going
        finishes but is not recorded."""
        with self._lock:
            self._entries.pop(monitor_id, None)
            self._due.discard(monitor_id)

    def due(self, monitor_id: int) -> datetime | None:
        with self._lock:
            due = self._due.get(monitor_id)
        return None if due is None else _datetime(due)

    def run_now(self, monitor_id: int) -> Future[CheckResult]:
        """Check a monitor now, recorded like any other check, without moving its schedule.
        If a check of it is going, that check's future: a monitor never overlaps itself.
        Raises KeyError for a monitor not on the schedule."""
        with self._lock:
            entry = self._entries[monitor_id]
            if entry.running is not None:
                return entry.running
            future = self._claim(entry)
        self._hand_out(entry, future, due=None)
        return future

    # --- the thread -----------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="monitor-scheduler", daemon=True)
        self._thread.start()

    def stop(self, timeout: float) -> bool:
        """Stop handing out checks (those going finish); False if the thread outlived
        `timeout`."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            return not self._thread.is_alive()
        return True

    def _loop(self) -> None:
        try:
            self._keep_schedule()
        except Exception:  # a bug: the thread ends, stalled() says so and /readyz fails
            log.exception("the monitor scheduler stopped on an error")

    def _keep_schedule(self) -> None:
        while not self._stopping.is_set():
            self._wake.clear()  # before looking: a put() from now on wakes the wait below
            now = self._clock()
            popped: list[tuple[_Entry, float, float]] = []  # (entry, due, following)
            with self._lock:
                for monitor_id, due in self._due.pop_due(now):
                    entry = self._entries[monitor_id]
                    # From the later of due and now: a scheduler behind by more than an
                    # interval lets the missed slots go instead of running them back to back.
                    following = slot_after(max(due, now), entry.monitor.interval_s, entry.offset)
                    self._due.set(monitor_id, following)
                    popped.append((entry, due, following))
                earliest = self._due.earliest()
                self._handing_out_since = now if popped else None
            if popped and self._claim_due is not None:
                popped = self._won(popped)
            skipped, fired = self._fire(popped)
            for entry, future, due in fired:
                self._hand_out(entry, future, due)
            with self._lock:
                self._handing_out_since = None
                # A put() since may have set (and saved) another time: the newest stands.
                saves = [
                    (e.monitor.id, f) for e, _, f in popped if self._due.get(e.monitor.id) == f
                ]
            for monitor_id, due in saves:
                self._save(monitor_id, due)
            for monitor_id in skipped:
                self._notify_skip(monitor_id)
            wait = _MAX_SLEEP_S if earliest is None else earliest[0] - self._clock()
            self._wake.wait(min(_MAX_SLEEP_S, max(0.0, wait)))

    def _fire(
        self, popped: list[tuple[_Entry, float, float]]
    ) -> tuple[list[int], list[tuple[_Entry, Future[CheckResult], float]]]:
        """The popped checks to skip (still running) and to hand out, their futures set."""
        skipped: list[int] = []
        fired: list[tuple[_Entry, Future[CheckResult], float]] = []
        with self._lock:
            for entry, due, _ in popped:
                if self._entries.get(entry.monitor.id) is not entry:
                    continue  # removed or replaced while being claimed
                if entry.running is not None:
                    self._skipped += 1
                    skipped.append(entry.monitor.id)
                else:
                    fired.append((entry, self._claim(entry), due))
        return skipped, fired

    def _won(self, popped: list[tuple[_Entry, float, float]]) -> list[tuple[_Entry, float, float]]:
        """Those of the popped checks this replica won (none if the claim failed)."""
        assert self._claim_due is not None
        due = [Due(e.monitor.id, f, e.monitor.interval_s) for e, _, f in popped]
        try:
            won = self._claim_due(due)
        except Exception as exc:  # the database away: run none rather than risk twice
            if not isinstance(exc, ClaimsUnavailable):  # that one is logged by the claims
                log.exception("claiming %d due monitor checks failed", len(due))
            self._count_error()
            return []
        return [p for p in popped if p[0].monitor.id in won]

    # --- one check --------------------------------------------------------------------------
    def _claim(self, entry: _Entry) -> Future[CheckResult]:
        """Under the lock: the check's future, set as the monitor's running check before it
        is handed out, so nothing can start a second one meanwhile."""
        future: Future[CheckResult] = Future()
        entry.running = future
        self._started += 1
        self._running += 1
        return future

    def _hand_out(self, entry: _Entry, future: Future[CheckResult], due: float | None) -> None:
        monitor = entry.monitor
        future.add_done_callback(functools.partial(self._finished, entry, monitor, due))
        try:
            check = self._run(monitor)
        except Exception as exc:  # ShuttingDown, or a bug: the schedule goes on
            log.warning("monitor %s: check not started: %s", monitor.slug, exc)
            self._count_error()
            settle(future, exception=exc)
            return
        check.add_done_callback(functools.partial(relay, future))

    def _finished(
        self, entry: _Entry, monitor: Scheduled, due: float | None, future: Future[CheckResult]
    ) -> None:
        """The check's done callback, on whichever thread finished it: never raises."""
        result = None if future.cancelled() or future.exception() else future.result()
        with self._lock:
            if entry.running is future:
                entry.running = None
            self._running -= 1
            current = self._entries.get(monitor.id) is entry
            if result is not None and due is not None:
                self._lags.add(result.checked_at.timestamp() - due)
        if result is None or not current:
            return
        if result.error is not None and result.error.kind in _NOT_THE_TARGET:
            return
        try:
            self._record(monitor, result.checked_at, result)
        except Exception:
            log.exception("monitor %s: recording its result failed", monitor.slug)
            self._count_error()

    # --- status -----------------------------------------------------------------------------
    def stats(self) -> SchedulerStats:
        with self._lock:
            lags = self._lags.copy()
            counts = (self._skipped, self._running, len(self._entries), self._started)
            errors = self._errors
        lag = summarise(lags)
        skipped, running, scheduled, started = counts
        return SchedulerStats(
            lag.p50_s,
            lag.p99_s,
            lag.max_s,
            lag.samples,
            skipped,
            running,
            scheduled,
            started,
            errors,
        )

    def stalled(self, threshold_s: float) -> str | None:
        """Why the schedule is not being kept, or None: the thread is not running, or the
        earliest due check has waited more than `threshold_s` to be handed out."""
        if self._thread is None or self._stopping.is_set():
            return "the monitor scheduler is not running"
        if not self._thread.is_alive():
            return "the monitor scheduler's thread died (see the log)"
        now = self._clock()
        with self._lock:
            since = self._handing_out_since
            earliest = self._due.earliest()
        if since is not None and now - since > threshold_s:
            return f"handing out monitor checks has taken {now - since:.1f} s"
        if earliest is not None and now - earliest[0] > threshold_s:
            waited = now - earliest[0]
            return f"monitor {earliest[1]} was due {waited:.1f} s ago and has not been handed out"
        return None

    # --- helpers ----------------------------------------------------------------------------
    def _save(self, monitor_id: int, due: float) -> None:
        if self._claim_due is not None:  # the claims keep next_due_at
            return
        try:
            self._save_due(monitor_id, _datetime(due))
        except Exception:
            log.exception("monitor %d: saving its next due time failed", monitor_id)
            self._count_error()

    def _notify_skip(self, monitor_id: int) -> None:
        if self._on_skip is None:
            return
        try:
            self._on_skip(monitor_id)
        except Exception:
            log.exception("monitor %d: on_skip failed", monitor_id)
            self._count_error()

    def _count_error(self) -> None:
        with self._lock:
            self._errors += 1


def _datetime(epoch_s: float) -> datetime:
    return datetime.fromtimestamp(epoch_s, UTC)
