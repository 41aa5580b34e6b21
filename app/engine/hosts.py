"""Per-host politeness: at most K checks of one host at a time, and optional spacing between
their starts, across all jobs.

A check that must wait is parked here, not in a worker thread: the pool only ever runs checks
that may start, so a thousand URLs of one site never starve other hosts of workers. This class
is bookkeeping only; its caller serialises access with its own lock.
"""

from __future__ import annotations

from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")


class HostGate(Generic[T]):
    def __init__(self, max_per_host: int, min_interval_s: float = 0.0) -> None:
        self.max_per_host = max_per_host
        self.min_interval_s = min_interval_s
        self._active: dict[str, int] = {}
        self._waiting: dict[str, deque[T]] = {}
        self._not_before: dict[str, float] = {}

    def _may_start(self, host: str, now: float) -> bool:
        return (
            self._active.get(host, 0) < self.max_per_host and self._not_before.get(host, 0.0) <= now
        )

    def _start(self, host: str, now: float) -> None:
        self._active[host] = self._active.get(host, 0) + 1
        if self.min_interval_s > 0:
            self._not_before[host] = now + self.min_interval_s

    def admit(self, host: str, item: T, now: float) -> bool:
        """True: `item` may run now and holds a slot. False: it waits its turn here."""
        if host not in self._waiting and self._may_start(host, now):
            self._start(host, now)
            return True
        self._waiting.setdefault(host, deque()).append(item)
        return False

    def release(self, host: str, now: float) -> T | None:
        """Free a slot of `host`; returns the next item of that host that may start now."""
        left = self._active[host] - 1
        if left:
            self._active[host] = left
        else:
            del self._active[host]
        return self._next(host, now)

    def _next(self, host: str, now: float) -> T | None:
        queue = self._waiting.get(host)
        if queue is None or not self._may_start(host, now):
            if queue is None and host not in self._active:
                self._forget_spacing(host, now)
            return None
        item = queue.popleft()
        if not queue:
            del self._waiting[host]
        self._start(host, now)
        return item

    def _forget_spacing(self, host: str, now: float) -> None:
        if self._not_before.get(host, now) <= now:
            self._not_before.pop(host, None)

    def due(self, now: float) -> list[T]:
        """Waiting items whose spacing has elapsed (only spacing can make a free slot wait)."""
        ready = []
        for host in list(self._waiting):
            while (item := self._next(host, now)) is not None:
                ready.append(item)
        return ready

    def next_wakeup(self) -> float | None:
        """When the earliest spaced-out waiting item may start, if any is waiting on spacing."""
        times = [
            self._not_before[host]
            for host in self._waiting
            if host in self._not_before and self._active.get(host, 0) < self.max_per_host
        ]
        return min(times) if times else None

    def active(self, host: str) -> int:
        return self._active.get(host, 0)

    def waiting(self) -> int:
        return sum(len(queue) for queue in self._waiting.values())
