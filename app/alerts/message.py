"""One alert as the senders see it: a confirmed transition of one monitor, for one channel.

The key is the idempotency key of that transition on that channel: it is stable across
retries and restarts, so a receiver that sees the same key twice knows it is a repeat. Every
sender carries it (a header for webhooks, the text for chat and e-mail), so it is kept short
and made of characters that are safe in a header and in any chat markup.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Literal

AlertKind = Literal["down", "degraded", "resolved", "reminder", "test"]
ALERT_KINDS: Final[tuple[AlertKind, ...]] = ("down", "degraded", "resolved", "reminder", "test")

# Message size budgets (see channels/text.py) count on keys of at most this length.
MAX_KEY_LENGTH: Final = 100
_KEY = re.compile(r"[A-Za-z0-9._:\-]+")


@dataclass(frozen=True, slots=True)
class AlertMessage:
    key: str
    kind: AlertKind
    monitor_slug: str
    monitor_name: str
    url: str  # masked by the caller: it may carry credentials
    from_state: str
    to_state: str
    at: datetime  # UTC
    since: datetime | None  # when the monitor entered from_state, if known
    incident_id: int | None
    summary: str  # the result's short reason: "HTTP 500", "timeout: ..."
    link: str | None = None  # where to look (the service's page for the monitor), if any

    def __post_init__(self) -> None:
        # A bad key is a caller's bug; caught here rather than as a garbled header later.
        if len(self.key) > MAX_KEY_LENGTH or not _KEY.fullmatch(self.key):
            raise ValueError(
                f"alert key {self.key[:120]!r}: 1-{MAX_KEY_LENGTH} characters of "
                "A-Z a-z 0-9 . _ : - expected"
            )
        if self.kind not in ALERT_KINDS:
            raise ValueError(f"alert kind {self.kind!r}: one of {', '.join(ALERT_KINDS)}")
        if self.at.tzinfo is None or (self.since is not None and self.since.tzinfo is None):
            raise ValueError("alert times must be timezone-aware (UTC)")


def batch_key(messages: Sequence[AlertMessage]) -> str:
    """The idempotency key of a whole batch: the alert's own key for a batch of one, else
    "batch:" and the SHA-256 hex of the sorted keys joined by newlines, so the same set of
    alerts yields the same key whatever order it was claimed in."""
    if not messages:
        raise ValueError("an empty batch has no key")
    if len(messages) == 1:
        return messages[0].key
    joined = "\n".join(sorted(message.key for message in messages))
    return "batch:" + hashlib.sha256(joined.encode("ascii")).hexdigest()


def channel_test_alert(key: str, at: datetime, link: str | None = None) -> AlertMessage:
    """The alert `POST /v1/channels/{id}/test` sends: no monitor, marked as a test."""
    return AlertMessage(
        key=key,
        kind="test",
        monitor_slug="urlhealth-test",
        monitor_name="urlhealth test alert",
        url="",
        from_state="up",
        to_state="up",
        at=at,
        since=None,
        incident_id=None,
        summary="a test message: alerts reach this channel",
        link=link,
    )
