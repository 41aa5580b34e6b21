"""The generic webhook sender against a real receiver on loopback: the body's shape, its
signature, the idempotency key, and how each kind of answer (or silence) is classified."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

from app.alerts.channels import SendOutcome, WebhookChannel, send
from app.engine.transport import HttpLayer
from app.schemas.results import ErrorKind
from tests.alerts.build import burst, make_alert
from tests.alerts.receivers import Answer, Receiver
from tests.support.servers import RawServer, refused_port

SECRET = "s3cret-for-hmac"


def test_body_is_signed_with_the_channel_secret_and_names_the_key(
    receiver: Receiver, http: HttpLayer
) -> None:
    url = receiver.script("/hook")
    alert = make_alert(1)

    outcome = send(WebhookChannel(url=url, secret=SECRET), [alert], http)

    assert outcome == SendOutcome(ok=True, retryable=False, status_code=200)
    (got,) = receiver.received("/hook")
    expected = hmac.new(SECRET.encode(), got.body, hashlib.sha256).hexdigest()
    assert got.headers["x-urlhealth-signature"] == f"sha256={expected}"
    assert got.headers["x-urlhealth-idempotency-key"] == alert.key
    assert got.headers["content-type"] == "application/json"
    assert got.json() == {
        "version": 1,
        "alerts": [
            {
                "key": "m1:t101:c1",
                "kind": "down",
                "monitor": {
                    "slug": "api-1",
                    "name": "API 1",
                    "url": "https://api1.example/health?token=***",
                },
                "from": "up",
                "to": "down",
                "at": "2026-12-02T14:00:05Z",
                "since": "2026-12-02T10:58:05Z",
                "incident_id": 41,
                "summary": "HTTP 500",
                "link": "http://urlhealth.local/monitors/api-1",
            }
        ],
    }


def test_signature_fails_with_another_secret(receiver: Receiver, http: HttpLayer) -> None:
    url = receiver.script("/hook")
    send(WebhookChannel(url=url, secret=SECRET), [make_alert(1)], http)
    (got,) = receiver.received("/hook")
    wrong = hmac.new(b"other", got.body, hashlib.sha256).hexdigest()
    assert got.headers["x-urlhealth-signature"] != f"sha256={wrong}"


def test_a_batch_is_one_request_keyed_by_a_hash_of_its_sorted_keys(
    receiver: Receiver, http: HttpLayer
) -> None:
    url = receiver.script("/hook")
    alerts = burst(3)
    channel = WebhookChannel(url=url, secret=SECRET)

    assert send(channel, alerts, http).ok
    assert send(channel, list(reversed(alerts)), http).ok

    first, second = receiver.received("/hook")
    keys = sorted(a.key for a in alerts)
    expected = "batch:" + hashlib.sha256("\n".join(keys).encode()).hexdigest()
    assert first.headers["x-urlhealth-idempotency-key"] == expected
    assert second.headers["x-urlhealth-idempotency-key"] == expected
    assert [a["key"] for a in first.json()["alerts"]] == [a.key for a in alerts]


def test_without_a_secret_there_is_no_signature_and_custom_headers_are_sent(
    receiver: Receiver, http: HttpLayer
) -> None:
    url = receiver.script("/hook")
    channel = WebhookChannel(url=url, headers={"Authorization": "Bearer abc"})
    assert send(channel, [make_alert(1)], http).ok
    (got,) = receiver.received("/hook")
    assert "x-urlhealth-signature" not in got.headers
    assert got.headers["authorization"] == "Bearer abc"


def test_receiver_failing_twice_then_accepting_is_retryable_then_ok(
    receiver: Receiver, http: HttpLayer
) -> None:
    url = receiver.script("/flaky", Answer(500, "boom"), Answer(503, "busy"))
    channel = WebhookChannel(url=url, secret=SECRET)
    alert = make_alert(1)

    outcomes = [send(channel, [alert], http) for _ in range(3)]

    assert [(o.ok, o.retryable, o.status_code) for o in outcomes] == [
        (False, True, 500),
        (False, True, 503),
        (True, False, 200),
    ]
    assert outcomes[0].error == "HTTP 500: boom"
    bodies = {r.body for r in receiver.received("/flaky")}
    keys = {r.headers["x-urlhealth-idempotency-key"] for r in receiver.received("/flaky")}
    assert len(bodies) == 1  # the same bytes each time: a receiver can dedupe on them
    assert keys == {alert.key}


def test_429_reports_retry_after(receiver: Receiver, http: HttpLayer) -> None:
    url = receiver.script("/limited", Answer(429, "slow down", {"Retry-After": "7"}))
    outcome = send(WebhookChannel(url=url), [make_alert(1)], http)
    assert (outcome.ok, outcome.retryable, outcome.status_code) == (False, True, 429)
    assert outcome.retry_after_s == 7.0


def test_4xx_other_than_408_and_429_is_final(receiver: Receiver, http: HttpLayer) -> None:
    url = receiver.script("/gone", Answer(404, "no_service"), Answer(408, "slow"))
    first = send(WebhookChannel(url=url), [make_alert(1)], http)
    second = send(WebhookChannel(url=url), [make_alert(1)], http)
    assert (first.ok, first.retryable, first.status_code) == (False, False, 404)
    assert first.error == "HTTP 404: no_service"
    assert (second.retryable, second.status_code) == (True, 408)


def test_a_redirect_is_not_followed(receiver: Receiver, http: HttpLayer) -> None:
    target = receiver.script("/final")
    url = receiver.script("/moved", Answer(302, "", {"Location": target}))
    outcome = send(WebhookChannel(url=url), [make_alert(1)], http)
    assert (outcome.ok, outcome.retryable, outcome.status_code) == (False, False, 302)
    assert "not followed" in (outcome.error or "")
    assert receiver.received("/final") == []


def test_hanging_receiver_times_out_retryably_within_the_timeout(
    hanging_server: RawServer, http: HttpLayer
) -> None:
    channel = WebhookChannel(url=f"{hanging_server.url}/hook", timeout_s=0.5)
    started = time.monotonic()
    outcome = send(channel, [make_alert(1)], http)
    took = time.monotonic() - started
    assert (outcome.ok, outcome.retryable, outcome.status_code) == (False, True, None)
    assert "no answer within 0.5 s" in (outcome.error or "")
    assert took < 10  # the timeout is 0.5 s; generous against a loaded machine


def test_connection_refused_is_retryable(http: HttpLayer) -> None:
    channel = WebhookChannel(url=f"http://127.0.0.1:{refused_port()}/hook")
    outcome = send(channel, [make_alert(1)], http)
    assert (outcome.ok, outcome.retryable) == (False, True)
    assert ErrorKind.CONNECT.value in (outcome.error or "")


def test_a_name_resolves_through_the_engines_resolver(receiver: Receiver, http: HttpLayer) -> None:
    url = receiver.script("/hook").replace("127.0.0.1", "hooks.test")
    assert send(WebhookChannel(url=url), [make_alert(1)], http).ok
    (got,) = receiver.received("/hook")
    assert got.headers["host"].startswith("hooks.test:")
    assert json.loads(got.body)["alerts"][0]["key"] == "m1:t101:c1"


def test_credentials_in_the_url_are_sent_as_basic_auth(receiver: Receiver, http: HttpLayer) -> None:
    url = receiver.script("/hook").replace("http://", "http://alerts:p%40ss@")
    assert send(WebhookChannel(url=url), [make_alert(1)], http).ok
    (got,) = receiver.received("/hook")
    assert got.headers["authorization"] == "Basic " + base64.b64encode(b"alerts:p@ss").decode()
