"""The 24-hour response-time chart as SVG path data, drawn on the server from hourly means."""

from __future__ import annotations

from dataclasses import dataclass

from app.web.board import Hour

WIDTH = 240
HEIGHT = 40


@dataclass(frozen=True)
class Chart:
    points: str  # "x,y x,y ..." for a <polyline>; empty when no hour has a latency
    max_ms: float | None
    last_ms: float | None
    last: tuple[str, str] | None  # the newest point, marked (one hour alone draws no line)


def chart(hours: list[Hour]) -> Chart:
    values = [h.mean_ms for h in hours]
    known = [v for v in values if v is not None]
    if not known:
        return Chart("", None, None, None)
    top = max(known) or 1.0
    step = WIDTH / max(1, len(values) - 1)
    points = [
        f"{n * step:.1f},{HEIGHT - 2 - (HEIGHT - 4) * v / top:.1f}"
        for n, v in enumerate(values)
        if v is not None
    ]
    x, y = points[-1].split(",")
    return Chart(" ".join(points), round(max(known), 1), round(known[-1], 1), (x, y))
