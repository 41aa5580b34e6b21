"""The text exposition pieces rendered by hand: what Prometheus's own parser reads back."""

from __future__ import annotations

import math

import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.metrics.exposition import Family, label_pairs, number, public_url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://user:secret@example.org/health?token=abc#frag", "https://example.org/health"),
        ("http://example.org:8080/a/b?x=1", "http://example.org:8080/a/b"),
        ("http://[::1]:9000/path", "http://[::1]:9000/path"),
        ("http://token@127.0.0.1/", "http://127.0.0.1/"),
        ("https://example.org", "https://example.org"),
    ],
)
def test_public_url_drops_credentials_query_and_fragment(url: str, shown: str) -> None:
    assert public_url(url) == shown


def test_label_values_with_quotes_backslashes_and_newlines_parse_back_unchanged() -> None:
    awkward = 'a "quoted" \\ back\nslash'
    family = Family("probe_success", "gauge", "Whether the probe succeeded.")
    text = family.header() + family.sample(label_pairs(monitor=awkward, group=""), 1.0)

    parsed = list(text_string_to_metric_families(text.decode()))

    assert [f.name for f in parsed] == ["probe_success"]
    (sample,) = parsed[0].samples
    assert sample.labels == {"monitor": awkward, "group": ""}
    assert sample.value == 1.0


def test_numbers_render_as_prometheus_floats() -> None:
    assert number(200) == "200.0"
    assert number(0.0125) == "0.0125"
    assert number(math.inf) == "+Inf"
    assert number(math.nan) == "NaN"
