"""Reading a monitor's history: results, incidents, uptime over a window, the summary of all.

Reads only, through `database.engine` (never the writer). Uptime comes from rollups: hourly
rows for the hour windows, daily rows for the day windows (today's daily row is current: the
recorder adds every result to it), so a year is 366 rows, and counts equal those of the raw
results over the same span exactly.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from sqlalchemy import Row, Text, and_, cast, func, or_, select

from app.db.engine import Database
from app.db.schema import incidents, monitor_results, monitor_rollups, monitors
from app.monitors import buckets
from app.monitors.model import CODE_OUTCOME, MonitorState
from app.monitors.recorder import to_ms
from app.monitors.redact import public_result
from app.monitors.rollups import DAY_MS, HOUR_MS, period_start
from app.schemas.history import (
    IncidentEvent,
    IncidentPublic,
    LatencyPublic,
    MonitorResultPublic,
    MonitorResultsPublic,
    MonitorsSummaryPublic,
    PhasesMs,
    UptimePublic,
)

# window -> (rollup period, whole periods before the current one)
WINDOWS: Final[dict[str, tuple[str, int]]] = {
    "1h": ("h", 1),
    "24h": ("h", 24),
    "7d": ("d", 7),
    "30d": ("d", 30),
    "90d": ("d", 90),
    "365d": ("d", 365),
}
_SIZE: Final = {"h": HOUR_MS, "d": DAY_MS}
_MAX_ID: Final = 2**31 - 1


def _utcnow() -> datetime:
    return datetime.now(UTC)


def from_ms(at_ms: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=at_ms)


def window_bounds(window: str, now: datetime) -> tuple[int, int]:
    """[start, end] in epoch ms: the last N whole hours or UTC days before the current one,
    plus the current one up to `now`."""
    period, count = WINDOWS[window]
    now_ms = to_ms(now)
    return period_start(now_ms, period) - count * _SIZE[period], now_ms


def _pct(part: int, whole: int) -> float | None:
    return None if whole == 0 else round(100.0 * part / whole, 4)


def _ms(us: int | None) -> float | None:
    return None if us is None else us / 1000


class History:
    def __init__(self, database: Database, clock: Callable[[], datetime] = _utcnow) -> None:
        self._engine = database.engine
        self._clock = clock

    def find(self, ref: str) -> int | None:
        """The id of the monitor `ref` names: its id (digits) or its slug; an id wins."""
        m = monitors.c
        by_slug = m.slug == ref
        where = by_slug
        if ref.isascii() and ref.isdigit() and 0 < int(ref) <= _MAX_ID:
            where = or_(m.id == int(ref), by_slug)
        with self._engine.connect() as connection:
            found = connection.execute(select(m.id, m.slug).where(where)).all()
        exact = [row.id for row in found if str(row.id) == ref]
        return exact[0] if exact else (found[0].id if found else None)

    def results(
        self,
        monitor_id: int,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> MonitorResultsPublic:
        """Newest first, `since` inclusive, `until` exclusive; `cursor` from the last page.
        Raises ValueError for a cursor this did not make."""
        r = monitor_results.c
        where = [r.monitor_id == monitor_id]
        if since is not None:
            where.append(r.at_ms >= to_ms(since))
        if until is not None:
            where.append(r.at_ms < to_ms(until))
        if cursor is not None:
            at_ms, last_id = parse_cursor(cursor)
            where.append(or_(r.at_ms < at_ms, and_(r.at_ms == at_ms, r.id < last_id)))
        query = (
            select(monitor_results)
            .where(*where)
            .order_by(r.at_ms.desc(), r.id.desc())
            .limit(limit + 1)
        )
        with self._engine.connect() as connection:
            rows = connection.execute(query).all()
        more = len(rows) > limit
        rows = rows[:limit]
        last = rows[-1] if more else None
        return MonitorResultsPublic(
            results=[_result(row) for row in rows],
            next_cursor=None if last is None else f"{last.at_ms}.{last.id}",
        )

    def incidents(
        self, monitor_id: int, *, offset: int = 0, limit: int = 50
    ) -> list[IncidentPublic]:
        """Newest first: an open incident is the newest."""
        i = incidents.c
        query = (
            select(incidents)
            .where(i.monitor_id == monitor_id)
            .order_by(i.started_at.desc(), i.id.desc())
            .offset(offset)
            .limit(limit)
        )
        with self._engine.connect() as connection:
            return [_incident(row) for row in connection.execute(query)]

    def uptime(self, monitor_id: int, window: str) -> UptimePublic:
        """Raises KeyError for an unknown window."""
        period, _ = WINDOWS[window]
        start_ms, end_ms = window_bounds(window, self._clock())
        r, i = monitor_rollups.c, incidents.c
        start, end = from_ms(start_ms), from_ms(end_ms)
        in_window = (
            r.monitor_id == monitor_id,
            r.period == period,
            r.start_ms >= start_ms,
            r.start_ms <= end_ms,
        )
        # Sums in SQL; the histograms as their text, parsed at once (366 rows for a year).
        counted = select(
            func.coalesce(func.sum(r.checks), 0).label("checks"),
            func.coalesce(func.sum(r.up), 0).label("up"),
            func.coalesce(func.sum(r.degraded), 0).label("degraded"),
            func.coalesce(func.sum(r.down), 0).label("down"),
            func.coalesce(func.sum(r.latency_count), 0).label("latency_count"),
            func.coalesce(func.sum(r.latency_sum_us), 0).label("latency_sum_us"),
            func.min(r.latency_min_us).label("latency_min_us"),
            func.max(r.latency_max_us).label("latency_max_us"),
        ).where(*in_window)
        histograms = select(cast(r.histogram, Text)).where(*in_window, r.latency_count > 0)
        overlapping = select(i.started_at, i.ended_at).where(
            i.monitor_id == monitor_id,
            i.started_at <= end,
            or_(i.ended_at.is_(None), i.ended_at >= start),
        )
        with self._engine.connect() as connection:
            totals = connection.execute(counted).one()._asdict()
            texts = connection.execute(histograms).scalars().all()
            spans = connection.execute(overlapping).all()
        recovered = [
            (span.ended_at - span.started_at).total_seconds()
            for span in spans
            if span.ended_at is not None and span.ended_at <= end
        ]
        return UptimePublic(
            monitor_id=monitor_id,
            window=window,
            start=start,
            end=end,
            checks=totals["checks"],
            up=totals["up"],
            degraded=totals["degraded"],
            down=totals["down"],
            uptime_pct=_pct(totals["up"] + totals["degraded"], totals["checks"]),
            degraded_pct=_pct(totals["degraded"], totals["checks"]),
            down_pct=_pct(totals["down"], totals["checks"]),
            latency=_latency(totals, texts),
            incidents=len(spans),
            mttr_s=round(sum(recovered) / len(recovered), 3) if recovered else None,
        )

    def summary(self, in_maintenance: Collection[int] = frozenset()) -> MonitorsSummaryPublic:
        """Every monitor with its state, 24 h uptime, last check and open incident: one query
        (the rollups summed per monitor through their primary key), validated as one list
        (10,000 models built one by one cost more than the query). `in_maintenance`: ids of
        monitors inside a maintenance window now, shown as `maintenance`."""
        m, r, i = monitors.c, monitor_rollups.c, incidents.c
        start_ms, end_ms = window_bounds("24h", self._clock())

        def hourly(column: Any) -> Any:
            return (
                select(func.sum(column))
                .where(
                    r.monitor_id == m.id,
                    r.period == "h",
                    r.start_ms >= start_ms,
                    r.start_ms <= end_ms,
                )
                .scalar_subquery()
            )

        query = (
            select(
                m.id,
                m.slug,
                m.name,
                m.group_name,
                m.state,
                m.paused,
                m.pending_outcome,
                m.pending_count,
                m.last_checked_at,
                m.incident_id,
                i.started_at,
                i.worst_state,
                hourly(r.checks).label("checks"),
                hourly(r.up + r.degraded).label("answered"),
            )
            .select_from(monitors.outerjoin(incidents, i.id == m.incident_id))
            .order_by(m.id)
        )
        with self._engine.connect() as connection:
            rows = [_summary(row, in_maintenance) for row in connection.execute(query)]
        return MonitorsSummaryPublic.model_validate({"monitors": rows})


def parse_cursor(cursor: str) -> tuple[int, int]:
    at_ms, _, last_id = cursor.partition(".")
    try:
        return int(at_ms), int(last_id)
    except ValueError:
        raise ValueError(f"not a cursor this API gave: {cursor!r}") from None


def _result(row: Row[Any]) -> MonitorResultPublic:
    return MonitorResultPublic(
        at=from_ms(row.at_ms),
        outcome=CODE_OUTCOME[row.outcome],
        status_code=row.status,
        latency_ms=_ms(row.latency_us),
        timings_ms=PhasesMs(
            dns=_ms(row.dns_us),
            connect=_ms(row.connect_us),
            tls=_ms(row.tls_us),
            ttfb=_ms(row.ttfb_us),
            transfer=_ms(row.transfer_us),
        ),
        error_kind=row.error_kind,
        detail=public_result(row.detail),
    )


def _incident(row: Row[Any]) -> IncidentPublic:
    ended = row.ended_at
    return IncidentPublic(
        id=row.id,
        monitor_id=row.monitor_id,
        started_at=row.started_at,
        ended_at=ended,
        duration_s=None if ended is None else (ended - row.started_at).total_seconds(),
        worst_state=row.worst_state,
        first_result=public_result(row.first_result),
        events=[
            IncidentEvent(at=e["at"], from_state=e["from"], to_state=e["to"]) for e in row.events
        ],
    )


def _latency(totals: dict[str, Any], histograms: Sequence[str]) -> LatencyPublic:
    count = int(totals["latency_count"])
    low, high = totals["latency_min_us"], totals["latency_max_us"]
    if count == 0 or low is None or high is None:
        return LatencyPublic(count=0)
    counts = buckets.merge(json.loads("[" + ",".join(histograms) + "]"))
    return LatencyPublic(
        count=count,
        mean_ms=round(int(totals["latency_sum_us"]) / count / 1000, 3),
        min_ms=low / 1000,
        max_ms=high / 1000,
        p50_ms=_ms(buckets.percentile(counts, 0.50, low, high)),
        p95_ms=_ms(buckets.percentile(counts, 0.95, low, high)),
        p99_ms=_ms(buckets.percentile(counts, 0.99, low, high)),
    )


def _summary(row: Row[Any], in_maintenance: Collection[int]) -> dict[str, Any]:
    incident = None
    if row.incident_id is not None and row.started_at is not None:
        incident = {
            "id": row.incident_id,
            "started_at": row.started_at,
            "worst_state": row.worst_state,
        }
    return {
        "id": row.id,
        "slug": row.slug,
        "name": row.name,
        "group": row.group_name,
        "state": MonitorState.MAINTENANCE.value if row.id in in_maintenance else row.state,
        "paused": row.paused,
        "pending_outcome": row.pending_outcome,
        "pending_count": row.pending_count,
        "uptime_24h_pct": _pct(int(row.answered or 0), int(row.checks or 0)),
        "last_checked_at": row.last_checked_at,
        "incident": incident,
    }
