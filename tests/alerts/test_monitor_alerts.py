"""A monitor's own `alerts` field over the monitors API: stored, shown, merge-patched, and
deciding where its alerts go over (or without) any rule."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from app.monitors.recorder import Recorder
from tests.alerts.test_api import Service, wait_for_alert
from tests.support.alerts import Receiver, record

DOWN = ["up", "up", "down", "down", "down"]


@pytest.fixture
def service() -> Iterator[Service]:
    started = Service()
    yield started
    started.close()


def channel(service: Service, receiver: Receiver) -> None:
    config = {"kind": "webhook", "url": receiver.url}
    created = service.client.post("/v1/channels", json={"name": "Ops", "config": config})
    assert created.status_code == 201, created.text


def monitor(service: Service, slug: str, alerts: dict[str, Any]) -> dict[str, Any]:
    body = {"name": slug, "slug": slug, "url": "http://127.0.0.1:9/", "paused": True}
    created = service.client.post("/v1/monitors", json={**body, "alerts": alerts})
    assert created.status_code == 201, created.text
    found: dict[str, Any] = created.json()
    return found


def test_a_monitors_own_channels_alert_with_no_rule_at_all(service: Service) -> None:
    receiver = Receiver()
    try:
        channel(service, receiver)
        shown = monitor(service, "own", {"channels": ["ops"], "reminder_interval_s": None})
        assert shown["alerts"] == {"channels": ["ops"], "reminder_interval_s": None}
        recorder = Recorder(
            service.services.storage.writer, on_transition=service.services.alerts.hook
        )
        record(recorder, shown["id"], DOWN)
        (alert,) = wait_for_alert(service, monitor="own", status="sent")
        assert (alert["kind"], alert["channel"]) == ("down", "ops")
        assert receiver.accepted_keys() == [alert["key"]]
    finally:
        receiver.stop()


def test_a_monitor_that_turns_down_alerts_off_sends_none_under_a_catch_all_rule(
    service: Service,
) -> None:
    receiver = Receiver()
    try:
        channel(service, receiver)
        rule = service.client.post("/v1/alert-rules", json={"name": "all", "channels": ["ops"]})
        assert rule.status_code == 201, rule.text
        quiet = monitor(service, "quiet", {"on_down": False})
        loud = monitor(service, "loud", {})
        recorder = Recorder(
            service.services.storage.writer, on_transition=service.services.alerts.hook
        )
        # The hook writes the outbox in the transition's transaction: once recorded, decided.
        record(recorder, quiet["id"], DOWN)
        record(recorder, loud["id"], DOWN)
        (alert,) = wait_for_alert(service, monitor="loud", status="sent")
        assert alert["kind"] == "down"
        assert service.client.get("/v1/alerts", params={"monitor": "quiet"}).json()["alerts"] == []
        assert len(receiver.accepted_keys()) == 1
    finally:
        receiver.stop()


def test_the_alerts_field_is_merge_patched_and_null_removes_it(service: Service) -> None:
    api = service.client
    receiver = Receiver()
    channel(service, receiver)
    receiver.stop()
    monitor(service, "patched", {"channels": ["ops"], "on_down": False})
    changed = api.patch(
        "/v1/monitors/patched", json={"alerts": {"on_down": None, "on_degraded": True}}
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["alerts"] == {"channels": ["ops"], "on_degraded": True}
    bad = api.patch("/v1/monitors/patched", json={"alerts": {"on_up": True}})
    assert bad.status_code == 422
    assert bad.json()["detail"][0]["loc"][:2] == ["body", "alerts"]
    cleared = api.patch("/v1/monitors/patched", json={"alerts": None})
    assert cleared.json()["alerts"] is None
    assert api.get("/v1/monitors/patched").json()["alerts"] is None


def test_a_monitors_own_channel_must_exist(service: Service) -> None:
    body = {"name": "x", "url": "http://127.0.0.1:9/", "alerts": {"channels": ["nope"]}}
    refused = service.client.post("/v1/monitors", json=body)
    assert refused.status_code == 422, refused.text
    (problem,) = refused.json()["detail"]
    assert problem["loc"] == ["body", "alerts", "channels"]
    assert "'nope'" in problem["msg"]
    assert service.client.get("/v1/monitors").json()["count"] == 0
