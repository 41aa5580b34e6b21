"""Slack and Discord messages for a batch of alerts: one message listing every alert with its
key, or, only when the batch is over the service's size limits, several ("part 2 of 3"),
each a complete message of whole alerts.

Slack (incoming webhooks): `text` up to 40,000 characters, at most 50 blocks, a section's
text up to 3,000, a header's up to 150. `text` lists the alerts too: it is what
notifications and Slack-compatible receivers that ignore blocks show.
Discord (webhooks): `content` up to 2,000 characters, at most 10 embeds, an embed's
description up to 4,096, all embeds together up to 6,000. Mentions are switched off, so a
monitor named "@everyone" pings nobody.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from app.alerts.channels import text
from app.alerts.message import AlertKind, AlertMessage

SLACK_TEXT_MAX: Final = 39_000  # of 40,000, leaving room for the part marker
SLACK_SECTION_MAX: Final = 3_000
SLACK_BLOCKS_MAX: Final = 50
SLACK_HEADER_MAX: Final = 150

DISCORD_CONTENT_MAX: Final = 2_000
DISCORD_EMBEDS_MAX: Final = 10
DISCORD_DESCRIPTION_MAX: Final = 4_096
DISCORD_EMBEDS_TOTAL_MAX: Final = 5_900  # of 6,000

DISCORD_COLOURS: Final[dict[AlertKind, int]] = {
    "down": 0xD92D20,
    "reminder": 0xD92D20,
    "degraded": 0xF79009,
    "resolved": 0x12B76A,
    "test": 0x667085,
}


def slack_payloads(messages: Sequence[AlertMessage]) -> list[dict[str, Any]]:
    lines = [
        f"*{_slack_escape(text.label(m))}* {_slack_escape(text.body(m))} — key `{m.key}`"
        for m in messages
    ]
    # One block is the header; the text repeats every line.
    parts = pack(lines, SLACK_SECTION_MAX, SLACK_BLOCKS_MAX - 1, SLACK_TEXT_MAX)
    heading = text.title(messages)
    return [
        _slack_message(_numbered(heading, i, len(parts)), sections)
        for i, sections in enumerate(parts)
    ]


def _slack_message(heading: str, sections: list[list[str]]) -> dict[str, Any]:
    header = text.clip(heading, SLACK_HEADER_MAX)
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": header}}
    ]
    blocks += [
        {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)}}
        for lines in sections
    ]
    every = [line for lines in sections for line in lines]
    return {"text": "\n".join([_slack_escape(heading), *every]), "blocks": blocks}


def discord_payloads(messages: Sequence[AlertMessage]) -> list[dict[str, Any]]:
    lines = [
        f"**{text.label(m)}** {_discord_escape(text.short_body(m))} — key `{m.key}`"
        for m in messages
    ]
    parts = pack(lines, DISCORD_DESCRIPTION_MAX, DISCORD_EMBEDS_MAX, DISCORD_EMBEDS_TOTAL_MAX)
    heading = _discord_escape(text.title(messages))
    colour = DISCORD_COLOURS[text.worst(messages)]
    return [
        {
            "content": text.clip(_numbered(heading, i, len(parts)), DISCORD_CONTENT_MAX),
            "embeds": [{"description": "\n".join(lines), "color": colour} for lines in embeds],
            "allowed_mentions": {"parse": []},
        }
        for i, embeds in enumerate(parts)
    ]


def pack(
    lines: Sequence[str], box_max: int, boxes_max: int, total_max: int
) -> list[list[list[str]]]:
    """Lines into boxes (joined by newlines, each at most `box_max` characters), boxes into
    messages (at most `boxes_max` boxes and `total_max` characters of lines each). A line is
    never split: each is shorter than any box (text.LINE_MAX)."""
    messages: list[list[list[str]]] = [[]]
    total = 0
    box_size = 0
    for line in lines:
        boxes = messages[-1]
        fits_box = bool(boxes) and box_size + 1 + len(line) <= box_max
        if boxes and (
            total + 1 + len(line) > total_max or (not fits_box and len(boxes) >= boxes_max)
        ):
            boxes = []
            messages.append(boxes)
            total = 0
            fits_box = False
        if fits_box:
            boxes[-1].append(line)
            box_size += 1 + len(line)
        else:
            boxes.append([line])
            box_size = len(line)
        total += 1 + len(line)
    return messages


def _numbered(heading: str, index: int, count: int) -> str:
    return heading if count == 1 else f"{heading} (part {index + 1} of {count})"


def _slack_escape(value: str) -> str:
    # Slack's mrkdwn treats these three as control characters (links, mentions).
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# Inline markdown only: every line starts with the bold label, so line-start markers
# (#, -, >) cannot apply; brackets would let a name render as a masked link.
_DISCORD_SPECIAL = str.maketrans({c: "\\" + c for c in "\\*_~`|[]"})


def _discord_escape(value: str) -> str:
    return value.translate(_DISCORD_SPECIAL)
