"""The latency histogram's buckets, defined once: rollups count into them, percentiles are
read back from them.

Upper bounds grow by 2^(1/4) (~19 %) from 1 ms to ~65.5 s: 65 buckets, then one for
anything slower. A percentile read from a histogram is the upper bound of the bucket holding
it, clamped to the window's min and max, so it lies in the same bucket as the exact one
(within ~19 %). A histogram is stored sparse, {bucket index as text: count}: the latencies of
one monitor fall in a few buckets, so a rollup row stays small.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping
from typing import Final

# Upper bounds, inclusive, in microseconds.
BOUNDS_US: Final[tuple[int, ...]] = tuple(round(1000 * 2 ** (i / 4)) for i in range(65))
OVERFLOW: Final = len(BOUNDS_US)  # the bucket past the last bound

Histogram = dict[str, int]


def bucket_of(latency_us: int) -> int:
    return bisect.bisect_left(BOUNDS_US, latency_us)


def bounds(bucket: int) -> tuple[int, int | None]:
    """A bucket's range in µs: (exclusive lower, inclusive upper; None past the last)."""
    lower = 0 if bucket == 0 else BOUNDS_US[bucket - 1]
    return lower, BOUNDS_US[bucket] if bucket < OVERFLOW else None


def add(histogram: Mapping[str, int], latency_us: int) -> Histogram:
    key = str(bucket_of(latency_us))
    merged = dict(histogram)
    merged[key] = merged.get(key, 0) + 1
    return merged


def merge(histograms: Iterable[Mapping[str, int]]) -> dict[int, int]:
    total: dict[str, int] = {}
    for histogram in histograms:
        for key, count in histogram.items():
            total[key] = total.get(key, 0) + count
    return {int(key): count for key, count in total.items()}


def percentile(counts: Mapping[int, int], q: float, low_us: int, high_us: int) -> int | None:
    """The `q` quantile (0 < q <= 1, nearest rank) of the counted latencies, as its bucket's
    upper bound clamped to [low_us, high_us] (the window's min and max); None if none."""
    total = sum(counts.values())
    if total == 0:
        return None
    rank = max(1, -(-int(q * total * 1_000_000) // 1_000_000))  # ceil(q * total), exactly
    seen = 0
    for bucket in sorted(counts):
        seen += counts[bucket]
        if seen >= rank:
            upper = bounds(bucket)[1]
            return max(low_us, min(high_us, high_us if upper is None else upper))
    return high_us
