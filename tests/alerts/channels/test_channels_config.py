"""Channel configurations: secrets are write-only (masked on read, kept for storage), errors
name the field, per-kind pacing defaults; and the alert message's own checks."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import pytest
from pydantic import ValidationError

from app.alerts.channels import (
    DiscordChannel,
    EmailChannel,
    SlackChannel,
    TeamsChannel,
    WebhookChannel,
    batches,
    mask_url,
    parse_channel,
    send,
)
from app.alerts.message import batch_key
from app.engine.transport import HttpLayer
from tests.alerts.build import burst, make_alert

SLACK_URL = "https://hooks.slack.com/services/T000/B000/XXXXtokenXXXX"
DISCORD_URL = "https://discord.com/api/webhooks/1234/discord-token-abc"
TEAMS_URL = (
    "https://prod-01.westus.logic.azure.com:443/workflows/abc/triggers/manual/paths/invoke"
    "?api-version=2016-06-01&sp=%2Ftriggers&sv=1.0&sig=teams-sig-xyz"
)
SECRETS = [
    "XXXXtokenXXXX",
    "discord-token-abc",
    "teams-sig-xyz",
    "hmac-secret",
    "Bearer t0k",
    "smtp-password",
    "userinfo-pw",
]

CHANNELS: list[dict[str, Any]] = [
    {"kind": "slack", "url": SLACK_URL},
    {"kind": "discord", "url": DISCORD_URL},
    {"kind": "teams", "url": TEAMS_URL},
    {
        "kind": "webhook",
        "url": "https://user:userinfo-pw@hooks.example/in/hmac?x=1",
        "secret": "hmac-secret",
        "headers": {"Authorization": "Bearer t0k"},
    },
    {
        "kind": "email",
        "host": "smtp.example.org",
        "username": "alerts",
        "password": "smtp-password",
        "from_addr": "a@example.org",
        "to_addrs": ["b@example.org"],
    },
]


@pytest.mark.parametrize("data", CHANNELS, ids=lambda d: d["kind"])
def test_masked_view_never_shows_a_secret(data: dict[str, Any]) -> None:
    shown = json.dumps(parse_channel(data).masked())
    assert [s for s in SECRETS if s in shown] == []
    assert "***" in shown


@pytest.mark.parametrize("data", CHANNELS, ids=lambda d: d["kind"])
def test_stored_form_keeps_secrets_and_parses_back_equal(data: dict[str, Any]) -> None:
    channel = parse_channel(data)
    stored = json.loads(json.dumps(channel.stored()))
    assert parse_channel(stored) == channel


def test_masked_urls_keep_what_identifies_the_channel() -> None:
    assert mask_url(SLACK_URL) == "https://hooks.slack.com/services/***"
    assert mask_url(TEAMS_URL) == (
        "https://prod-01.westus.logic.azure.com/workflows/***?api-version=***&sp=***&sv=***&sig=***"
    )
    assert mask_url("http://u:p@[::1]:8080/x") == "http://***@[::1]:8080/***"
    masked = WebhookChannel(url="https://h.example/hook", secret="s").masked()
    assert masked == {
        "kind": "webhook",
        "url": "https://h.example/***",
        "secret": "***",
        "headers": {},
        "timeout_s": 10.0,
        "min_interval_s": 0.0,
        "max_batch": 100,
    }


@pytest.mark.parametrize(
    ("data", "loc", "words"),
    [
        ({"kind": "slack", "url": "ftp://x/y"}, ("slack", "url"), "http:// or https://"),
        (
            {"kind": "discord", "url": "https://h/", "max_batch": 101},
            ("discord", "max_batch"),
            "100",
        ),
        (
            {"kind": "webhook", "url": "http://h/", "headers": {"X-Urlhealth-Signature": "x"}},
            ("webhook", "headers"),
            "set by the sender",
        ),
        (
            {"kind": "webhook", "url": "http://h/", "headers": {"X-A": "1\r\nEvil: 2"}},
            ("webhook", "headers"),
            "line break",
        ),
        (
            {"kind": "email", "host": "h", "from_addr": "nope", "to_addrs": ["b@e.org"]},
            ("email", "from_addr"),
            "e-mail address",
        ),
        (
            {"kind": "email", "host": "h", "from_addr": "a@e.org", "to_addrs": []},
            ("email", "to_addrs"),
            "at least 1",
        ),
        (
            {
                "kind": "email",
                "host": "h",
                "security": "none",
                "username": "u",
                "password": "p",
                "from_addr": "a@e.org",
                "to_addrs": ["b@e.org"],
            },
            ("email",),
            "password: refused with security 'none'",
        ),
        ({"kind": "pager", "url": "http://h/"}, (), "'webhook', 'slack'"),
    ],
)
def test_validation_errors_name_the_field(
    data: dict[str, Any], loc: tuple[str, ...], words: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_channel(data)
    (error,) = caught.value.errors()
    assert error["loc"][: len(loc)] == loc
    assert words in error["msg"]


def test_pacing_defaults_per_kind() -> None:
    email = EmailChannel(host="h", from_addr="a@e.org", to_addrs=["b@e.org"])
    paced = [
        (type(c).__name__, c.min_interval_s, c.max_batch)
        for c in (
            WebhookChannel(url="http://h/"),
            SlackChannel(url="http://h/"),
            DiscordChannel(url="http://h/"),
            TeamsChannel(url="http://h/"),
            email,
        )
    ]
    assert paced == [
        ("WebhookChannel", 0.0, 100),
        ("SlackChannel", 1.0, 50),
        ("DiscordChannel", 1.0, 40),
        ("TeamsChannel", 1.0, 40),
        ("EmailChannel", 1.0, 200),
    ]
    assert (email.smtp_port, email.model_copy(update={"security": "tls"}).smtp_port) == (587, 465)


def test_batches_follow_max_batch_and_send_refuses_more(http: HttpLayer) -> None:
    channel = SlackChannel(url="http://127.0.0.1:9/", max_batch=2)
    alerts = burst(5)
    assert [[a.key for a in b] for b in batches(channel, alerts)] == [
        [alerts[0].key, alerts[1].key],
        [alerts[2].key, alerts[3].key],
        [alerts[4].key],
    ]
    with pytest.raises(ValueError, match="3 alerts exceed the channel's max_batch 2"):
        send(channel, alerts[:3], http)


def test_alert_keys_must_be_short_and_header_safe() -> None:
    for bad in ["", "with space", "new\nline", "k" * 101, "é"]:
        with pytest.raises(ValueError, match="alert key"):
            make_alert(1, key=bad)
    with pytest.raises(ValueError, match="timezone-aware"):
        make_alert(1, at=datetime(2026, 12, 2))


def test_batch_key_is_the_key_of_a_single_alert_and_order_free_for_many() -> None:
    alerts = burst(3)
    assert batch_key(alerts[:1]) == alerts[0].key
    assert batch_key(alerts) == batch_key(list(reversed(alerts)))
    assert batch_key(alerts) != batch_key(alerts[:2])
