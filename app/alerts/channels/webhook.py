"""The generic webhook: one JSON body for the whole batch, signed, with an idempotency key.

Body: {"version": 1, "alerts": [{"key", "kind", "monitor": {"slug", "name", "url"}, "from",
"to", "at", "since", "incident_id", "summary", "link"}]} (times in ISO 8601 UTC).
Headers: `X-Urlhealth-Signature: sha256=<hex>`, the HMAC-SHA256 of the exact body bytes with
the channel's secret (only when it has one); `X-Urlhealth-Idempotency-Key`, the alert's key
for a batch of one, else "batch:<sha256 of the sorted keys>" (message.batch_key); each
alert's own key is in the body. A receiver verifies by recomputing the HMAC over the raw
body it read, before parsing it, and comparing in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Final

from app.alerts.channels.config import WebhookChannel
from app.alerts.message import AlertMessage, batch_key

SIGNATURE_HEADER: Final = "X-Urlhealth-Signature"
IDEMPOTENCY_HEADER: Final = "X-Urlhealth-Idempotency-Key"
BODY_VERSION: Final = 1


def body(messages: Sequence[AlertMessage]) -> bytes:
    document = {"version": BODY_VERSION, "alerts": [_alert(message) for message in messages]}
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()


def headers(
    channel: WebhookChannel, messages: Sequence[AlertMessage], raw: bytes
) -> dict[str, str]:
    sent = dict(channel.headers)
    sent[IDEMPOTENCY_HEADER] = batch_key(messages)
    if channel.secret is not None:
        sent[SIGNATURE_HEADER] = signature(channel.secret.get_secret_value(), raw)
    return sent


def signature(secret: str, raw: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()


def _alert(message: AlertMessage) -> dict[str, Any]:
    return {
        "key": message.key,
        "kind": message.kind,
        "monitor": {
            "slug": message.monitor_slug,
            "name": message.monitor_name,
            "url": message.url,
        },
        "from": message.from_state,
        "to": message.to_state,
        "at": _iso(message.at),
        "since": _iso(message.since) if message.since is not None else None,
        "incident_id": message.incident_id,
        "summary": message.summary,
        "link": message.link,
    }


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")
