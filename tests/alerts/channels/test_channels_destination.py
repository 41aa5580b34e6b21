"""Alert destinations obey the destination policy, as checks do: refused when the channel is
created (validate_destination) and again at send time, before any connection.

Safety: the HTTP layer has a ConnectGuard (nothing off this machine can be connected to, and
every connect is recorded), names come from a fixed table, and canaries on loopback count
anything that reaches them when the policy denies loopback.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from app.alerts.channels import (
    DiscordChannel,
    EmailChannel,
    SlackChannel,
    TeamsChannel,
    WebhookChannel,
    send,
    validate_destination,
)
from app.alerts.channels.config import ChannelConfig
from app.engine.policy import DestinationPolicy, parse_networks
from app.engine.transport import HttpLayer
from tests.alerts.build import make_alert
from tests.alerts.channels.conftest import NAMES, guarded_http
from tests.support.destination import Canaries, ConnectGuard, LocalResolver
from tests.support.engine import loopback_policy

URL_KINDS = [WebhookChannel, SlackChannel, DiscordChannel, TeamsChannel]


@pytest.fixture
def deny_loopback() -> Iterator[tuple[HttpLayer, ConnectGuard]]:
    """The default policy: loopback is denied, as in production."""
    http, installed = guarded_http(DestinationPolicy())
    yield http, installed
    http.close()


@pytest.mark.parametrize("channel_type", URL_KINDS)
@pytest.mark.parametrize("host", ["169.254.169.254", "metadata.test"])
def test_http_channels_to_cloud_metadata_are_blocked_before_any_connect(
    channel_type: type[WebhookChannel | SlackChannel | DiscordChannel | TeamsChannel],
    host: str,
    http_and_guard: tuple[HttpLayer, ConnectGuard],
) -> None:
    http, installed = http_and_guard
    channel = channel_type(url=f"http://{host}/latest/meta-data/")

    outcome = send(channel, [make_alert(1)], http)

    assert (outcome.ok, outcome.retryable, outcome.status_code) == (False, False, None)
    assert outcome.error is not None
    assert "blocked by the destination policy" in outcome.error
    assert "cloud metadata (169.254.169.254)" in outcome.error
    assert installed.connects == []


def test_a_webhook_to_a_name_resolving_to_a_denied_address_never_reaches_it(
    canaries: Canaries, deny_loopback: tuple[HttpLayer, ConnectGuard]
) -> None:
    http, installed = deny_loopback
    channel = WebhookChannel(url=f"http://hooks.test:{canaries.v4.port}/hook")

    outcome = send(channel, [make_alert(1)], http)

    assert (outcome.ok, outcome.retryable) == (False, False)
    assert "loopback (127.0.0.0/8)" in (outcome.error or "")
    assert canaries.hits() == {}
    assert installed.connects == []


def test_email_to_a_denied_host_never_connects(
    canaries: Canaries, smtp_guard: list[tuple[str, int]]
) -> None:
    http, _ = guarded_http(DestinationPolicy())
    try:
        channel = EmailChannel(
            host="smtp.test",
            port=canaries.v4.port,
            security="none",
            from_addr="urlhealth@example.org",
            to_addrs=["ops@example.org"],
        )
        outcome = send(channel, [make_alert(1)], http)
    finally:
        http.close()
    assert (outcome.ok, outcome.retryable) == (False, False)
    assert "smtp.test is denied: loopback (127.0.0.0/8)" in (outcome.error or "")
    assert canaries.hits() == {}
    assert smtp_guard == []


def test_email_to_cloud_metadata_is_blocked(
    http: HttpLayer, smtp_guard: list[tuple[str, int]]
) -> None:
    channel = EmailChannel(
        host="metadata.test", from_addr="a@example.org", to_addrs=["b@example.org"]
    )
    outcome = send(channel, [make_alert(1)], http)
    assert (outcome.ok, outcome.retryable) == (False, False)
    assert "cloud metadata (169.254.169.254)" in (outcome.error or "")
    assert smtp_guard == []


@pytest.mark.parametrize(
    ("channel", "refused"),
    [
        (WebhookChannel(url="http://169.254.169.254/x"), "cloud metadata (169.254.169.254)"),
        (SlackChannel(url="https://metadata.test/services/x"), "cloud metadata"),
        (TeamsChannel(url="https://private.test/workflows/x"), "private (10.0.0.0/8)"),
        (
            EmailChannel(host="10.1.2.3", from_addr="a@example.org", to_addrs=["b@example.org"]),
            "private (10.0.0.0/8)",
        ),
        (WebhookChannel(url="http://[::ffff:169.254.169.254]/x"), "cloud metadata"),
    ],
)
def test_validate_destination_refuses_denied_literals_and_names(
    channel: ChannelConfig, refused: str
) -> None:
    reason = validate_destination(channel, loopback_policy(), LocalResolver(NAMES))
    assert reason is not None
    assert refused in reason


def test_validate_destination_accepts_allowed_and_unresolvable_destinations() -> None:
    resolver = LocalResolver(NAMES)
    policy = loopback_policy()
    allowed = WebhookChannel(url="http://hooks.test:8080/hook")
    unknown = WebhookChannel(url="https://not-in-the-table.test/hook")  # judged at send time
    assert validate_destination(allowed, policy, resolver) is None
    assert validate_destination(unknown, policy, resolver) is None
    # Without a resolver only literals are judged, and names pass.
    assert validate_destination(WebhookChannel(url="http://metadata.test/"), policy) is None


def test_validate_destination_checks_the_port() -> None:
    policy = DestinationPolicy(
        allowed_networks=parse_networks(["127.0.0.0/8"]), allowed_ports=frozenset({443})
    )
    email = EmailChannel(host="127.0.0.1", from_addr="a@example.org", to_addrs=["b@example.org"])
    reason = validate_destination(email, policy)
    assert reason == "destination refused: port 587: port 587 not in allowed ports"
    assert validate_destination(WebhookChannel(url="https://127.0.0.1/x"), policy) is None
