"""Sending a batch of alerts to one channel, and checking a channel's destination up front.

`send` makes one message listing every alert of the batch with its key. Only a chat batch
over its service's size limits (chat.py, teams.py) goes as several messages, one after the
other, each of whole alerts and marked "part i of n"; the first that fails ends the send, and
its outcome says which part failed after how many were delivered. A retry then sends every
part again: the repeated alerts carry the same keys, which is the promise (at least once).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from ipaddress import ip_address
from typing import Any

import httpx

from app.alerts.channels import chat, mail, relay, teams, webhook
from app.alerts.channels.config import (
    AppriseChannel,
    ChannelConfig,
    DiscordChannel,
    EmailChannel,
    SlackChannel,
    TeamsChannel,
    WebhookChannel,
)
from app.alerts.channels.outcome import SendOutcome
from app.alerts.channels.posting import post
from app.alerts.message import AlertMessage
from app.engine.policy import DestinationPolicy
from app.engine.resolver import Resolver, ResolverError
from app.engine.transport import HttpLayer


def send(
    config: ChannelConfig | AppriseChannel, messages: Sequence[AlertMessage], http: HttpLayer
) -> SendOutcome:
    """Deliver `messages` (1 to config.max_batch of them) once; never raises for anything the
    network or the receiver does. Raises ValueError for an empty or oversized batch (split
    with `batches`)."""
    if not messages:
        raise ValueError("no alerts to send")
    if len(messages) > config.max_batch:
        raise ValueError(
            f"{len(messages)} alerts exceed the channel's max_batch {config.max_batch}"
        )
    if isinstance(config, WebhookChannel):
        raw = webhook.body(messages)
        return post(http, config.url, raw, webhook.headers(config, messages, raw), config.timeout_s)
    if isinstance(config, EmailChannel):
        return mail.send_mail(config, messages, http)
    if isinstance(config, AppriseChannel):
        return relay.send_apprise(config, messages)  # outside the policy: operator-only
    if isinstance(config, SlackChannel):
        payloads = chat.slack_payloads(messages)
    elif isinstance(config, DiscordChannel):
        payloads = chat.discord_payloads(messages)
    else:
        payloads = teams.teams_payloads(messages)
    return _post_parts(http, config, payloads)


def batches(
    config: ChannelConfig | AppriseChannel, messages: Sequence[AlertMessage]
) -> list[list[AlertMessage]]:
    """`messages` in order, in batches of at most the channel's max_batch."""
    size = config.max_batch
    return [list(messages[i : i + size]) for i in range(0, len(messages), size)]


def _post_parts(
    http: HttpLayer,
    config: SlackChannel | DiscordChannel | TeamsChannel,
    payloads: list[dict[str, Any]],
) -> SendOutcome:
    count = len(payloads)
    outcome: SendOutcome | None = None
    for index, payload in enumerate(payloads):
        raw = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        outcome = post(http, config.url, raw, {}, config.timeout_s)
        if not outcome.ok:
            if count == 1:
                return outcome
            done = f"{index} of {count} parts delivered before it" if index else "none delivered"
            return replace(outcome, error=f"part {index + 1} of {count}: {outcome.error} ({done})")
    assert outcome is not None
    return outcome if count == 1 else replace(outcome, error=f"sent as {count} messages")


def validate_destination(
    config: ChannelConfig | AppriseChannel,
    policy: DestinationPolicy,
    resolver: Resolver | None = None,
) -> str | None:
    """Why the channel's destination is refused, or None. Judges the port, an IP literal, and
    with a resolver every address the name resolves to now. A name that does not resolve now
    passes: the send-time check (on every connect) still applies."""
    if isinstance(config, AppriseChannel):
        # Apprise connects by itself, outside the policy: operator-only.
        return "destination refused: apprise channels are for the monitors file only"
    if isinstance(config, EmailChannel):
        host, port = config.host, config.smtp_port
    else:
        url = httpx.URL(config.url)
        host = url.host
        port = url.port if url.port is not None else (443 if url.scheme == "https" else 80)
    verdict = policy.check_port(port)
    if not verdict.allowed:
        return f"destination refused: port {port}: {verdict.rule}"
    try:
        literal = ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        verdict = policy.check_address(literal, port)
    elif resolver is not None:
        try:
            addresses = resolver.resolve(host, port, 5.0)
        except ResolverError:
            return None
        verdict = policy.check_addresses(addresses, port)
    if verdict.allowed:
        return None
    return f"destination refused: {host} is denied: {verdict.explain()}"
