"""Percentiles read from histograms lie in the same bucket as the exact ones."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from app.monitors import buckets

latencies = st.lists(st.integers(min_value=0, max_value=120_000_000), min_size=1, max_size=300)


@settings(max_examples=200, deadline=None)
@given(latencies, st.sampled_from([0.5, 0.9, 0.95, 0.99, 1.0]))
def test_a_histogram_percentile_is_in_the_exact_ones_bucket(values: list[int], q: float) -> None:
    histogram: dict[str, int] = {}
    for value in values:
        histogram = buckets.add(histogram, value)
    counts = buckets.merge([histogram])
    reported = buckets.percentile(counts, q, min(values), max(values))
    ordered = sorted(values)
    exact = ordered[max(1, -(-int(q * len(ordered) * 1_000_000) // 1_000_000)) - 1]
    assert reported is not None
    assert buckets.bucket_of(reported) == buckets.bucket_of(exact)
    assert min(values) <= reported <= max(values)


def test_buckets_are_about_19_percent_wide_from_1_ms_to_65_s() -> None:
    assert buckets.BOUNDS_US[0] == 1000
    assert 65_000_000 < buckets.BOUNDS_US[-1] < 66_000_000
    for lower, upper in zip(buckets.BOUNDS_US, buckets.BOUNDS_US[1:], strict=False):
        assert 1.18 < upper / lower < 1.2
    assert buckets.bucket_of(10**9) == buckets.OVERFLOW
    assert buckets.percentile({}, 0.5, 0, 0) is None
