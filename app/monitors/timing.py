"""When a monitor is due: a fixed grid of start times per monitor, and the recent lag.

Each monitor's checks start at `offset + k * interval_s` (epoch seconds), k a whole number.
The offset comes from the slug, spread evenly over the interval, so a thousand monitors of
60 s start across the minute instead of all at :00, and the same monitor keeps its place
across restarts. Each due time is computed from k, never by adding the interval to the last
start, so a late start does not push the following ones (start to start, no drift).
"""

from __future__ import annotations

import math
import zlib
from collections import deque
from dataclasses import dataclass


def offset_s(slug: str, interval_s: float) -> float:
    """Where in each interval this monitor's checks fall, in [0, interval_s)."""
    return zlib.crc32(slug.encode()) / 2**32 * interval_s


def slot_after(t: float, interval_s: float, offset: float) -> float:
    """The first grid time strictly after `t`."""
    k = math.floor((t - offset) / interval_s) + 1
    due = offset + k * interval_s
    if due <= t:  # `t` on a grid time, rounded just below it
        due = offset + (k + 1) * interval_s
    return due


# A restart's overdue checks are spread over this long (or the interval, if shorter).
CATCH_UP_S = 30.0


def first_due(now: float, interval_s: float, offset: float, stored: float | None) -> float:
    """The due time of a monitor the scheduler takes on: the stored one (the database's
    next_due_at) while it is plausible, else the next grid time after now."""
    if stored is None:
        return slot_after(now, interval_s, offset)
    if stored < now:
        # Overdue after a restart: one check soon, not one per interval missed, and not all
        # monitors at once: each at its own place in the catch-up window.
        return now + offset / interval_s * min(interval_s, CATCH_UP_S)
    if stored > now + interval_s:
        # Stored under a longer interval than the monitor has now.
        return slot_after(now, interval_s, offset)
    return stored


@dataclass(frozen=True, slots=True)
class LagSummary:
    p50_s: float
    p99_s: float
    max_s: float
    samples: int


class LagWindow:
    """The lags (due -> started) of the most recent checks. Not thread-safe: its owner
    serialises add() and copy(); summarise the copy outside any lock."""

    def __init__(self, size: int = 2048) -> None:
        self._lags: deque[float] = deque(maxlen=size)

    def add(self, lag_s: float) -> None:
        # A check may start a hair before its due time (a wait that returned early).
        self._lags.append(max(0.0, lag_s))

    def copy(self) -> list[float]:
        return list(self._lags)


def summarise(lags: list[float]) -> LagSummary:
    if not lags:
        return LagSummary(0.0, 0.0, 0.0, 0)
    ordered = sorted(lags)

    def rank(q: float) -> float:  # nearest rank
        return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]

    return LagSummary(rank(0.50), rank(0.99), ordered[-1], len(ordered))


@dataclass(frozen=True, slots=True)
class SchedulerStats:
    lag_p50_s: float  # due -> started, over the most recent scheduled checks
    lag_p99_s: float
    lag_max_s: float
    lag_samples: int
    skipped: int  # due times that came while the monitor's previous check was still going
    running: int  # checks handed out and not finished
    scheduled: int  # monitors on the schedule
    started: int  # checks handed out since start, manual ones included
    errors: int  # hand-offs and records that raised (logged)
