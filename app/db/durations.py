"""A histogram of durations kept by one thread, read by others without a lock.

The writer thread observes each commit; a scrape copies the counts. Only the owning thread
writes, so no increment is lost; a reader may see the sum one observation ahead of or behind
the counts it copied, which a scrape tolerates (the count it reports is the counts' total, so
the +Inf bucket always equals it).
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass

# Seconds; a commit on SQLite takes ~1 ms, on PostgreSQL a round trip or few, and an outage's
# retries show as the long tail.
COMMIT_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass(frozen=True, slots=True)
class DurationsSnapshot:
    bounds: tuple[float, ...]  # upper bounds, seconds; +Inf implied after the last
    counts: tuple[int, ...]  # per bucket, not cumulative; one more than bounds (+Inf)
    sum_s: float

    @property
    def count(self) -> int:
        return sum(self.counts)


class Durations:
    def __init__(self, bounds: tuple[float, ...] = COMMIT_BUCKETS_S) -> None:
        self._bounds = bounds
        self._counts = [0] * (len(bounds) + 1)
        self._sum = 0.0

    def observe(self, seconds: float) -> None:
        """From the owning thread only."""
        self._counts[bisect_left(self._bounds, seconds)] += 1
        self._sum += seconds

    def snapshot(self) -> DurationsSnapshot:
        return DurationsSnapshot(self._bounds, tuple(self._counts), self._sum)
