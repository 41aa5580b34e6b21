"""A check result as blackbox_exporter's probe_* samples."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from app.metrics.probes import probe_samples
from app.schemas.assertions import FailedAssertion
from app.schemas.results import CheckError, CheckResult, ErrorKind, RedirectHop, Timings, TlsInfo

AT = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
EXPIRY = datetime(2027, 3, 1, 0, 0, tzinfo=UTC)


def as_stored(result: CheckResult) -> dict[str, Any]:
    """The result as the store keeps it (its JSON), read back as the collector reads it."""
    parsed: dict[str, Any] = json.loads(result.model_dump_json())
    return parsed


def flat(samples: dict[str, list[tuple[str, float]]]) -> dict[str, float]:
    return {
        f"{name}{{{labels}}}" if labels else name: value
        for name, lines in samples.items()
        for labels, value in lines
    }


def test_an_https_answer_after_a_redirect_gives_every_http_and_ssl_sample() -> None:
    result = CheckResult(
        url="https://example.org/",
        ok=True,
        outcome="up",
        status_code=200,
        elapsed_ms=125.0,
        http_version="HTTP/2",
        redirects=[RedirectHop(url="https://example.org/", status_code=301, location="/x")],
        remote_ip="2001:db8::1",
        timings_ms=Timings(dns=0, connect=0, tls=0, ttfb=20, transfer=5, total=25),
        timings_all_hops_ms=Timings(dns=10, connect=20, tls=30, ttfb=40, transfer=25, total=125),
        tls=TlsInfo(verified=True, not_after=EXPIRY),
        checked_at=AT,
    )

    samples = flat(probe_samples(as_stored(result), blackbox_extras=True))

    assert samples == {
        "probe_success": 1.0,
        "probe_duration_seconds": 0.125,
        "probe_http_status_code": 200.0,
        "probe_http_version": 2.0,
        "probe_http_redirects": 1.0,
        "probe_http_ssl": 1.0,
        # Summed over hops, as blackbox_exporter sums them over redirects.
        'probe_http_duration_seconds{phase="resolve"}': 0.01,
        'probe_http_duration_seconds{phase="connect"}': 0.02,
        'probe_http_duration_seconds{phase="tls"}': 0.03,
        'probe_http_duration_seconds{phase="processing"}': 0.04,
        'probe_http_duration_seconds{phase="transfer"}': 0.025,
        "probe_ssl_earliest_cert_expiry": EXPIRY.timestamp(),
        "probe_dns_lookup_time_seconds": 0.01,
        "probe_ip_protocol": 6.0,
        "probe_failed_due_to_regex": 0.0,
    }


def test_a_blocked_check_is_a_failed_probe_with_zero_phases_and_no_ssl_sample() -> None:
    result = CheckResult(
        url="http://169.254.169.254/",
        ok=False,
        outcome="down",
        elapsed_ms=0.2,
        checked_at=AT,
        error=CheckError(kind=ErrorKind.BLOCKED, message="cloud metadata (169.254.169.254)"),
    )

    samples = flat(probe_samples(as_stored(result), blackbox_extras=False))

    assert samples["probe_success"] == 0.0
    assert samples["probe_http_status_code"] == 0.0
    assert samples["probe_http_version"] == 0.0
    assert samples['probe_http_duration_seconds{phase="connect"}'] == 0.0
    assert "probe_ssl_earliest_cert_expiry" not in samples
    assert "probe_dns_lookup_time_seconds" not in samples  # /probe only


def test_a_body_assertion_that_failed_sets_failed_due_to_regex() -> None:
    result = CheckResult(
        url="http://127.0.0.1/",
        ok=False,
        outcome="down",
        status_code=200,
        http_version="HTTP/1.1",
        elapsed_ms=3.0,
        remote_ip="127.0.0.1",
        failed_assertions=[
            FailedAssertion(
                assertion="body_regex", expected="v\\d", actual="no match", severity="down"
            )
        ],
        checked_at=AT,
        error=CheckError(kind=ErrorKind.ASSERTION_FAILED, message="1 assertion failed"),
    )

    samples = flat(probe_samples(as_stored(result), blackbox_extras=True))

    assert samples["probe_failed_due_to_regex"] == 1.0
    assert samples["probe_http_version"] == 1.1
    assert samples["probe_ip_protocol"] == 4.0
    assert samples["probe_success"] == 0.0
