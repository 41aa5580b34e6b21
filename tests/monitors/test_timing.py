"""The due-time grid of monitors: fixed offsets spread by slug, start to start without drift,
stored due times honoured only while plausible, and the lag summary."""

from __future__ import annotations

import itertools

import pytest

from app.monitors.timing import (
    CATCH_UP_S,
    LagWindow,
    first_due,
    offset_s,
    slot_after,
    summarise,
)

NOW = 1_796_000_000.0  # an epoch time in 2026


def test_offsets_of_100_monitors_of_one_interval_are_distinct_and_spread_over_it() -> None:
    offsets = [offset_s(f"monitor-{n}", 60.0) for n in range(100)]
    assert len(set(offsets)) == 100
    assert all(0.0 <= offset < 60.0 for offset in offsets)
    # Every tenth of the minute has some: not bunched at :00 or anywhere else.
    assert {int(offset // 6) for offset in offsets} == set(range(10))


def test_the_offset_of_a_monitor_is_the_same_every_time() -> None:
    assert offset_s("checkout", 60.0) == offset_s("checkout", 60.0)
    assert offset_s("checkout", 60.0) != offset_s("checkout-eu", 60.0)


def test_slots_are_whole_intervals_apart_however_late_each_is_asked_for() -> None:
    offset = offset_s("api", 0.3)
    due = slot_after(NOW, 0.3, offset)
    slots = [due]
    for n in range(1, 200):
        # Asked a little after each due time, as a late start would: no drift follows.
        slots.append(slot_after(slots[-1] + 0.01 * (n % 7), 0.3, offset))
    assert slots[-1] == pytest.approx(slots[0] + 199 * 0.3, abs=1e-6)
    assert all(b - a == pytest.approx(0.3, abs=1e-6) for a, b in itertools.pairwise(slots))


def test_the_slot_after_a_grid_time_is_the_next_one_not_itself() -> None:
    offset = offset_s("api", 5.0)
    due = slot_after(NOW, 5.0, offset)
    assert slot_after(due, 5.0, offset) == pytest.approx(due + 5.0, abs=1e-6)
    assert NOW < due <= NOW + 5.0


def test_a_new_monitor_is_due_at_its_next_slot_within_one_interval() -> None:
    offset = offset_s("new", 60.0)
    assert first_due(NOW, 60.0, offset, None) == slot_after(NOW, 60.0, offset)


def test_a_stored_due_time_is_kept_when_plausible() -> None:
    offset = offset_s("kept", 60.0)
    for stored in (NOW, NOW + 1.0, NOW + 59.0):
        assert first_due(NOW, 60.0, offset, stored) == stored


def test_overdue_monitors_run_once_soon_spread_over_the_catch_up_window() -> None:
    # After a restart: whether one interval or a hundred were missed, one check each, within
    # CATCH_UP_S (or the interval, if shorter), at each monitor's own place in that window.
    dues = [
        first_due(NOW, 3600.0, offset_s(f"late-{n}", 3600.0), NOW - missed)
        for n in range(100)
        for missed in (1.0, 360_000.0)
    ]
    assert all(NOW <= due < NOW + CATCH_UP_S for due in dues)
    assert {int((due - NOW) // (CATCH_UP_S / 10)) for due in dues} == set(range(10))
    short = first_due(NOW, 5.0, offset_s("short", 5.0), NOW - 60.0)
    assert NOW <= short < NOW + 5.0


def test_a_stored_due_time_beyond_one_interval_is_pulled_in_to_the_next_slot() -> None:
    offset = offset_s("shortened", 60.0)
    assert first_due(NOW, 60.0, offset, NOW + 3600.0) == slot_after(NOW, 60.0, offset)


def test_lag_summary_reads_nearest_rank_percentiles_and_ignores_early_starts() -> None:
    window = LagWindow(size=100)
    for n in range(200):  # only the last 100 stay: 0.100 .. 0.199
        window.add(n / 1000)
    summary = summarise(window.copy())
    assert summary.samples == 100
    assert summary.p50_s == pytest.approx(0.149)  # the 50th of 100
    assert summary.p99_s == pytest.approx(0.198)  # the 99th
    assert summary.max_s == pytest.approx(0.199)
    assert summarise([]).samples == 0
    early = LagWindow()
    early.add(-0.5)  # started a hair early: counts as no lag, not a negative one
    assert summarise(early.copy()).max_s == 0.0
