"""Apprise, for the long tail of services (Telegram, Matrix, ntfy, PagerDuty, ...), behind
the optional extra `urlhealth[apprise]`.

Apprise resolves names and connects by itself, outside the engine's resolver and destination
policy; that is why these channels come only from the operator's monitors file (see
config.AppriseChannel). Its per-service HTTP timeouts (a few seconds each) bound a send.
Apprise reports only success or failure, so a failure's error quotes its log and is taken
as worth another try. Its persistent store is kept in memory: nothing is written to disk.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from app.alerts.channels import text
from app.alerts.channels.config import AppriseChannel
from app.alerts.channels.outcome import SendOutcome, delivered, failed
from app.alerts.message import AlertKind, AlertMessage

INSTALL_HINT = "pip install 'urlhealth[apprise]'"
NOTIFY_TYPES: dict[AlertKind, str] = {
    "down": "failure",
    "reminder": "failure",
    "degraded": "warning",
    "resolved": "success",
    "test": "info",
}


def send_apprise(channel: AppriseChannel, messages: Sequence[AlertMessage]) -> SendOutcome:
    """Never raises."""
    try:
        import apprise
    except ImportError:
        return failed(f"the apprise channel needs the optional extra: {INSTALL_HINT}", False)
    lines = [text.title(messages), ""]
    for message in messages:
        lines.append(f"{text.label(message)} {text.body(message)} — key {message.key}")
    client: Any = apprise.Apprise(asset=apprise.AppriseAsset(storage_mode="memory"))
    try:
        capture: Any = apprise.LogCapture  # untyped in apprise
        with capture(level=logging.WARNING, fmt="%(message)s") as log:
            for index, url in enumerate(channel.urls, start=1):
                if not client.add(url.get_secret_value()):
                    return failed(f"apprise: URL {index} is not one Apprise understands", False)
            sent = client.notify(
                body="\n".join(lines),
                title="[urlhealth] " + text.clip(text.title(messages), 200),
                notify_type=NOTIFY_TYPES[text.worst(messages)],
                body_format="text",
            )
            said = log.getvalue()
    except Exception as exc:  # a plugin's bug must not stop the delivery thread
        return failed(f"apprise: {type(exc).__name__}: {exc}", retryable=True)
    if sent:
        return delivered(None)
    return failed("apprise: " + (text.clip(said, 300) or "a service failed"), retryable=True)
