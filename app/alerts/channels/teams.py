"""Microsoft Teams messages for a batch of alerts. Workflows webhooks (which replaced the
retired Office 365 connectors) accept Adaptive Cards only, wrapped in a message:
{"type": "message", "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive",
"content": <AdaptiveCard>}]}. The card has a heading, then one container per alert with its
facts, the key among them. Teams refuses messages over 28 KB, so a batch that would not fit
goes as several cards ("part 2 of 3"), each of whole alerts.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Final

from app.alerts.channels import text
from app.alerts.message import AlertKind, AlertMessage

CARD_CONTENT_TYPE: Final = "application/vnd.microsoft.card.adaptive"
CARD_SCHEMA: Final = "http://adaptivecards.io/schemas/adaptive-card.json"
# 1.4 renders in every Teams client (desktop, web, mobile) that Workflows post to.
CARD_VERSION: Final = "1.4"
TEAMS_BODY_MAX: Final = 26_000  # bytes of JSON, of Teams' 28 KB, leaving room for the frame

COLOURS: Final[dict[AlertKind, str]] = {
    "down": "Attention",
    "reminder": "Attention",
    "degraded": "Warning",
    "resolved": "Good",
    "test": "Default",
}


def teams_payloads(messages: Sequence[AlertMessage]) -> list[dict[str, Any]]:
    containers = [_container(message) for message in messages]
    parts: list[list[dict[str, Any]]] = [[]]
    size = 0
    for container in containers:
        cost = len(json.dumps(container, ensure_ascii=False).encode()) + 1
        if parts[-1] and size + cost > TEAMS_BODY_MAX:
            parts.append([])
            size = 0
        parts[-1].append(container)
        size += cost
    heading = text.title(messages)
    count = len(parts)
    return [
        _message(heading if count == 1 else f"{heading} (part {i + 1} of {count})", part)
        for i, part in enumerate(parts)
    ]


def _message(heading: str, containers: list[dict[str, Any]]) -> dict[str, Any]:
    card = {
        "$schema": CARD_SCHEMA,
        "type": "AdaptiveCard",
        "version": CARD_VERSION,
        "msteams": {"width": "Full"},
        "body": [
            {
                "type": "TextBlock",
                "text": heading,
                "weight": "Bolder",
                "size": "Medium",
                "wrap": True,
            },
            *containers,
        ],
    }
    return {
        "type": "message",
        "attachments": [{"contentType": CARD_CONTENT_TYPE, "contentUrl": None, "content": card}],
    }


def _container(message: AlertMessage) -> dict[str, Any]:
    facts = [{"title": "Change", "value": text.transition(message)}]
    if message.url:
        facts.append({"title": "URL", "value": text.clip(message.url, text.URL_MAX)})
    if message.summary:
        facts.append({"title": "Reason", "value": text.clip(message.summary, text.SUMMARY_MAX)})
    if message.incident_id is not None:
        facts.append({"title": "Incident", "value": str(message.incident_id)})
    if message.link:
        facts.append({"title": "Details", "value": text.clip(message.link, text.LINK_MAX)})
    facts.append({"title": "Key", "value": message.key})
    return {
        "type": "Container",
        "separator": True,
        "items": [
            {
                "type": "TextBlock",
                "text": f"{text.label(message)}: {text.name(message)}",
                "weight": "Bolder",
                "color": COLOURS[message.kind],
                "wrap": True,
            },
            {"type": "FactSet", "facts": facts},
        ],
    }
