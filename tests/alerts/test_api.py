"""The alerts API on a real service: channels with write-only secrets and a test message,
alert rules, maintenance windows, and /v1/alerts showing each delivery attempt of an alert
that a monitor's confirmed change wrote."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from app.alerts.contract import Senders
from app.main import create_app
from app.monitors.recorder import Recorder
from app.services import Services
from tests.conftest import make_settings
from tests.support.alerts import Codec, Receiver, record, send
from tests.support.monitors import add_monitor
from tests.support.servers import ThreadedUvicorn

SECRET = "hush-hush"


class Service:
    def __init__(self) -> None:
        settings = make_settings(
            alert_scan_interval_s=0.2, alert_retry_base_s=0.05, alert_retry_max_delay_s=0.2
        )
        self.http = httpx.Client(timeout=10.0, trust_env=False)
        app = create_app(settings, None, Senders(Codec(), send, self.http))
        self.services: Services = app.state.services
        self.server = ThreadedUvicorn(app, port=settings.port).start()
        self.client = httpx.Client(base_url=self.server.url, timeout=30.0, trust_env=False)

    def close(self) -> None:
        self.client.close()
        self.server.stop()
        self.http.close()


@pytest.fixture
def service() -> Iterator[Service]:
    started = Service()
    yield started
    started.close()


def wait_for_alert(service: Service, **query: Any) -> list[dict[str, Any]]:
    pause = threading.Event()
    for _ in range(600):
        found = service.client.get("/v1/alerts", params=query).json()["alerts"]
        if found:
            return list(found)
        pause.wait(0.05)
    raise AssertionError(f"no alert for {query} within 30 s")


def test_channels_rules_and_alerts_with_their_attempts(service: Service) -> None:
    receiver = Receiver(fail_first=2)
    try:
        api = service.client
        config = {"kind": "webhook", "url": receiver.url, "secret": SECRET}
        created = api.post("/v1/channels", json={"name": "Ops", "config": config})
        assert created.status_code == 201, created.text
        channel = created.json()
        assert (channel["slug"], channel["kind"]) == ("ops", "webhook")
        assert channel["config"]["secret"] == "***"
        assert created.headers["location"] == f"/v1/channels/{channel['id']}"
        shown = [api.get("/v1/channels/ops").text, api.get("/v1/channels").text]
        assert all(SECRET not in text and receiver.url not in text for text in shown)

        again = api.post("/v1/channels", json={"name": "Ops", "config": config})
        assert again.status_code == 409
        bad = api.post("/v1/channels", json={"name": "Bad", "config": {"kind": "webhook"}})
        assert bad.status_code == 422
        assert bad.json()["detail"][0]["loc"] == ["body", "config"]

        tested = api.post("/v1/channels/ops/test")  # the receiver fails its first answer
        assert tested.status_code == 200
        assert (tested.json()["ok"], tested.json()["status_code"]) == (False, 500)
        assert receiver.messages()[0]["kind"] == "test"

        unknown = api.post("/v1/alert-rules", json={"name": "x", "channels": ["nope"]})
        assert unknown.status_code == 422
        rule = api.post("/v1/alert-rules", json={"name": "all", "channels": ["ops"]})
        assert rule.status_code == 201, rule.text
        assert rule.json()["on_down"] is True
        patched = api.patch(f"/v1/alert-rules/{rule.json()['id']}", json={"on_degraded": True})
        assert patched.json()["on_degraded"] is True

        storage = service.services.storage
        monitor = add_monitor(storage.database, "api")
        recorder = Recorder(storage.writer, on_transition=service.services.alerts.hook)
        record(recorder, monitor, ["up", "up", "down", "down", "down"])

        def sent() -> list[dict[str, Any]]:
            return wait_for_alert(service, monitor="api", status="sent")

        (alert,) = sent()
        assert (alert["kind"], alert["transition"], alert["channel"]) == (
            "down",
            "up -> down",
            "ops",
        )
        assert alert["attempts"] == 2
        assert [(t["ok"], t["status_code"]) for t in alert["tried"]] == [
            (False, 500),
            (True, 200),
        ]
        assert receiver.accepted_keys() == [alert["key"]]
        both = api.get("/v1/alerts", params={"channel": "ops"}).json()["alerts"]
        assert [a["kind"] for a in both] == ["down", "test"]
        assert api.get("/v1/alerts", params={"channel": "nope"}).status_code == 404
    finally:
        receiver.stop()


def test_maintenance_windows_are_checked_listed_and_removed(service: Service) -> None:
    api = service.client
    window = {
        "name": "weekly",
        "weekdays": [6],
        "start_time": "02:00",
        "duration_s": 7200,
        "timezone": "Europe/Paris",
    }
    created = api.post("/v1/maintenance", json=window)
    assert created.status_code == 201, created.text
    assert api.get("/v1/maintenance").json()["windows"][0]["name"] == "weekly"
    bad_zone = api.post("/v1/maintenance", json={**window, "timezone": "Mars/Olympus"})
    assert bad_zone.status_code == 422
    assert "Mars/Olympus" in bad_zone.json()["detail"][0]["msg"]
    backwards = {
        "name": "x",
        "starts_at": "2026-12-02T10:00:00Z",
        "ends_at": "2026-12-02T09:00:00Z",
    }
    assert api.post("/v1/maintenance", json=backwards).status_code == 422
    window_id = created.json()["id"]
    moved = api.put(f"/v1/maintenance/{window_id}", json={**window, "start_time": "03:00"})
    assert moved.status_code == 200, moved.text
    assert api.get(f"/v1/maintenance/{window_id}").json()["start_time"] == "03:00"
    no_monitor = api.post("/v1/maintenance", json={**window, "monitor_id": 999})
    assert no_monitor.status_code == 422
    assert api.delete(f"/v1/maintenance/{window_id}").status_code == 204
    assert api.get(f"/v1/maintenance/{window_id}").status_code == 404
