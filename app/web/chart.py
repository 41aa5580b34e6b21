"""The 24-hour response-time chart as SVG path data, drawn on the server from hourly means."""

from __future__ import annotations

from dataclasses import dataclass

from markupsafe import Markup

from app.web.board import Day, Hour

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


def bar(days: list[Day]) -> Markup:
    """The 90-day bar's cells, one <rect> a day with its title. Built here, not in the
    template: 90 cells x 100 tiles through Jinja's per-value escaping cost ~150 ms a page.
    Every value is made here (dates, numbers, fixed words), so nothing needs escaping."""
    cells = []
    for n, day in enumerate(days):
        title = day.label
        if day.incidents:
            title += f", {day.incidents} incident{'s' if day.incidents > 1 else ''}"
        cells.append(
            f'<rect x="{n * 3}" width="2" height="20" class="d-{day.level}"><title>{title}'
            "</title></rect>"
        )
    return Markup("".join(cells))
