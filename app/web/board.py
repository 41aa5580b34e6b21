"""What the status page shows, read in a few batched queries for one page of monitors:
the summary of all (state, last check), then for the page's monitors only their daily rollups
(90-day bar), hourly rollups (24-h chart) and incidents. Never raw results: a page of 100
monitors is ~9,000 daily and ~2,500 hourly rows, whatever the check interval."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

from sqlalchemy import or_, select

from app.db.engine import Database
from app.db.schema import incidents, monitor_rollups, monitors
from app.monitors.history import from_ms, window_bounds
from app.monitors.recorder import to_ms
from app.monitors.rollups import DAY_MS, HOUR_MS, period_start
from app.monitors.slugs import slugify
from app.web.badges import pct_text

DAYS: Final = 90
HOURS: Final = 24
UNGROUPED: Final = "Ungrouped"


@dataclass(frozen=True, slots=True)
class Monitor:
    """What a tile shows of a monitor's row (never its URL: it may hold a secret)."""

    id: int
    slug: str
    name: str
    group: str | None
    state: str
    paused: bool
    last_checked_at: datetime | None
    labels: dict[str, str] | None = None  # for the file's status pages chosen by label


@dataclass(frozen=True, slots=True)
class Day:
    label: str  # "2026-12-01: 99.95%": the cell's title
    checks: int
    up_pct: float | None
    incidents: int

    @property
    def level(self) -> str:
        # One class per cell: colour comes from the stylesheet, not inline styles.
        if self.up_pct is None:
            return "none"
        if self.up_pct >= 99.9:
            return "up"
        return "degraded" if self.up_pct >= 95.0 else "down"


@dataclass(frozen=True)
class Hour:
    start: datetime
    mean_ms: float | None


@dataclass
class Tile:
    monitor: Monitor
    days: list[Day] = field(default_factory=list)
    hours: list[Hour] = field(default_factory=list)

    @property
    def uptime_90d(self) -> float | None:
        checks = sum(d.checks for d in self.days)
        if checks == 0:
            return None
        up = sum((d.up_pct or 0.0) * d.checks / 100 for d in self.days)
        return round(100.0 * up / checks, 2)


@dataclass(frozen=True)
class Group:
    name: str
    slug: str
    tiles: list[Tile]


@dataclass(frozen=True)
class RecentIncident:
    monitor: str
    started_at: datetime
    ended_at: datetime | None
    worst_state: str


@dataclass(frozen=True)
class Board:
    groups: list[Group]
    incidents: list[RecentIncident]
    page: int
    pages: int
    total: int
    last_checked_at: datetime | None


def group_slug(name: str | None) -> str:
    return slugify(name or UNGROUPED)


class BoardReader:
    def __init__(self, database: Database, now: datetime) -> None:
        self._engine = database.engine
        self._now = now

    def summaries(self, group: str | None = None, monitor_id: int | None = None) -> list[Monitor]:
        """Every monitor, or those of one group slug, or the one with `monitor_id`; ordered
        by group, then name. Its own query: the API's summary also sums 24 h of rollups per
        monitor, which the page does not show."""
        m = monitors.c
        query = select(
            m.id, m.slug, m.name, m.group_name, m.state, m.paused, m.last_checked_at, m.labels
        )
        if monitor_id is not None:
            query = query.where(m.id == monitor_id)
        with self._engine.connect() as connection:
            found = [Monitor(*row) for row in connection.execute(query)]
        if group is not None:
            found = [m for m in found if group_slug(m.group) == group]
        return sorted(found, key=lambda m: (m.group is None, m.group or "", m.name, m.id))

    def board(self, monitors: list[Monitor], page: int, per_page: int) -> Board:
        pages = max(1, -(-len(monitors) // per_page))
        page = min(max(1, page), pages)
        shown = monitors[(page - 1) * per_page : page * per_page]
        tiles = self._tiles(shown)
        groups: dict[str, list[Tile]] = {}
        for tile in tiles:
            groups.setdefault(tile.monitor.group or UNGROUPED, []).append(tile)
        checked = [m.last_checked_at for m in monitors if m.last_checked_at is not None]
        return Board(
            groups=[Group(name, group_slug(name), ts) for name, ts in groups.items()],
            incidents=self._recent(shown),
            page=page,
            pages=pages,
            total=len(monitors),
            last_checked_at=max(checked) if checked else None,
        )

    def _tiles(self, shown: list[Monitor]) -> list[Tile]:
        ids = [m.id for m in shown]
        if not ids:
            return []
        r, i = monitor_rollups.c, incidents.c
        now_ms = to_ms(self._now)
        first_day = period_start(now_ms, "d") - (DAYS - 1) * DAY_MS
        first_hour = period_start(now_ms, "h") - (HOURS - 1) * HOUR_MS
        daily = select(r.monitor_id, r.start_ms, r.checks, r.up, r.degraded).where(
            r.monitor_id.in_(ids), r.period == "d", r.start_ms >= first_day
        )
        hourly = select(r.monitor_id, r.start_ms, r.latency_count, r.latency_sum_us).where(
            r.monitor_id.in_(ids), r.period == "h", r.start_ms >= first_hour
        )
        spans = select(i.monitor_id, i.started_at, i.ended_at).where(
            i.monitor_id.in_(ids), or_(i.ended_at.is_(None), i.ended_at >= from_ms(first_day))
        )
        with self._engine.connect() as connection:
            day_rows = connection.execute(daily).all()
            hour_rows = connection.execute(hourly).all()
            span_rows = connection.execute(spans).all()
        # Rows unpacked as tuples: attribute access on 10,000 Rows shows in a profile.
        days: dict[tuple[int, int], tuple[int, int]] = {
            (mid, start): (checks, up + degraded) for mid, start, checks, up, degraded in day_rows
        }
        hours: dict[tuple[int, int], float | None] = {
            (mid, start): (total / count / 1000 if count else None)
            for mid, start, count, total in hour_rows
        }
        dates = [from_ms(first_day + n * DAY_MS).strftime("%Y-%m-%d") for n in range(DAYS)]
        hour_starts = [from_ms(first_hour + n * HOUR_MS) for n in range(HOURS)]
        per_day: dict[tuple[int, int], int] = defaultdict(int)
        for span in span_rows:
            end_ms = now_ms if span.ended_at is None else to_ms(span.ended_at)
            day = max(period_start(to_ms(span.started_at), "d"), first_day)
            while day <= end_ms and day <= now_ms:  # bounded: at most DAYS steps
                per_day[(span.monitor_id, day)] += 1
                day += DAY_MS
        tiles = []
        for monitor in shown:
            tile = Tile(monitor)
            for n in range(DAYS):
                start = first_day + n * DAY_MS
                checks, answered = days.get((monitor.id, start), (0, 0))
                pct = round(100.0 * answered / checks, 2) if checks else None
                label = f"{dates[n]}: {pct_text(pct)}"
                tile.days.append(Day(label, checks, pct, per_day.get((monitor.id, start), 0)))
            for n in range(HOURS):
                start = first_hour + n * HOUR_MS
                tile.hours.append(Hour(hour_starts[n], hours.get((monitor.id, start))))
            tiles.append(tile)
        return tiles

    def _recent(self, shown: list[Monitor], limit: int = 10) -> list[RecentIncident]:
        names = {m.id: m.name for m in shown}
        if not names:
            return []
        i = incidents.c
        start, _ = window_bounds("30d", self._now)
        query = (
            select(i.monitor_id, i.started_at, i.ended_at, i.worst_state)
            .where(i.monitor_id.in_(list(names)), i.started_at >= from_ms(start))
            .order_by(i.ended_at.is_not(None), i.started_at.desc())
            .limit(limit)
        )
        with self._engine.connect() as connection:
            rows = connection.execute(query).all()
        return [
            RecentIncident(names[r.monitor_id], r.started_at, r.ended_at, r.worst_state)
            for r in rows
        ]
