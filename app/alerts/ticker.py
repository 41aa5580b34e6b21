"""The outbox's periodic work (run by the delivery thread every scan, through the writer):
reminders while a monitor stays down, and the end of maintenance windows.

When a window ends, a held row is sent only if it is still true: a `down`/`degraded` whose
monitor is still in that state since the same time, a `resolved` whose incident's alert went
out; the rest become `silenced` (so is everything held for a monitor deleted meanwhile).
Every replica may tick: rows are keyed, so a reminder is written once.
"""

from __future__ import annotations

import math
from datetime import datetime

from sqlalchemy import Connection, and_, select, update

from app.alerts import maintenance, rules
from app.alerts.outbox import (
    ALERTING,
    FAILED,
    HELD,
    MONITOR,
    PENDING,
    SENDING,
    SENT,
    SILENCED,
    payload,
    write,
)
from app.db.schema import alert_outbox, monitors
from app.monitors.recorder import to_ms


def tick(connection: Connection, now: datetime) -> int:
    """Reminders due and held rows let out; how many rows became pending."""
    windows = maintenance.load(connection)
    rule_rows = rules.load(connection)
    return _remind(connection, now, windows, rule_rows) + _release(connection, now, windows)


def _remind(
    connection: Connection,
    now: datetime,
    windows: list[maintenance.Window],
    rule_rows: list[rules.RuleRow],
) -> int:
    """A reminder per channel every reminder_interval_s while a monitor stays down: the N-th
    is due N intervals after the state began, and keyed by N (so one is written once; a
    missed one is not made up: the latest due is the one sent)."""
    added = 0
    down = MONITOR.where(monitors.c.state == rules.DOWN, monitors.c.paused.is_(False))
    for monitor in connection.execute(down):
        rule = rules.resolve(rule_rows, monitor.group_name, monitor.labels or {}, monitor.alerts)
        if rule is None or not rule.on_down or not rule.reminder_interval_s:
            continue
        if monitor.state_since is None:
            continue
        n = math.floor((now - monitor.state_since).total_seconds() / rule.reminder_interval_s)
        if n < 1:
            continue
        labels = monitor.labels or {}
        if maintenance.in_maintenance(windows, monitor.id, monitor.group_name, labels, now):
            continue
        message = payload(monitor, "reminder", rules.DOWN, rules.DOWN)
        message["at"] = now.isoformat()
        since_ms = to_ms(monitor.state_since)
        added += write(
            connection, rule, monitor.id, since_ms, f"reminder-{n}", message, PENDING, now
        )
    return added


def _release(connection: Connection, now: datetime, windows: list[maintenance.Window]) -> int:
    o = alert_outbox.c
    held = connection.execute(
        select(
            o.id.label("outbox_id"),
            o.channel_id,
            o.incident_id.label("outbox_incident_id"),
            o.kind,
            o.payload,
            *MONITOR.selected_columns,
        )
        .outerjoin(monitors, monitors.c.id == o.monitor_id)
        .where(o.status == HELD)
    ).all()
    released = 0
    for row in held:
        labels = row.labels or {}
        gone = row.id is None  # the monitor was deleted: nothing left to tell
        if not gone and maintenance.in_maintenance(windows, row.id, row.group_name, labels, now):
            continue
        still = not gone and row.state == row.payload["to_state"] and row.state_since is not None
        still = still and row.state_since.isoformat() == row.payload["since"]
        if still and row.kind == "resolved":
            still = _alerted(connection, row.channel_id, row.outbox_incident_id)
        status = PENDING if still else SILENCED
        connection.execute(
            update(alert_outbox)
            .where(o.id == row.outbox_id, o.status == HELD)
            .values(status=status, next_attempt_at=now)
        )
        released += status == PENDING
    return released


def _alerted(connection: Connection, channel_id: int, incident_id: int | None) -> bool:
    """Whether the incident's down or degraded reached (or is on its way to) the channel."""
    if incident_id is None:
        return False
    o = alert_outbox.c
    found = connection.execute(
        select(o.id)
        .where(
            and_(o.channel_id == channel_id, o.incident_id == incident_id),
            o.kind.in_(ALERTING),
            o.status.in_((PENDING, SENDING, SENT, FAILED)),
        )
        .limit(1)
    ).first()
    return found is not None
