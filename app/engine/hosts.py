"""Who runs next: at most K checks of one host at a time and optional spacing between their
starts (politeness), and at most W checks in all, W being the pool's workers (so every check
handed to the pool finds a worker at once).

A check that must wait is parked here, not in a worker thread. When a check ends, its worker
asks for the next one, taken round-robin over the hosts that may start one now: the same worker
goes on with it, so in steady state no check goes back through the pool's queue. A thousand URLs
of one site neither hammer it nor starve other hosts. This class is bookkeeping only; its
caller serialises access with its own lock.

Reserved items (monitor checks) have a lane of their own with larger bounds: ordinary items
start only while fewer than K run on their host and fewer than W in all (counting reserved
ones), reserved items while fewer than K + reserved_per_host and W + reserved_total run. So the
reserve is free whenever a reserved item comes, however many ordinary items wait, and a freed
slot goes to a waiting reserved item first.
"""

from __future__ import annotations

import sys
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(eq=False)
class _Lane(Generic[T]):
    max_per_host: int
    max_total: int
    waiting: dict[str, deque[T]] = field(default_factory=dict)
    # Hosts with waiting items that may start one as soon as a worker is free, in
    # round-robin order (an ordered set: rotation and removal are O(1)).
    ready: OrderedDict[str, None] = field(default_factory=OrderedDict)


class HostGate(Generic[T]):
    def __init__(
        self,
        max_per_host: int,
        max_total: int | None = None,
        min_interval_s: float = 0.0,
        reserved_total: int = 0,
        reserved_per_host: int = 0,
    ) -> None:
        ceiling = max_total if max_total is not None else sys.maxsize
        self.min_interval_s = min_interval_s
        self._total = 0
        self._active: dict[str, int] = {}
        self._not_before: dict[str, float] = {}
        self._ordinary: _Lane[T] = _Lane(max_per_host, ceiling)
        # Fixed from the ceiling: lowering max_total (the limiter) never throttles the reserve.
        self._reserved: _Lane[T] = _Lane(
            max_per_host + reserved_per_host, min(sys.maxsize, ceiling + reserved_total)
        )
        self._waiting = self._ordinary.waiting  # the tests' view of the ordinary lane
        self._lanes = (self._reserved, self._ordinary)  # the order a freed slot is offered

    @property
    def max_per_host(self) -> int:
        return self._ordinary.max_per_host

    @property
    def max_total(self) -> int:
        return self._ordinary.max_total

    def admit(self, host: str, item: T, now: float, reserved: bool = False) -> bool:
        """True: `item` may run now and holds a slot. False: it waits its turn here."""
        lane = self._reserved if reserved else self._ordinary
        free = self._total < lane.max_total and self._free(lane, host, now)
        if free and host not in lane.waiting:
            self._start(host, now)
            return True
        lane.waiting.setdefault(host, deque()).append(item)
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
        """Change the bound on running ordinary items; returns the items that may start now."""
        self._ordinary.max_total = max_total
        return self.due(now)

    def due(self, now: float) -> list[T]:
        """Items that may start now that spacing has elapsed for their hosts."""
        self._prune(now)
        for host in {*self._reserved.waiting, *self._ordinary.waiting}:
            self._update(host, now)
        ready = []
        while (item := self._next(now)) is not None:
            ready.append(item)
        return ready

    def purge(self, dead: Callable[[T], bool]) -> list[T]:
        """Remove the waiting items `dead` selects; returns them."""
        removed: list[T] = []
        for lane in self._lanes:
            for host in list(lane.waiting):
                kept: deque[T] = deque()
                for item in lane.waiting[host]:
                    (removed if dead(item) else kept).append(item)
                if kept:
                    lane.waiting[host] = kept
                else:
                    del lane.waiting[host]
                    lane.ready.pop(host, None)
        return removed

    def next_wakeup(self) -> float | None:
        """When the earliest host that waits only on its spacing may start again."""
        times = [
            self._not_before[host]
            for lane in self._lanes
            for host in lane.waiting
            if host in self._not_before and self._active.get(host, 0) < lane.max_per_host
        ]
        return min(times) if times else None

    def active(self, host: str) -> int:
        return self._active.get(host, 0)

    def waiting(self) -> int:
        return sum(len(queue) for lane in self._lanes for queue in lane.waiting.values())

    # --- internals ----------------------------------------------------------------------
    def _free(self, lane: _Lane[T], host: str, now: float) -> bool:
        return (
            self._active.get(host, 0) < lane.max_per_host and self._not_before.get(host, 0.0) <= now
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
        """Keep `host` in each lane's ready ring exactly while it has waiting items of that
        lane it may start."""
        for lane in self._lanes:
            if host in lane.waiting and self._free(lane, host, now):
                lane.ready.setdefault(host)
            else:
                lane.ready.pop(host, None)

    def _next(self, now: float) -> T | None:
        for lane in self._lanes:
            if self._total >= lane.max_total or not lane.ready:
                continue
            host = next(iter(lane.ready))
            queue = lane.waiting[host]
            item = queue.popleft()
            if not queue:
                del lane.waiting[host]
            self._start(host, now)
            lane.ready.pop(host)
            self._update(host, now)  # back at the end of the ring, if it may start another
            return item
        return None
