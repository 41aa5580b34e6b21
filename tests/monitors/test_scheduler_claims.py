"""The scheduler as one replica of several (a `claim` given): each tick's due checks are
claimed in one call, outside its lock, and only those won run; a won check whose previous
run is still going counts as skipped; a failed claim runs none; the claim alone keeps
next_due_at (save_due is not called). The real claim statement is tested against PostgreSQL
in tests/cluster/test_due_claims.py; here the claim is a table of who wins."""

from __future__ import annotations

import threading
from collections.abc import Collection

from app.monitors.claims import ClaimsUnavailable, Due
from app.monitors.scheduler import MonitorScheduler
from tests.monitors.test_scheduler import Runs, Sink, monitor
from tests.support.engine import wait_until


class Claims:
    """Wins the ids in `ours`; records every call (and whether the scheduler's lock was
    free meanwhile)."""

    def __init__(self, scheduler_lock: list[threading.Lock], ours: set[int]) -> None:
        self.ours = ours
        self.calls: list[list[Due]] = []
        self.lock_free: list[bool] = []
        self.fail = False
        self._scheduler_lock = scheduler_lock

    def __call__(self, due: list[Due]) -> Collection[int]:
        self.calls.append(due)
        lock = self._scheduler_lock[0]
        if lock.acquire(blocking=False):
            lock.release()
            self.lock_free.append(True)
        else:
            self.lock_free.append(False)
        if self.fail:
            raise ClaimsUnavailable("the database is away")
        return {d.monitor_id for d in due} & self.ours


def build(runs: Runs, sink: Sink, ours: set[int]) -> tuple[MonitorScheduler, Claims]:
    holder: list[threading.Lock] = []
    claims = Claims(holder, ours)
    scheduler = MonitorScheduler(runs, sink.record, sink.save_due, claim=claims)
    holder.append(scheduler._lock)  # to see the claim runs outside it
    return scheduler, claims


def test_only_the_checks_won_run_and_the_claim_keeps_the_due_times() -> None:
    runs, sink = Runs(), Sink()
    scheduler, claims = build(runs, sink, ours={1})
    for n in (1, 2):
        scheduler.put(monitor(n, 0.2))
    scheduler.start()
    try:
        assert wait_until(lambda: runs.count(1) >= 3, timeout=20)
    finally:
        scheduler.stop(5)
    assert runs.count(2) == 0
    assert sink.dues == {}  # never saved: the claim wrote next_due_at
    assert all(claims.lock_free)
    claimed = [d for call in claims.calls for d in call]
    assert {d.monitor_id for d in claimed} == {1, 2}
    for d in claimed:  # the following due time, an interval on
        assert d.interval_s == 0.2
        assert scheduler.due(d.monitor_id) is not None


def test_a_won_check_still_running_here_is_skipped_not_run_twice() -> None:
    runs, sink = Runs(), Sink()
    runs.released.clear()  # the first check hangs
    scheduler, _ = build(runs, sink, ours={1})
    scheduler.put(monitor(1, 0.2))
    scheduler.start()
    try:
        assert wait_until(lambda: scheduler.stats().skipped >= 2, timeout=20)
        assert runs.count(1) == 1
    finally:
        runs.released.set()
        scheduler.stop(5)


def test_a_failed_claim_runs_nothing_and_counts_an_error() -> None:
    runs, sink = Runs(), Sink()
    scheduler, claims = build(runs, sink, ours={1})
    claims.fail = True
    scheduler.put(monitor(1, 0.2))
    scheduler.start()
    try:
        assert wait_until(lambda: len(claims.calls) >= 3, timeout=20)
        assert runs.count() == 0
        assert scheduler.stats().errors >= 3
        claims.fail = False  # back: the schedule goes on
        assert wait_until(lambda: runs.count(1) >= 1, timeout=20)
    finally:
        scheduler.stop(5)
