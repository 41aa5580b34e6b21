"""Maintenance windows: when a monitor's alerts are silenced and its state shows `maintenance`.

A window is one-off (`starts_at` .. `ends_at`, UTC) or recurring (`weekdays`, Monday 0, a
local `start_time` "HH:MM" and `duration_s`, in the IANA `timezone`, so "Sundays 02:00 for
two hours in Europe/Paris" follows daylight saving time). It covers one monitor
(`monitor_id`), or every monitor of `match_group` and/or carrying all of `match_labels`; a
window that names none of them covers every monitor.

Pure functions over rows, so the outbox's transaction and the reads judge alike.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import Connection, select

from app.db.schema import maintenance_windows, monitors
from app.schemas.monitoring import MonitorState


@dataclass(frozen=True, slots=True)
class Window:
    id: int
    monitor_id: int | None
    match_group: str | None
    match_labels: Mapping[str, str]
    starts_at: datetime | None
    ends_at: datetime | None
    weekdays: tuple[int, ...]
    start_time: str | None
    duration_s: float | None
    timezone: str | None

    def covers(self, monitor_id: int, group: str | None, labels: Mapping[str, Any]) -> bool:
        if self.monitor_id is not None:
            return self.monitor_id == monitor_id
        if self.match_group is not None and self.match_group != group:
            return False
        return all(labels.get(name) == value for name, value in self.match_labels.items())

    def active_until(self, now: datetime) -> datetime | None:
        """The end of the occurrence `now` falls in; None when the window is not active."""
        if self.starts_at is not None and self.ends_at is not None:
            return self.ends_at if self.starts_at <= now < self.ends_at else None
        if not (self.weekdays and self.start_time and self.duration_s and self.timezone):
            return None
        zone = ZoneInfo(self.timezone)
        hours, minutes = (int(part) for part in self.start_time.split(":"))
        length = timedelta(seconds=self.duration_s)
        today = now.astimezone(zone).date()
        # An occurrence that began up to `duration` ago (days before today) may still run.
        for back in range(math.ceil(self.duration_s / 86_400) + 1):
            day: date = today - timedelta(days=back)
            if day.weekday() not in self.weekdays:
                continue
            start = datetime.combine(day, time(hours, minutes), tzinfo=zone).astimezone(UTC)
            if start <= now < start + length:
                return start + length
        return None


def check_window(
    starts_at: datetime | None,
    ends_at: datetime | None,
    weekdays: Sequence[int] | None,
    start_time: str | None,
    duration_s: float | None,
    timezone: str | None,
) -> str | None:
    """Why these fields make no window (a message), or None if they make one."""
    if starts_at is not None or ends_at is not None:
        if starts_at is None or ends_at is None:
            return "a one-off window needs both starts_at and ends_at"
        if ends_at <= starts_at:
            return "ends_at must be after starts_at"
        if weekdays or start_time or duration_s or timezone:
            return "a window is one-off (starts_at, ends_at) or recurring, not both"
        return None
    if not (weekdays and start_time and duration_s and timezone):
        return "a recurring window needs weekdays, start_time, duration_s and timezone"
    if any(not 0 <= day <= 6 for day in weekdays):
        return "weekdays are 0 (Monday) to 6 (Sunday)"
    try:
        hours, minutes = (int(part) for part in start_time.split(":"))
        time(hours, minutes)
    except ValueError:
        return f"start_time {start_time!r} is not HH:MM"
    if duration_s <= 0:
        return "duration_s must be positive"
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        return f"unknown time zone {timezone!r}"
    return None


def window_from(row: Any) -> Window:
    return Window(
        id=row.id,
        monitor_id=row.monitor_id,
        match_group=row.match_group,
        match_labels=row.match_labels or {},
        starts_at=row.starts_at,
        ends_at=row.ends_at,
        weekdays=tuple(row.weekdays or ()),
        start_time=row.start_time,
        duration_s=row.duration_s,
        timezone=row.timezone,
    )


_ALL = select(maintenance_windows)


def load(connection: Connection) -> list[Window]:
    """Every window (a short table: one row per rule of silence, not per monitor)."""
    return [window_from(row) for row in connection.execute(_ALL)]


def in_maintenance(
    windows: Iterable[Window],
    monitor_id: int,
    group: str | None,
    labels: Mapping[str, Any],
    now: datetime,
) -> bool:
    return any(
        w.covers(monitor_id, group, labels) and w.active_until(now) is not None for w in windows
    )


def covered_now(connection: Connection, now: datetime) -> set[int]:
    """The ids of monitors inside an active window at `now`: what reads show as
    `maintenance`. No active window (the usual case) costs one read of the windows."""
    active = [w for w in load(connection) if w.active_until(now) is not None]
    if not active:
        return set()
    rows = connection.execute(select(monitors.c.id, monitors.c.group_name, monitors.c.labels))
    return {
        row.id
        for row in rows
        if any(w.covers(row.id, row.group_name, row.labels or {}) for w in active)
    }


def shown_state(state: str, paused: bool, in_window: bool) -> str:
    """The state a read shows: `paused` and `maintenance` over the stored one (which the
    state machine goes on deciding underneath: a monitor still down when the window ends
    is alerted then)."""
    if paused:
        return MonitorState.PAUSED.value
    return MonitorState.MAINTENANCE.value if in_window else state
