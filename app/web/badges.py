"""Badges as SVG (the flat shields.io look, drawn here: no request to shields.io) and the
shields.io endpoint JSON (https://shields.io/badges/endpoint-badge) for those who want theirs."""

from __future__ import annotations

from html import escape
from typing import Final

# State -> shields.io colour name and its hex value.
COLOURS: Final = {
    "up": ("brightgreen", "#4c1"),
    "degraded": ("yellow", "#dfb317"),
    "down": ("red", "#e05d44"),
    "unknown": ("lightgrey", "#9f9f9f"),
    "paused": ("lightgrey", "#9f9f9f"),
}
# Verdana 11px is ~7 px a character on average: close enough for a badge's width.
_CHAR_PX: Final = 7
_PAD_PX: Final = 10


def uptime_colour(pct: float | None) -> str:
    if pct is None:
        return "unknown"
    if pct >= 99.9:
        return "up"
    return "degraded" if pct >= 95.0 else "down"


def latency_colour(ms: float | None) -> str:
    if ms is None:
        return "unknown"
    return "up" if ms < 500 else ("degraded" if ms < 2000 else "down")


def svg(label: str, message: str, colour: str) -> str:
    left = len(label) * _CHAR_PX + _PAD_PX
    right = len(message) * _CHAR_PX + _PAD_PX
    width = left + right
    fill = COLOURS.get(colour, COLOURS["unknown"])[1]
    text_label, text_message = escape(label), escape(message)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="20" role="img" '
        f'aria-label="{text_label}: {text_message}">'
        f"<title>{text_label}: {text_message}</title>"
        f'<rect width="{left}" height="20" fill="#555"/>'
        f'<rect x="{left}" width="{right}" height="20" fill="{fill}"/>'
        '<g fill="#fff" text-anchor="middle" font-family="Verdana,DejaVu Sans,sans-serif" '
        'font-size="11">'
        f'<text x="{left / 2}" y="14">{text_label}</text>'
        f'<text x="{left + right / 2}" y="14">{text_message}</text>'
        "</g></svg>"
    )


def shields(label: str, message: str, colour: str) -> dict[str, object]:
    return {
        "schemaVersion": 1,
        "label": label,
        "message": message,
        "color": COLOURS.get(colour, COLOURS["unknown"])[0],
    }


def pct_text(pct: float | None) -> str:
    return "n/a" if pct is None else f"{pct:.2f}%"


def ms_text(ms: float | None) -> str:
    return "n/a" if ms is None else f"{ms:.0f} ms"
