"""Prometheus's text exposition, written by hand for the per-monitor families.

prometheus_client builds a sample object per series and formats each on every scrape; for
~150,000 monitor series that is the whole cost of a scrape (see bench/metrics_scrape.py), so
these families are rendered here, once per change of a monitor, and joined per scrape. The
escaping and number formatting follow the format's rules, and the tests read the output
back with prometheus_client's parser.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from urllib.parse import urlsplit


def escape(value: str) -> str:
    """A label value as the format quotes it: backslash, double quote and newline escaped."""
    if "\\" in value or '"' in value or "\n" in value:
        value = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return value


def label_pairs(**labels: str) -> str:
    """`name="value",...` without braces, so a family can append its own (`phase`)."""
    return ",".join(f'{name}="{escape(value)}"' for name, value in labels.items())


def number(value: float) -> str:
    """A sample value: Python's shortest round-trip form, which Prometheus parses (Go would
    write 1.8e+09 where this writes 1800000000.0: the same number)."""
    value = float(value)
    if math.isfinite(value):
        return repr(value)
    return "NaN" if math.isnan(value) else ("+Inf" if value > 0 else "-Inf")


def public_url(url: str) -> str:
    """The URL as a label may show it: no credentials, query or fragment (they may hold
    secrets, and a query string makes a new series of every token)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return ""
    host = parts.netloc.rpartition("@")[2]
    return f"{parts.scheme}://{host}{parts.path}"


@dataclass(frozen=True, slots=True)
class Family:
    name: str
    kind: str  # gauge | counter
    help: str

    def header(self) -> bytes:
        return f"# HELP {self.name} {self.help}\n# TYPE {self.name} {self.kind}\n".encode()

    def sample(self, labels: str, value: float) -> bytes:
        """One line; `labels` from label_pairs (empty: no braces)."""
        shown = f"{{{labels}}}" if labels else ""
        return f"{self.name}{shown} {number(value)}\n".encode()
