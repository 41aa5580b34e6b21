"""The count of checks accepted and not yet finished: admission, and the one place a check
stops counting.

A check is admitted once (with its job, or with its synchronous call) and released exactly
once, by whichever path ends it first: its result, a cancel, the shutdown, a pool that closed
under it. Several of those paths can see the same check (two DELETEs, a DELETE racing the
shutdown, `Future.cancel()` being True again for a future already cancelled), so the release is
a flag flipped under the ledger's lock, and only the caller that flips it records the check's
final state. Then checks in progress always equal checks without a final state, no count goes
below zero, and the admission limit holds.
"""

from __future__ import annotations

import threading
from typing import Protocol


class DispatchError(Exception):
    """Root of the reasons work is refused."""


class ShuttingDown(DispatchError):
    """The service is stopping and takes no new work."""


class Overloaded(DispatchError):
    def __init__(self, pending: int, limit: int, asked: int) -> None:
        super().__init__(
            f"{pending} checks are in progress and the limit is {limit}; {asked} more do not fit"
        )
        self.retry_after_s = 1


class Counted(Protocol):
    """What the ledger keeps on each check, so that it needs no table of its own."""

    started: bool
    released: bool
    reserved: bool  # admitted outside the limit (a monitor check)


class CheckLedger:
    def __init__(self, max_queued: int) -> None:
        self._max_queued = max_queued
        self._lock = threading.Lock()
        self._accepting = True
        self._pending = 0  # admitted and not released: waiting, queued, or running
        self._reserved = 0  # of those, admitted outside the limit
        self._started = 0  # started and not released
        self._checked = 0
        self._drained = threading.Event()
        self._drained.set()

    def admit(self, count: int, reserved: bool = False) -> None:
        """Count `count` new checks in, all or none; raises ShuttingDown or Overloaded.
        `reserved` (monitor checks): outside the limit, neither bound by it nor taking from
        it, but counted, so they drain like any other."""
        with self._lock:
            if not self._accepting:
                raise ShuttingDown("the service is shutting down")
            bounded = self._pending - self._reserved
            if not reserved and bounded + count > self._max_queued:
                raise Overloaded(bounded, self._max_queued, count)
            self._pending += count
            self._reserved += count if reserved else 0
            if count:
                self._drained.clear()

    def refund(self, count: int) -> None:
        """Give back `count` admitted checks that never came to exist (their job could not be
        stored), so a failed submission leaves no capacity taken."""
        with self._lock:
            self._pending -= count
            if self._pending == 0:
                self._drained.set()

    def stop_accepting(self) -> None:
        with self._lock:
            self._accepting = False

    def start(self, check: Counted) -> None:
        """`check` is running now (it can no longer be cancelled, only finish)."""
        with self._lock:
            if not check.released and not check.started:
                check.started = True
                self._started += 1

    def release(self, check: Counted, checked: bool = False) -> bool:
        """Stop counting `check`; True for the one caller that did, which then owns recording
        its final state. `checked`: it ran to a result (counted in `checked_total`)."""
        with self._lock:
            if check.released:
                return False
            check.released = True
            self._pending -= 1
            self._reserved -= check.reserved
            self._started -= check.started
            self._checked += checked
            if self._pending == 0:
                self._drained.set()
        return True

    def counters(self) -> tuple[int, int, int]:
        """(running, queued, checked since start), one consistent copy: a check counts as
        running from its start until its release, so `queued` is never negative."""
        with self._lock:
            return self._started, self._pending - self._started, self._checked

    def wait_drained(self, timeout: float) -> bool:
        """Wait until no admitted check is unreleased; False if `timeout` passed first."""
        return self._drained.wait(timeout)

    def idle(self) -> bool:
        return self._drained.is_set()
