"""Who runs next: at most K checks of one host at a time and optional spacing between their
starts (politeness), and at most W checks in all, W being the pool's workers (so every check
handed to the pool finds a worker at once).

A check that must wait is parked here, not in a worker thread. When a check ends, its worker
asks for the next one, taken round-robin over the hosts that may start one now: the same worker
goes on with it, so in steady state no check goes back through the pool's queue. A thousand URLs
of one site neither hammer it nor starve other hosts. This class is bookkeeping only; its
caller serialises access with its own lock.
"""

from __future__ import annotations

import sys
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class HostGate(Generic[T]):
    def __init__(
        self, max_per_host: int, max_total: int | None = None, min_interval_s: float = 0.0
    ) -> None:
        self.max_per_host = max_per_host
        self.max_total = max_total if max_total is not None else sys.maxsize
        self.min_interval_s = min_interval_s
        self._total = 0
        self._active: dict[str, int] = {}
        self._waiting: dict[str, deque[T]] = {}
        # Hosts with waiting items that may start one as soon as a worker is free, in
        # round-robin order (an ordered set: rotation and removal are O(1)).
        self._ready: OrderedDict[str, None] = OrderedDict()
        self._not_before: dict[str, float] = {}

    def admit(self, host: str, item: T, now: float) -> bool:
        """True: `item` may run now and holds a slot. False: it waits its turn here."""
        if self._total < self.max_total and host not in self._waiting and self._free(host, now):
            self._start(host, now)
            return True
        self._waiting.setdefault(host, deque()).append(item)
        self._update(host, now)
        return False

    def release(self, host: str, now: float) -> T | None:
        """Free a slot of `host`; returns the item that may start in its place, if any."""
        self._total -= 1
        left = self._active[host] - 1
        if left:
            self._active[host] = left
        else:
            del self._active[host]
        self._prune(now)
        self._update(host, now)
        return self._next(now)

    def set_max_total(self, max_total: int, now: float) -> list[T]:
        """Change the bound on running items; returns the items that may start now."""
        self.max_total = max_total
        return self.due(now)

    def due(self, now: float) -> list[T]:
        """Items that may start now that spacing has elapsed for their hosts."""
        self._prune(now)
        for host in list(self._waiting):
            self._update(host, now)
        ready = []
        while (item := self._next(now)) is not None:
            ready.append(item)
        return ready

    def purge(self, dead: Callable[[T], bool]) -> list[T]:
        """Remove the waiting items `dead` selects; returns them."""
        removed: list[T] = []
        for host in list(self._waiting):
            queue = self._waiting[host]
            kept: deque[T] = deque()
            for item in queue:
                (removed if dead(item) else kept).append(item)
            if kept:
                self._waiting[host] = kept
            else:
                del self._waiting[host]
                self._ready.pop(host, None)
        return removed

    def next_wakeup(self) -> float | None:
        """When the earliest host that waits only on its spacing may start again."""
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

    # --- internals ----------------------------------------------------------------------
    def _free(self, host: str, now: float) -> bool:
        return (
            self._active.get(host, 0) < self.max_per_host and self._not_before.get(host, 0.0) <= now
        )

    def _start(self, host: str, now: float) -> None:
        self._total += 1
        self._active[host] = self._active.get(host, 0) + 1
        if self.min_interval_s > 0:
            # Re-inserted, so the dict stays ordered by time and _prune can stop early.
            self._not_before.pop(host, None)
            self._not_before[host] = now + self.min_interval_s

    def _prune(self, now: float) -> None:
        # A spacing time in the past means what no entry means; drop them, oldest first, so
        # hosts checked once are not remembered forever.
        while self._not_before:
            host, at = next(iter(self._not_before.items()))
            if at > now:
                break
            del self._not_before[host]

    def _update(self, host: str, now: float) -> None:
        """Keep `host` in the ready ring exactly while it has waiting items it may start."""
        if host in self._waiting and self._free(host, now):
            self._ready.setdefault(host)
        else:
            self._ready.pop(host, None)

    def _next(self, now: float) -> T | None:
        if self._total >= self.max_total or not self._ready:
            return None
        host = next(iter(self._ready))
        queue = self._waiting[host]
        item = queue.popleft()
        if not queue:
            del self._waiting[host]
        self._start(host, now)
        self._ready.pop(host)
        self._update(host, now)  # back at the end of the ring, if it may start another
        return item
