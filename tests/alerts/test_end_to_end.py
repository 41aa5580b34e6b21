"""Alerts on a real `urlhealth serve` process: a webhook channel, a rule for a group and a
monitor in it, all created over the API; the monitor's target switched to 500 and back
sends exactly one signed `down` and one `resolved` to a real receiver on loopback, and
GET /v1/alerts shows both sent. A channel to the metadata address is refused at creation."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.alerts.receivers import Receiver
from tests.monitors.test_end_to_end import Switch, switch  # noqa: F401 - the fixture
from tests.support.process import running_service, wait_until

WAIT_S = 60.0
SECRET = "e2e-secret"


@pytest.fixture
def hooks() -> Iterator[Receiver]:
    receiver = Receiver()
    receiver.server.start()
    yield receiver
    receiver.server.stop()


def created(client: httpx.Client, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post(path, json=body)
    assert response.status_code == 201, response.text
    found: dict[str, Any] = response.json()
    return found


def kinds(receiver: Receiver) -> list[str]:
    return [alert["kind"] for got in receiver.received("/hook") for alert in got.json()["alerts"]]


def state(client: httpx.Client) -> str:
    return str(client.get("/v1/monitors/e2e").json()["state"])


def test_an_outage_sends_one_signed_down_and_one_resolved_through_a_rule_made_over_the_api(
    switch: tuple[Switch, str],  # noqa: F811
    hooks: Receiver,
    tmp_path: Path,
) -> None:
    target, url = switch
    env = {
        "URLHEALTH_DATABASE_URL": f"sqlite:///{tmp_path / 'urlhealth.db'}",
        "URLHEALTH_MONITOR_MIN_INTERVAL_S": "1",
    }
    with running_service(env=env) as service, httpx.Client(base_url=service.url) as client:
        hook_url = hooks.script("/hook")
        channel = created(
            client,
            "/v1/channels",
            {"name": "Ops hook", "config": {"kind": "webhook", "url": hook_url, "secret": SECRET}},
        )
        assert SECRET not in str(channel["config"])
        created(
            client,
            "/v1/alert-rules",
            {
                "name": "Shop outages",
                "match_group": "shop",
                "channels": [channel["slug"]],
                "on_down": True,
                "send_on_resolved": True,
            },
        )
        created(
            client,
            "/v1/monitors",
            {
                "name": "E2E",
                "slug": "e2e",
                "url": url,
                "group": "shop",
                "interval_s": 1,
                "failure_threshold": 3,
                "success_threshold": 2,
            },
        )
        assert wait_until(lambda: state(client) == "up", WAIT_S, 0.2)
        assert hooks.received() == []  # a first `up` is not a recovery

        target.set(500)
        assert wait_until(lambda: kinds(hooks) == ["down"], WAIT_S, 0.2), kinds(hooks)
        (down,) = hooks.received("/hook")
        signature = hmac.new(SECRET.encode(), down.body, hashlib.sha256).hexdigest()
        assert down.headers["x-urlhealth-signature"] == f"sha256={signature}"
        (alert,) = down.json()["alerts"]
        assert down.headers["x-urlhealth-idempotency-key"] == alert["key"]
        assert alert["monitor"]["slug"] == "e2e"

        target.set(200)
        assert wait_until(lambda: kinds(hooks) == ["down", "resolved"], WAIT_S, 0.2)
        resolved = hooks.received("/hook")[1]
        assert resolved.headers["x-urlhealth-idempotency-key"] != alert["key"]
        # Still exactly one of each a few checks later (nothing repeated).
        checked = target.hits
        assert wait_until(lambda: target.hits >= checked + 3, WAIT_S, 0.2)
        assert kinds(hooks) == ["down", "resolved"]

        listed = client.get("/v1/alerts", params={"monitor": "e2e"}).json()["alerts"]
        assert sorted((a["kind"], a["status"], a["attempts"]) for a in listed) == [
            ("down", "sent", 1),
            ("resolved", "sent", 1),
        ]
        assert all(len(a["tried"]) == 1 and a["tried"][0]["ok"] for a in listed)


def test_a_channel_to_the_metadata_address_is_refused_naming_the_field_and_the_rule(
    tmp_path: Path,
) -> None:
    with running_service() as service, httpx.Client(base_url=service.url) as client:
        response = client.post(
            "/v1/channels",
            json={
                "name": "Metadata",
                "config": {"kind": "webhook", "url": "http://169.254.169.254/latest"},
            },
        )
        assert response.status_code == 422, response.text
        (problem,) = response.json()["detail"]
        assert problem["loc"] == ["body", "config"]
        # The policy's rule, by name: the address and why it is denied.
        assert "destination refused: 169.254.169.254 is denied" in problem["msg"], problem
        assert "cloud metadata" in problem["msg"]
        assert client.get("/v1/channels").json()["channels"] == []
