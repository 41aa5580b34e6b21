"""The status page (`/`, `/status/{slug}`), its tiles' JSON, its two static files, and badges.

`/status/{slug}` is the monitors file's status page of that slug when it defines one
(`[[status_pages]]`, chosen by group and/or label: app/monitors/pages.py), else the page of
the group whose name slugifies to `slug` (ungrouped monitors under /status/ungrouped).
Pages hold PER_PAGE (50) monitors (`?page=N`), so 1,000 monitors are twenty pages, not one
page of megabytes. Plain defs: they read the database, off the event loop. Every HTML
answer carries the security headers below; the one script is a static file, so the policy
allows scripts from this origin only.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Final

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from app.api.deps import ServicesDep
from app.monitors.history import WINDOWS, History
from app.monitors.pages import StatusPage
from app.web import badges
from app.web.board import Board, BoardReader, Monitor, group_slug
from app.web.chart import bar, chart

router = APIRouter(include_in_schema=False)

PER_PAGE: Final = 50
STATIC_URL: Final = "/status-static"
_HERE = Path(__file__).resolve().parent
_ENV = Environment(
    loader=FileSystemLoader(_HERE / "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)
_STATIC: Final = {
    "status.js": (_HERE / "static" / "status.js", "text/javascript; charset=utf-8"),
    "status.css": (_HERE / "static" / "status.css", "text/css; charset=utf-8"),
    # Named in the page, else the browser asks for /favicon.ico and logs the 404.
    "favicon.svg": (_HERE / "static" / "favicon.svg", "image/svg+xml"),
}
HTML_HEADERS: Final = {
    "Content-Security-Policy": "; ".join(
        (
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data:",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        )
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
# Badges are embedded as <img> elsewhere: no script, nothing loaded, short cache.
BADGE_HEADERS: Final = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "max-age=60",
}
_MIN_REFRESH_S, _MAX_REFRESH_S, _REFRESH_S = 1, 3600, 30


def _compressed(
    request: Request, body: bytes, media_type: str, headers: dict[str, str]
) -> Response:
    # A page of 50 tiles is ~460 KB of repetitive markup and ~21 KB gzipped.
    out = dict(headers, Vary="Accept-Encoding")
    if "gzip" in request.headers.get("accept-encoding", ""):
        out["Content-Encoding"] = "gzip"
        body = gzip.compress(body, compresslevel=6)
    return Response(body, media_type=media_type, headers=out)


def _overall(monitors: list[Monitor]) -> tuple[str, str]:
    states = {m.state for m in monitors if not m.paused}
    if "down" in states:
        return "down", "Some systems are down"
    if "degraded" in states:
        return "degraded", "Some systems are degraded"
    if states == {"up"}:
        return "up", "All systems operational"
    return "unknown", "Waiting for checks" if monitors else "No monitors yet"


def _render(
    request: Request,
    services: ServicesDep,
    group: str | None,
    page: int,
    refresh_s: int,
) -> Response:
    reader = BoardReader(services.storage.database, _now())
    everything = reader.summaries()
    defined = services.monitors.status_pages  # one read: a reload replaces the whole dict
    monitors = _selected(everything, group, defined)
    if group is not None and group not in defined and not monitors:
        raise HTTPException(404, f"no status page {group!r}")
    board: Board = reader.board(monitors, page, PER_PAGE)
    root = request.scope.get("root_path", "")
    names = {group_slug(m.group): (m.group or "Ungrouped") for m in everything}
    names.update({slug: p.title for slug, p in defined.items()})
    overall, overall_text = _overall(monitors)
    group_name = names.get(group) if group else None
    tiles = f"{root}/status-tiles.json" + (f"?group={group}" if group else "")
    html = _ENV.get_template("status.html").render(
        title="Status" + (f": {group_name}" if group_name else ""),
        board=board,
        charts={t.monitor.id: chart(t.hours) for g in board.groups for t in g.tiles},
        bars={t.monitor.id: bar(t.days) for g in board.groups for t in g.tiles},
        days_width=3 * 90,
        pct=badges.pct_text,
        overall=overall,
        overall_text=overall_text,
        pages_nav=[("All", f"{root}/")]
        + [(n, f"{root}/status/{s}") for s, n in sorted(names.items())],
        group_name=group_name,
        root=root,
        static=root + STATIC_URL,
        tiles_url=tiles,
        refresh_s=refresh_s,
    )
    return _compressed(request, html.encode(), "text/html; charset=utf-8", HTML_HEADERS)


def _selected(
    everything: list[Monitor], slug: str | None, defined: Mapping[str, StatusPage]
) -> list[Monitor]:
    """The monitors of page `slug`: a defined page's selection, else the group's."""
    if slug is None:
        return everything
    page = defined.get(slug)
    if page is not None:
        return [m for m in everything if page.selects(m.group, m.labels)]
    return [m for m in everything if group_slug(m.group) == slug]


def _now() -> datetime:
    return datetime.now(UTC)


def _reader(services: ServicesDep) -> BoardReader:
    return BoardReader(services.storage.database, _now())


Page = Annotated[int, Query(ge=1, le=100_000)]
Refresh = Annotated[
    int,
    Query(ge=_MIN_REFRESH_S, le=_MAX_REFRESH_S, description="Seconds between tile refreshes."),
]


@router.get("/")
def status_page(
    request: Request, services: ServicesDep, page: Page = 1, refresh: Refresh = _REFRESH_S
) -> Response:
    return _render(request, services, None, page, refresh)


@router.get("/status/{group}")
def group_page(
    group: str,
    request: Request,
    services: ServicesDep,
    page: Page = 1,
    refresh: Refresh = _REFRESH_S,
) -> Response:
    return _render(request, services, group, page, refresh)


@router.get("/status-tiles.json")
def tiles(
    request: Request,
    services: ServicesDep,
    group: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    """The states the page's script applies: small (slug, state, last check per monitor)."""
    reader = BoardReader(services.storage.database, _now())
    monitors = _selected(reader.summaries(), group, services.monitors.status_pages)
    checked = [m.last_checked_at for m in monitors if m.last_checked_at is not None]
    data = {
        "monitors": [
            {
                "slug": m.slug,
                "state": "paused" if m.paused else m.state,
                "checked": m.last_checked_at.strftime("%H:%M:%S UTC")
                if m.last_checked_at
                else None,
            }
            for m in monitors
        ],
        "overall": _overall(monitors),
        "last_checked": max(checked).strftime("%Y-%m-%d %H:%M:%S UTC") if checked else None,
    }
    headers = {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"}
    return _compressed(request, json.dumps(data).encode(), "application/json", headers)


@router.get(STATIC_URL + "/{name}")
def static(name: str) -> Response:
    if name not in _STATIC:  # a fixed list: nothing else on disk can be named
        raise HTTPException(404, "Not Found")
    path, media_type = _STATIC[name]
    headers = {"X-Content-Type-Options": "nosniff", "Cache-Control": "public, max-age=300"}
    return Response(path.read_bytes(), media_type=media_type, headers=headers)


def _monitor(services: ServicesDep, ref: str) -> tuple[History, int, Monitor]:
    history = History(services.storage.database)
    monitor_id = history.find(ref)
    found = [] if monitor_id is None else _reader(services).summaries(monitor_id=monitor_id)
    if monitor_id is None or not found:
        raise HTTPException(404, f"no monitor with id or slug {ref!r}")
    return history, monitor_id, found[0]


def _svg(label: str, message: str, colour: str) -> Response:
    return Response(
        badges.svg(label, message, colour), media_type="image/svg+xml", headers=BADGE_HEADERS
    )


@router.get("/badges/{ref}/status.svg")
def status_badge(ref: str, services: ServicesDep) -> Response:
    _, _, monitor = _monitor(services, ref)
    state = "paused" if monitor.paused else monitor.state
    return _svg("status", state, state)


@router.get("/badges/{ref}/uptime/{window}.svg")
def uptime_badge(ref: str, window: str, services: ServicesDep) -> Response:
    if window not in WINDOWS:
        raise HTTPException(404, f"no window {window!r}: one of {', '.join(WINDOWS)}")
    history, monitor_id, _ = _monitor(services, ref)
    pct = history.uptime(monitor_id, window).uptime_pct
    return _svg(f"uptime {window}", badges.pct_text(pct), badges.uptime_colour(pct))


@router.get("/badges/{ref}/response-time.svg")
def response_time_badge(ref: str, services: ServicesDep) -> Response:
    history, monitor_id, _ = _monitor(services, ref)
    mean = history.uptime(monitor_id, "24h").latency.mean_ms
    return _svg("response time", badges.ms_text(mean), badges.latency_colour(mean))


@router.get("/badges/{ref}/shields.json")
def shields_endpoint(ref: str, services: ServicesDep) -> Response:
    _, _, monitor = _monitor(services, ref)
    state = "paused" if monitor.paused else monitor.state
    body = json.dumps(badges.shields("status", state, state)).encode()
    headers = {"X-Content-Type-Options": "nosniff", "Cache-Control": "max-age=60"}
    return Response(body, media_type="application/json", headers=headers)
