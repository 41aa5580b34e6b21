"""Monitors' due times, earliest first: the scheduler's cache of monitors.next_due_at.

A monitor's time changes by pushing a new entry; the old one stays in the heap and is dropped
when it reaches the top (its version is out of date), so a change costs O(log n) and nothing is
ever searched. Not thread-safe: the scheduler serialises access under its lock.
"""

from __future__ import annotations

import heapq


class DueHeap:
    def __init__(self) -> None:
        self._heap: list[tuple[float, int, int]] = []  # (due, monitor id, version)
        self._current: dict[int, tuple[float, int]] = {}  # monitor id -> (due, version)
        self._versions = 0

    def set(self, monitor_id: int, due: float) -> None:
        self._versions += 1
        self._current[monitor_id] = (due, self._versions)
        heapq.heappush(self._heap, (due, monitor_id, self._versions))

    def discard(self, monitor_id: int) -> None:
        self._current.pop(monitor_id, None)

    def get(self, monitor_id: int) -> float | None:
        current = self._current.get(monitor_id)
        return None if current is None else current[0]

    def pop_due(self, now: float) -> list[tuple[int, float]]:
        """Take out every monitor due at `now` or before: (id, due), earliest first. The
        caller sets each one's next due time."""
        taken = []
        while (top := self.earliest()) is not None and top[0] <= now:
            due, monitor_id = top
            heapq.heappop(self._heap)
            del self._current[monitor_id]
            taken.append((monitor_id, due))
        return taken

    def earliest(self) -> tuple[float, int] | None:
        """(due, id) of the monitor due first, if any."""
        heap = self._heap
        while heap:
            due, monitor_id, version = heap[0]
            if self._current.get(monitor_id) == (due, version):
                return due, monitor_id
            heapq.heappop(heap)  # out of date: changed or removed since
        return None

    def __len__(self) -> int:
        return len(self._current)
