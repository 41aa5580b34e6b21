"""/probe's query as blackbox_exporter reads it: target, module, the scrape timeout header."""

from __future__ import annotations

import pytest

from app.metrics.probe import Prober, ProbeRefused
from app.schemas.jobs import JobOptions
from tests.conftest import make_settings


def prober(**modules: JobOptions) -> Prober:
    return Prober(make_settings(), (lambda: modules) if modules else None)


def test_a_target_without_scheme_is_checked_over_http_as_blackbox_does() -> None:
    request = prober().prepare("127.0.0.1:8080", "http_2xx", None)

    assert request.url == "http://127.0.0.1:8080"
    assert request.parsed.port == 8080


def test_the_built_in_http_2xx_module_expects_2xx_and_is_the_default() -> None:
    request = prober().prepare("https://example.org/health", None, None)

    assert request.module == "http_2xx"
    assert request.options.expected_status == ((200, 299),)
    assert request.options.timeout_s == make_settings().default_timeout_s


def test_modules_from_the_monitors_file_are_offered_and_may_replace_http_2xx() -> None:
    chosen = prober(
        api=JobOptions(expected_status="200-399", timeout_s=3),
        http_2xx=JobOptions(expected_status="200"),
    )

    assert chosen.prepare("http://127.0.0.1/", "api", None).options.timeout_s == 3
    assert chosen.prepare("http://127.0.0.1/", "http_2xx", None).options.expected_status == (
        (200, 200),
    )


def test_an_unknown_module_is_refused_naming_it_and_the_known_ones() -> None:
    with pytest.raises(ProbeRefused) as refused:
        prober(api=JobOptions()).prepare("http://127.0.0.1/", "tcp_connect", None)

    assert "'tcp_connect'" in str(refused.value)
    assert "api, http_2xx" in str(refused.value)


@pytest.mark.parametrize(
    ("target", "why"),
    [
        (None, "target parameter is missing"),
        ("", "target parameter is missing"),
        ("ftp://127.0.0.1/", "URL"),
        ("http://", "URL"),
    ],
)
def test_a_missing_or_invalid_target_is_refused(target: str | None, why: str) -> None:
    with pytest.raises(ProbeRefused) as refused:
        prober().prepare(target, "http_2xx", None)

    assert why in str(refused.value)


def test_the_scrape_timeout_header_bounds_the_check_less_half_a_second() -> None:
    chosen = prober(slow=JobOptions(timeout_s=30))

    assert chosen.prepare("http://127.0.0.1/", "slow", "10").options.timeout_s == 9.5
    assert chosen.prepare("http://127.0.0.1/", "slow", "60").options.timeout_s == 30
    with pytest.raises(ProbeRefused, match="X-Prometheus-Scrape-Timeout-Seconds"):
        chosen.prepare("http://127.0.0.1/", "slow", "soon")
