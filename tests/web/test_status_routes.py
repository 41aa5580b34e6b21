"""The status page, its tiles' JSON and the badges on a real service, with monitors whose
results went through the real recorder."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from tests.conftest import RunningService
from tests.support.monitors import add_monitor
from tests.support.status_page import seed

SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture
def seeded(service_factory: Callable[..., RunningService]) -> RunningService:
    svc = service_factory()
    seed(svc.services, "api-health", ["up", "up", "up"], name="API health", group_name="Core")
    seed(svc.services, "billing", ["up", "down"], name="Billing", group_name="Core")
    seed(svc.services, "blog", ["up"], name="Blog", group_name=None)
    return svc


def _texts(body: bytes) -> list[str]:
    root = ET.fromstring(body)  # raises on SVG that is not well-formed XML
    assert root.tag == f"{SVG}svg"
    return [t.text or "" for t in root.iter(f"{SVG}text")]


def test_status_page_shows_every_monitor_by_group_with_its_state(seeded: RunningService) -> None:
    page = seeded.client.get("/")

    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    html = page.text
    for name in ("API health", "Billing", "Blog", "Core", "Ungrouped"):
        assert name in html
    assert 'class="tile state-down" data-slug="billing"' in html
    assert 'class="tile state-up" data-slug="api-health"' in html
    assert html.count("<rect ") == 3 * 90  # one cell a day per monitor
    assert "Some systems are down" in html
    assert "(ongoing)" in html  # billing's open incident


def test_html_answers_carry_the_security_headers(seeded: RunningService) -> None:
    for path in ("/", "/status/core"):
        headers = seeded.client.get(path).headers
        policy = headers["content-security-policy"]
        assert "script-src 'self'" in policy
        assert "unsafe-inline" not in policy
        assert "frame-ancestors 'none'" in policy
        assert headers["x-content-type-options"] == "nosniff"


def test_a_group_page_shows_only_its_group_and_an_unknown_one_is_404(
    seeded: RunningService,
) -> None:
    html = seeded.client.get("/status/core").text
    assert 'data-slug="billing"' in html
    assert 'data-slug="blog"' not in html
    assert seeded.client.get("/status/ungrouped").text.count('class="tile ') == 1
    assert seeded.client.get("/status/nope").status_code == 404


def test_the_page_is_served_gzipped_when_asked(seeded: RunningService) -> None:
    raw = seeded.client.get("/", headers={"Accept-Encoding": "gzip"})
    assert raw.headers["content-encoding"] == "gzip"
    assert "Billing" in raw.text  # httpx decodes it


def test_tiles_json_has_each_monitors_state(seeded: RunningService) -> None:
    data = seeded.client.get("/status-tiles.json?group=core").json()
    states = {m["slug"]: m["state"] for m in data["monitors"]}
    assert states == {"api-health": "up", "billing": "down"}
    assert data["overall"] == ["down", "Some systems are down"]


def test_status_badge_is_svg_naming_the_state(seeded: RunningService) -> None:
    answer = seeded.client.get("/badges/billing/status.svg")
    assert answer.headers["content-type"].startswith("image/svg+xml")
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert _texts(answer.content) == ["status", "down"]
    assert _texts(seeded.client.get("/badges/api-health/status.svg").content) == ["status", "up"]


def test_uptime_badge_shows_the_windows_percentage(seeded: RunningService) -> None:
    assert _texts(seeded.client.get("/badges/billing/uptime/24h.svg").content) == [
        "uptime 24h",
        "50.00%",
    ]
    assert _texts(seeded.client.get("/badges/api-health/uptime/30d.svg").content) == [
        "uptime 30d",
        "100.00%",
    ]
    assert seeded.client.get("/badges/billing/uptime/2y.svg").status_code == 404


def test_response_time_badge_shows_the_24h_mean(seeded: RunningService) -> None:
    # api-health's three results took 20, 21 and 22 ms.
    texts = _texts(seeded.client.get("/badges/api-health/response-time.svg").content)
    assert texts == ["response time", "21 ms"]


def test_shields_endpoint_has_the_schema_shields_io_reads(seeded: RunningService) -> None:
    answer = seeded.client.get("/badges/billing/shields.json")
    assert answer.json() == {
        "schemaVersion": 1,
        "label": "status",
        "message": "down",
        "color": "red",
    }


@pytest.mark.parametrize(
    "path",
    [
        "/badges/nope/status.svg",
        "/badges/nope/uptime/24h.svg",
        "/badges/nope/response-time.svg",
        "/badges/nope/shields.json",
    ],
)
def test_an_unknown_monitor_is_404(seeded: RunningService, path: str) -> None:
    assert seeded.client.get(path).status_code == 404


def test_static_files_are_a_fixed_list(seeded: RunningService) -> None:
    assert seeded.client.get("/status-static/status.js").status_code == 200
    assert seeded.client.get("/status-static/../routes.py").status_code == 404
    assert seeded.client.get("/status-static/board.py").status_code == 404


def test_an_identity_request_gets_the_page_uncompressed(seeded: RunningService) -> None:
    answer = seeded.client.get("/", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in answer.headers
    assert answer.content.startswith(b"<!DOCTYPE html>")


def test_the_page_has_no_inline_script_and_is_complete_without_one(
    seeded: RunningService,
) -> None:
    html = seeded.client.get("/").text
    scripts = re.findall(r"<script\b[^>]*>", html)
    assert scripts == ['<script src="/status-static/status.js" defer>']
    assert '<script src="/status-static/status.js" defer></script>' in html  # nothing inside
    assert " style=" not in html  # colours come from the stylesheet (style-src 'self')
    assert "onclick=" not in html


def test_a_large_board_is_paged_fifty_tiles_at_a_time(
    service_factory: Callable[..., RunningService],
) -> None:
    svc = service_factory()
    for n in range(51):
        add_monitor(svc.services.storage.database, f"m{n:02d}")
    first = svc.client.get("/").text
    assert first.count('class="tile ') == 50
    assert 'rel="next" href="?page=2"' in first
    assert "Page 1 of 2 (51 monitors)" in first
    second = svc.client.get("/?page=2").text
    assert second.count('class="tile ') == 1
    assert 'rel="prev" href="?page=1"' in second


def test_todays_cell_titles_the_days_uptime_and_incidents(seeded: RunningService) -> None:
    html = seeded.client.get("/status/core").text
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    billing = html[html.index('data-slug="billing"') :]
    # billing: one up, one down today, and the incident the down opened.
    assert f"<title>{today}: 50.00%, 1 incident</title>" in billing
    api = html[html.index('data-slug="api-health"') : html.index('data-slug="billing"')]
    assert f"<title>{today}: 100.00%</title>" in api
    assert "<polyline points=" in api  # the 24-h chart, from the hourly rollup
