"""/metrics and /probe through the running service, read as Prometheus reads them."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from tests.conftest import RunningService
from tests.support.api import submit
from tests.support.destination import guard
from tests.support.monitor_rows import insert_monitors, monitor_row
from tests.support.servers import RawServer, ThreadedUvicorn
from tests.support.tls import ca_bundle, https_url, leaf_pem, tls_server

Series = dict[tuple[str, frozenset[tuple[str, str]]], float]
ServiceFactory = Callable[..., RunningService]

# What Prometheus 2 sends with a scrape (besides its User-Agent).
PROMETHEUS_HEADERS = {
    "Accept": "application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
    "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
    "Accept-Encoding": "gzip",
    "User-Agent": "Prometheus/2.53.0",
    "X-Prometheus-Scrape-Timeout-Seconds": "10",
}


def parse(response: httpx.Response) -> Series:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == CONTENT_TYPE_LATEST
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def of(series: Series, name: str, **labels: str) -> float | None:
    found = [v for (n, ls), v in series.items() if n == name and set(labels.items()) <= ls]
    assert len(found) <= 1, (name, labels, found)
    return found[0] if found else None


def checked(svc: RunningService, url: str) -> bytes:
    """A real check through the service, as the JSON a monitor row keeps."""
    response = svc.client.post("/v1/check", json={"urls": [url]})
    assert response.status_code == 200, response.text
    return json.dumps(response.json()["results"][0]).encode()


@pytest.fixture(scope="module")
def root_target() -> Iterator[ThreadedUvicorn]:
    """A target answering at "/", as a bare host:port probe asks."""

    async def home(request: Request) -> Response:
        return PlainTextResponse("ok")

    server = ThreadedUvicorn(Starlette(routes=[Route("/", home)])).start()
    yield server
    server.stop()


def test_metrics_show_each_monitor_blackbox_style_and_the_service_counters(
    service: RunningService, target: ThreadedUvicorn
) -> None:
    up, down = (
        checked(service, f"{target.url}/status/200"),
        checked(service, f"{target.url}/status/503"),
    )
    secret = target.url.replace("http://", "http://admin:hunter2@") + "/status/200?key=k3y"
    insert_monitors(
        service.services.storage.writer,
        [
            monitor_row(1, secret, up, slug="shop", group="web", state="up"),
            monitor_row(2, f"{target.url}/status/503", down, slug="api", state="down"),
            monitor_row(3, f"{target.url}/", up, slug="resting", paused=True, state="up"),
            monitor_row(4, f"{target.url}/", None, slug="fresh"),
        ],
    )

    response = service.client.get("/metrics")
    series = parse(response)

    shop = {"monitor": "shop", "group": "web", "url": f"{target.url}/status/200"}
    assert of(series, "probe_success", **shop) == 1.0
    assert of(series, "probe_http_status_code", **shop) == 200.0
    assert of(series, "probe_http_duration_seconds", phase="processing", **shop) is not None
    assert of(series, "probe_success", monitor="api") == 0.0
    assert of(series, "probe_http_status_code", monitor="api") == 503.0
    assert of(series, "probe_success", monitor="resting") is None
    assert of(series, "probe_success", monitor="fresh") is None
    assert of(series, "urlhealth_monitor_state", monitor="resting", state="paused") == 1.0
    assert of(series, "urlhealth_monitor_state", monitor="fresh", state="unknown") == 1.0
    assert "hunter2" not in response.text
    assert "k3y" not in response.text
    # The two checks above, counted by the service itself.
    assert of(series, "urlhealth_checks_total", outcome="up") == 1.0
    assert of(series, "urlhealth_checks_total", outcome="down") == 1.0
    assert of(series, "urlhealth_check_errors_total", kind="unexpected_status") == 1.0
    assert of(series, "urlhealth_workers") == service.services.settings.workers
    assert of(series, "urlhealth_store_commit_seconds_count") >= 1  # type: ignore[operator]
    assert of(series, "process_resident_memory_bytes") is not None


def test_metrics_are_gzip_compressed_when_the_scraper_asks(
    service: RunningService, target: ThreadedUvicorn
) -> None:
    insert_monitors(
        service.services.storage.writer,
        [monitor_row(1, f"{target.url}/status/200", checked(service, f"{target.url}/status/200"))],
    )

    response = service.client.get("/metrics", headers=PROMETHEUS_HEADERS)

    assert response.headers["content-encoding"] == "gzip"
    assert of(parse(response), "probe_success", monitor="monitor-1") == 1.0
    plain = service.client.get("/metrics", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers


def probe(svc: RunningService, **params: str) -> httpx.Response:
    return svc.client.get("/probe", params=params, headers=PROMETHEUS_HEADERS)


def test_probe_answers_like_blackbox_exporter_for_a_healthy_and_a_failing_target(
    service: RunningService, target: ThreadedUvicorn
) -> None:
    good = parse(probe(service, module="http_2xx", target=f"{target.url}/status/200"))
    bad = parse(probe(service, module="http_2xx", target=f"{target.url}/status/500"))

    assert good[("probe_success", frozenset())] == 1.0
    assert good[("probe_http_status_code", frozenset())] == 200.0
    assert good[("probe_http_version", frozenset())] == 1.1
    assert good[("probe_ip_protocol", frozenset())] == 4.0
    assert good[("probe_duration_seconds", frozenset())] > 0
    phases = {dict(ls)["phase"] for n, ls in good if n == "probe_http_duration_seconds"}
    assert phases == {"resolve", "connect", "tls", "processing", "transfer"}
    assert bad[("probe_success", frozenset())] == 0.0
    assert bad[("probe_http_status_code", frozenset())] == 500.0


def test_probe_of_an_https_target_reports_its_certificate_expiry(
    service_factory: ServiceFactory, tmp_path: Path
) -> None:
    ca = trustme.CA()
    not_after = (datetime.now(UTC) + timedelta(days=40)).replace(microsecond=0)
    pem = leaf_pem(ca, tmp_path / "server.pem", "127.0.0.1", not_after=not_after)
    svc = service_factory(ca_bundle=ca_bundle(ca, tmp_path))
    with tls_server(pem) as server:
        response = probe(svc, target=https_url(server, "/status/200"))

    series = parse(response)
    assert series[("probe_success", frozenset())] == 1.0
    assert series[("probe_http_ssl", frozenset())] == 1.0
    assert series[("probe_ssl_earliest_cert_expiry", frozenset())] == not_after.timestamp()
    assert series[("probe_http_duration_seconds", frozenset({("phase", "tls")}))] > 0


def test_a_prometheus_multi_target_scrape_of_host_and_port_works(
    service: RunningService, root_target: ThreadedUvicorn
) -> None:
    port = root_target.url.rsplit(":", 1)[1]

    # As relabelled from `static_configs: targets: ["127.0.0.1:PORT"]`.
    response = service.client.get(
        f"/probe?module=http_2xx&target=127.0.0.1:{port}", headers=PROMETHEUS_HEADERS
    )

    series = parse(response)
    assert series[("probe_success", frozenset())] == 1.0
    assert series[("probe_http_status_code", frozenset())] == 200.0


def test_probe_of_a_blocked_destination_fails_says_why_and_connects_to_nothing(
    service_factory: ServiceFactory,
) -> None:
    svc = service_factory()
    connects = guard(svc.services.http)

    response = probe(svc, target="169.254.169.254/latest/meta-data/")

    series = parse(response)
    assert series[("probe_success", frozenset())] == 0.0
    assert series[("probe_http_status_code", frozenset())] == 0.0
    assert "# urlhealth: blocked: " in response.text
    assert "169.254.169.254" in response.text
    assert connects.connects == []


@pytest.mark.parametrize(
    ("params", "says"),
    [
        (
            {"module": "icmp", "target": "127.0.0.1"},
            "unknown module 'icmp'; known modules: http_2xx",
        ),
        ({"module": "http_2xx"}, "target parameter is missing"),
        ({"target": "gopher://127.0.0.1/"}, "target:"),
    ],
)
def test_probe_refuses_unknown_modules_and_missing_or_bad_targets_with_400(
    service: RunningService, params: dict[str, Any], says: str
) -> None:
    response = probe(service, **params)

    assert response.status_code == 400
    assert response.headers["content-type"].startswith("text/plain")
    assert says in response.text


def test_probe_answers_429_when_the_service_is_full(
    service_factory: ServiceFactory, hanging_server: RawServer
) -> None:
    svc = service_factory(max_queued_checks=2, max_urls_per_job=2, max_sync_urls=1)
    submit(svc.client, [f"{hanging_server.url}/a", f"{hanging_server.url}/b"], timeout_s=30)

    response = probe(svc, target=f"{hanging_server.url}/c")

    assert response.status_code == 429
    assert "Retry-After" in response.headers
