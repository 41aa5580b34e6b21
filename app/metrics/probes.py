"""A check result (its stored JSON, parsed) as blackbox_exporter's `probe_*` samples.

Names, meanings and units are blackbox_exporter's, so its dashboards and alert rules work
unchanged: `probe_http_duration_seconds` is summed over redirects as blackbox sums it (the
result's `timings_all_hops_ms`), with its phase names (dns -> resolve, ttfb -> processing).
Read from the JSON dict, not the model: the monitors collector parses thousands of stored
results, and validating each into a CheckResult would cost several times the parse.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from app.metrics.exposition import Family

# Samples per family: (extra labels as `name="value"` text, value).
Samples = dict[str, list[tuple[str, float]]]

SUCCESS = Family("probe_success", "gauge", "Displays whether or not the probe was a success")
DURATION = Family(
    "probe_duration_seconds", "gauge", "Returns how long the probe took to complete in seconds"
)
STATUS = Family("probe_http_status_code", "gauge", "Response HTTP status code")
VERSION = Family("probe_http_version", "gauge", "Returns the version of HTTP of the probe response")
REDIRECTS = Family("probe_http_redirects", "gauge", "The number of redirects")
SSL = Family("probe_http_ssl", "gauge", "Indicates if SSL was used for the final redirect")
PHASES = Family(
    "probe_http_duration_seconds",
    "gauge",
    "Duration of http request by phase, summed over all redirects",
)
CERT_EXPIRY = Family(
    "probe_ssl_earliest_cert_expiry", "gauge", "Returns last SSL chain expiry in unixtime"
)
# /probe only: blackbox_exporter shows them, /metrics would only repeat other series.
DNS = Family(
    "probe_dns_lookup_time_seconds", "gauge", "Returns the time taken for probe dns lookup"
)
IP_PROTOCOL = Family(
    "probe_ip_protocol", "gauge", "Specifies whether probe ip protocol is IP4 or IP6"
)
REGEX = Family("probe_failed_due_to_regex", "gauge", "Indicates if probe failed due to regex")

MONITOR_FAMILIES = (SUCCESS, DURATION, STATUS, VERSION, REDIRECTS, SSL, PHASES, CERT_EXPIRY)
PROBE_FAMILIES = (*MONITOR_FAMILIES, DNS, IP_PROTOCOL, REGEX)

# CheckResult's Timings fields and blackbox_exporter's phase names, in its order.
_PHASES = (
    ("dns", 'phase="resolve"'),
    ("connect", 'phase="connect"'),
    ("tls", 'phase="tls"'),
    ("ttfb", 'phase="processing"'),
    ("transfer", 'phase="transfer"'),
)
_BODY_ASSERTIONS = frozenset({"body_contains", "body_not_contains", "body_regex"})


def probe_samples(result: Mapping[str, Any], blackbox_extras: bool) -> Samples:
    """The samples of one result; `blackbox_extras` adds the /probe-only families."""
    status = result.get("status_code")
    tls = result.get("tls")
    timings = result.get("timings_all_hops_ms") or result.get("timings_ms") or {}
    samples: Samples = {
        SUCCESS.name: [("", 1.0 if result.get("ok") else 0.0)],
        DURATION.name: [("", (result.get("elapsed_ms") or 0.0) / 1000)],
        STATUS.name: [("", float(status or 0))],
        VERSION.name: [("", http_version(result.get("http_version")))],
        REDIRECTS.name: [("", float(len(result.get("redirects") or ())))],
        SSL.name: [("", 1.0 if tls and status is not None else 0.0)],
        PHASES.name: [(label, (timings.get(key) or 0.0) / 1000) for key, label in _PHASES],
    }
    expiry = _timestamp(tls.get("not_after")) if tls else None
    if expiry is not None:
        samples[CERT_EXPIRY.name] = [("", expiry)]
    if blackbox_extras:
        samples[DNS.name] = [("", (timings.get("dns") or 0.0) / 1000)]
        samples[IP_PROTOCOL.name] = [("", ip_protocol(result.get("remote_ip")))]
        failed = result.get("failed_assertions") or ()
        regex = any(item.get("assertion") in _BODY_ASSERTIONS for item in failed)
        samples[REGEX.name] = [("", 1.0 if regex else 0.0)]
    return samples


def http_version(text: str | None) -> float:
    """ "HTTP/1.1" -> 1.1, "HTTP/2" -> 2.0, as blackbox_exporter reports it; 0 without one."""
    if not text:
        return 0.0
    try:
        return float(text.rpartition("/")[2])
    except ValueError:
        return 0.0


def ip_protocol(address: str | None) -> float:
    if not address:
        return 0.0
    try:
        return float(ipaddress.ip_address(address).version)
    except ValueError:
        return 0.0


def _timestamp(text: str | None) -> float | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None
