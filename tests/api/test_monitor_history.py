"""The monitor history routes over a real service: results, incidents, uptime, summary;
404 naming the ref, 422 naming the field."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from app.monitors.recorder import Recorder
from app.schemas.monitoring import Outcome
from tests.conftest import RunningService
from tests.support.monitors import add_monitor, check


def seeded(service: RunningService) -> int:
    """A monitor that was up, went down (an incident, still open), checked each minute."""
    database = service.services.storage.database
    m = add_monitor(database, "api-health", group_name="web")
    recorder = Recorder(service.services.storage.writer)
    start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=6)
    outcomes: list[Outcome] = ["up", "up", "up", "down", "down", "down"]
    for n, outcome in enumerate(outcomes):
        at = start + timedelta(minutes=n)
        recorder.submit(m, 1, at, check(outcome, at=at)).result(10)
    return m


def test_results_page_by_id_and_by_slug(service: RunningService) -> None:
    m = seeded(service)
    by_id = service.client.get(f"/v1/monitors/{m}/results", params={"limit": 4})
    assert by_id.status_code == 200
    page = by_id.json()
    assert [r["outcome"] for r in page["results"]] == ["down"] * 3 + ["up"]
    assert page["next_cursor"] is not None
    rest = service.client.get(
        "/v1/monitors/api-health/results", params={"limit": 4, "cursor": page["next_cursor"]}
    ).json()
    assert [r["outcome"] for r in rest["results"]] == ["up", "up"]
    assert rest["next_cursor"] is None
    assert "secret" not in by_id.text  # URL credentials and query never shown


def test_incidents_uptime_and_summary(service: RunningService) -> None:
    m = seeded(service)
    incidents = service.client.get(f"/v1/monitors/{m}/incidents").json()["incidents"]
    assert len(incidents) == 1
    assert (incidents[0]["worst_state"], incidents[0]["ended_at"]) == ("down", None)
    uptime = service.client.get("/v1/monitors/api-health/uptime", params={"window": "24h"})
    assert uptime.status_code == 200
    body = uptime.json()
    assert (body["checks"], body["up"], body["down"], body["uptime_pct"]) == (6, 3, 3, 50.0)
    assert body["incidents"] == 1
    summary = service.client.get("/v1/monitors-summary").json()["monitors"]
    assert [(s["slug"], s["state"], s["group"]) for s in summary] == [("api-health", "down", "web")]
    assert summary[0]["incident"]["id"] == incidents[0]["id"]


def test_an_unknown_monitor_is_a_404_naming_it(service: RunningService) -> None:
    for path in ("results", "incidents", "uptime"):
        answer = service.client.get(f"/v1/monitors/no-such-monitor/{path}")
        assert answer.status_code == 404
        assert "no-such-monitor" in answer.json()["detail"]


def test_a_bad_window_or_cursor_is_a_422_naming_the_field(service: RunningService) -> None:
    m = seeded(service)
    answer = service.client.get(f"/v1/monitors/{m}/uptime", params={"window": "2d"})
    assert answer.status_code == 422
    assert answer.json()["detail"][0]["loc"] == ["query", "window"]
    answer = service.client.get(f"/v1/monitors/{m}/results", params={"cursor": "garbage"})
    assert answer.status_code == 422
    assert answer.json()["detail"][0]["loc"] == ["query", "cursor"]
