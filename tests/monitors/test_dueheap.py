"""DueHeap: monitors come out earliest first, a changed due time replaces the old one, and a
removed monitor never comes out."""

from __future__ import annotations

from app.monitors.dueheap import DueHeap


def test_monitors_due_by_now_come_out_earliest_first_and_the_rest_stay() -> None:
    heap = DueHeap()
    for monitor_id, due in ((1, 30.0), (2, 10.0), (3, 20.0), (4, 99.0)):
        heap.set(monitor_id, due)
    assert heap.pop_due(now=30.0) == [(2, 10.0), (3, 20.0), (1, 30.0)]
    assert heap.earliest() == (99.0, 4)
    assert len(heap) == 1
    assert heap.get(1) is None


def test_a_changed_due_time_replaces_the_old_one() -> None:
    heap = DueHeap()
    heap.set(1, 10.0)
    heap.set(1, 50.0)
    assert heap.pop_due(now=20.0) == []
    assert heap.get(1) == 50.0
    heap.set(1, 5.0)  # earlier again: the newest time counts, not the smallest
    assert heap.pop_due(now=60.0) == [(1, 5.0)]
    assert heap.pop_due(now=60.0) == []


def test_a_removed_monitor_never_comes_out_and_its_entries_are_dropped() -> None:
    heap = DueHeap()
    heap.set(1, 10.0)
    heap.set(2, 20.0)
    heap.discard(1)
    assert heap.earliest() == (20.0, 2)
    assert heap.pop_due(now=100.0) == [(2, 20.0)]
    assert heap.earliest() is None
    assert heap._heap == []  # nothing left behind
