"""The words of an alert, shared by every sender: a title for a batch and one line per alert
that always ends with its key (chat and e-mail have no idempotency header, so the key in the
text is how a reader, or a bot, tells a repeat from a new alert).

User-controlled parts (names, URLs, reasons) are clipped to fixed lengths, so one line stays
under LINE_MAX characters whatever the monitor is called; the senders pack lines into their
service's size limits (see chat.py, teams.py).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Final

from app.alerts.message import AlertKind, AlertMessage

NAME_MAX: Final = 80
URL_MAX: Final = 120
SUMMARY_MAX: Final = 160
LINK_MAX: Final = 200
# Label, clipped parts, states, two times, key (at most 100) and punctuation.
LINE_MAX: Final = 16 + NAME_MAX + URL_MAX + SUMMARY_MAX + LINK_MAX + 60 + 60 + 100 + 40

LABELS: Final[dict[AlertKind, str]] = {
    "down": "DOWN",
    "degraded": "DEGRADED",
    "resolved": "RESOLVED",
    "reminder": "STILL",
    "test": "TEST",
}
_TITLE_ORDER: Final[tuple[AlertKind, ...]] = ("down", "degraded", "reminder", "resolved", "test")


def clip(text: str, limit: int) -> str:
    """`text` on one line, at most `limit` characters (an ellipsis marks a cut)."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: max(0, limit - 1)] + "…"


def when(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def duration(span: timedelta) -> str:
    seconds = max(0, int(span.total_seconds()))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    parts = [f"{days}d"] * bool(days) + [f"{hours}h"] * bool(hours)
    parts += [f"{minutes}m"] * bool(minutes) + [f"{seconds}s"] * (not days and not hours)
    return " ".join(parts)


def label(message: AlertMessage) -> str:
    if message.kind == "reminder":
        return f"STILL {message.to_state.upper()}"
    return LABELS[message.kind]


def name(message: AlertMessage) -> str:
    return clip(message.monitor_name or message.monitor_slug, NAME_MAX)


def transition(message: AlertMessage) -> str:
    """ "up → down at 2026-12-02 14:00:05 UTC (was up 3h 2m)"."""
    text = f"{message.from_state} → {message.to_state} at {when(message.at)}"
    if message.since is not None:
        text += f" (was {message.from_state} {duration(message.at - message.since)})"
    return text


def line(message: AlertMessage) -> str:
    """One alert as plain text, its key last."""
    return f"{label(message)} {body(message)} — key {message.key}"


def body(message: AlertMessage) -> str:
    """One alert without its label and key, for senders that mark those up themselves."""
    parts = [name(message)]
    if message.url:
        parts.append(clip(message.url, URL_MAX))
    parts.append(transition(message))
    if message.summary:
        parts.append(clip(message.summary, SUMMARY_MAX))
    if message.link:
        parts.append(clip(message.link, LINK_MAX))
    return " — ".join(parts)


def short_body(message: AlertMessage) -> str:
    """`body` for tight messages (Discord's 6,000 characters): shorter clips, the time of
    day only, no link; about 150 characters for a typical alert, so a burst of 40 fits."""
    parts = [clip(message.monitor_name or message.monitor_slug, 60)]
    if message.url:
        parts.append(clip(message.url, 60))
    at = message.at.astimezone(UTC).strftime("%H:%M:%S UTC")
    parts.append(f"{message.from_state} → {message.to_state} {at}")
    if message.summary:
        parts.append(clip(message.summary, 80))
    return " — ".join(parts)


def title(messages: Sequence[AlertMessage]) -> str:
    """ "API is down", or for a batch "3 monitors down, 1 resolved"."""
    if len(messages) == 1:
        only = messages[0]
        who = name(only)
        return {
            "down": f"{who} is down",
            "degraded": f"{who} is degraded",
            "resolved": f"{who} recovered ({only.to_state})",
            "reminder": f"{who} is still {only.to_state}",
            "test": "Test alert from urlhealth",
        }[only.kind]
    counts = Counter(message.kind for message in messages)
    words = {
        "down": "down",
        "degraded": "degraded",
        "reminder": "still failing",
        "resolved": "resolved",
        "test": "test",
    }
    shown = [f"{counts[kind]} {words[kind]}" for kind in _TITLE_ORDER if counts[kind]]
    noun = "monitor" if shown and shown[0].startswith("1 ") else "monitors"
    first, *rest = shown
    count, _, word = first.partition(" ")
    return ", ".join([f"{count} {noun} {word}", *rest])


def worst(messages: Sequence[AlertMessage]) -> AlertKind:
    """The kind that colours a batch: down over degraded over reminders over the rest."""
    kinds = {message.kind for message in messages}
    return next(kind for kind in _TITLE_ORDER if kind in kinds)
