"""The Apprise channel (optional extra), driven to a loopback receiver through Apprise's own
json:// service; and kept out of the API's reach."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from app.alerts.channels import (
    AppriseChannel,
    parse_channel,
    parse_operator_channel,
    send,
    validate_destination,
)
from app.engine.transport import HttpLayer
from tests.alerts.build import burst
from tests.alerts.receivers import Answer, Receiver
from tests.support.engine import loopback_policy

pytest.importorskip("apprise")


@pytest.fixture(autouse=True)
def no_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    # Apprise goes through requests, which would honour a proxy from the environment.
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "*")


def apprise_url(receiver: Receiver, path: str) -> str:
    return receiver.script(path).replace("http://", "json://")


def test_a_burst_goes_through_apprise_as_one_notification_with_every_key(
    receiver: Receiver, http: HttpLayer
) -> None:
    alerts = burst(3)
    channel = AppriseChannel(urls=[apprise_url(receiver, "/apprise")])

    outcome = send(channel, alerts, http)

    assert (outcome.ok, outcome.error) == (True, None)
    (got,) = receiver.received("/apprise")
    doc = got.json()
    assert doc["title"] == "[urlhealth] 3 monitors down"
    assert doc["type"] == "failure"
    for alert in alerts:
        assert f"key {alert.key}" in doc["message"]


def test_a_failing_service_is_retryable_and_quoted(receiver: Receiver, http: HttpLayer) -> None:
    url = receiver.script("/apprise-down", Answer(500, "nope")).replace("http://", "json://")
    outcome = send(AppriseChannel(urls=[url]), burst(1), http)
    assert (outcome.ok, outcome.retryable) == (False, True)
    assert outcome.error == (
        "apprise: Failed to send JSON POST notification: Internal server error., error=500."
    )


def test_a_url_apprise_does_not_know_is_final(http: HttpLayer) -> None:
    outcome = send(AppriseChannel(urls=["nosuchscheme://x"]), burst(1), http)
    assert (outcome.ok, outcome.retryable) == (False, False)
    assert outcome.error == "apprise: URL 1 is not one Apprise understands"


def test_apprise_is_for_the_monitors_file_only() -> None:
    data = {"kind": "apprise", "urls": ["tgram://123456:bot-token/chat"]}
    with pytest.raises(ValidationError):
        parse_channel(data)
    channel = parse_operator_channel(data)
    assert isinstance(channel, AppriseChannel)
    assert json.dumps(channel.masked()).count("bot-token") == 0
    assert channel.masked()["urls"] == ["tgram://***"]
    reason = validate_destination(channel, loopback_policy())
    assert reason == "destination refused: apprise channels are for the monitors file only"
