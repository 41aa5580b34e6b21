"""Writing the outbox: one row per channel for each confirmed state change, in the change's
own transaction (the recorder's `on_transition` hook), plus the periodic `tick` that writes
reminders and lets out what a maintenance window held.

Rows are inserted "if absent" on the unique (channel_id, key): a replayed transaction, a
second replica's tick or a tick racing the transition add nothing twice.

A change inside a maintenance window is written `held` (visible in /v1/alerts, not sent). When
the window ends, `tick` sends a held row only if it is still true: a `down`/`degraded` whose
monitor is still in that state since the same time, a `resolved` whose incident was alerted;
the rest become `silenced`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Row, and_, bindparam, insert, select, text, update

from app.alerts import maintenance, rules
from app.alerts.rules import Rule, alert_key
from app.db.schema import alert_outbox, channels, incidents, monitors
from app.monitors.recorder import Transition, to_ms
from app.monitors.redact import public_url

PENDING, SENDING, SENT, FAILED = "pending", "sending", "sent", "failed"
HELD, SILENCED = "held", "silenced"
FINAL = (SENT, FAILED, SILENCED)
ALERTING = ("down", "degraded")

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


_MONITOR = select(
    monitors.c.id,
    monitors.c.slug,
    monitors.c.name,
    monitors.c.url,
    monitors.c.group_name,
    monitors.c.labels,
    monitors.c.alerts,
    monitors.c.state,
    monitors.c.state_since,
    monitors.c.incident_id,
)


_CHANNEL_IDS = select(channels.c.id).where(channels.c.slug.in_(bindparam("slugs", expanding=True)))
_WORST = select(incidents.c.worst_state).where(incidents.c.id == bindparam("i_id"))
_MONITOR_BY_ID = _MONITOR.where(monitors.c.id == bindparam("m_id"))


class AlertHook:
    """The recorder's `on_transition`: decides and writes the change's outbox rows, then
    nudges the delivery thread (`notify`, set when it starts). The nudge may come before the
    commit: the delivery claims through the same writer, so its claim runs after it."""

    def __init__(self, clock: Clock = utcnow) -> None:
        self._clock = clock
        self.notify: Callable[[], None] = lambda: None

    def __call__(self, connection: Connection, transition: Transition) -> None:
        monitor = connection.execute(_MONITOR_BY_ID, {"m_id": transition.monitor_id}).one()
        rule = rules.resolve(
            rules.load(connection), monitor.group_name, monitor.labels or {}, monitor.alerts
        )
        if rule is None:
            return
        worst = None
        if transition.incident_id is not None:
            worst = connection.execute(_WORST, {"i_id": transition.incident_id}).scalar()
        kind = rules.kind_of(rule, transition.from_state, transition.to_state, worst)
        if kind is None:
            return
        held = maintenance.in_maintenance(
            maintenance.load(connection),
            monitor.id,
            monitor.group_name,
            monitor.labels or {},
            transition.at,
        )
        message = payload(monitor, kind, transition.from_state, transition.to_state)
        message.update(
            at=transition.at.isoformat(),
            since=transition.since.isoformat(),
            incident_id=transition.incident_id,
        )
        what = transition.to_state
        written = write(
            connection,
            rule,
            monitor.id,
            to_ms(transition.since),
            what,
            message,
            HELD if held else PENDING,
            self._clock(),
        )
        if written and not held:
            self.notify()


def payload(monitor: Row[Any], kind: str, from_state: str, to_state: str) -> dict[str, Any]:
    """An AlertMessage's fields, but `key` (per channel) and the times (set by the caller)."""
    since = monitor.state_since.isoformat() if monitor.state_since else None
    return {
        "kind": kind,
        "monitor_slug": monitor.slug,
        "monitor_name": monitor.name,
        "url": public_url(monitor.url),  # the URL is a secret: never its credentials or query
        "from_state": from_state,
        "to_state": to_state,
        "at": None,
        "since": since,
        "incident_id": monitor.incident_id,
        "summary": _summary(monitor.name, kind, from_state, to_state),
        "link": None,
    }


def _summary(name: str, kind: str, from_state: str, to_state: str) -> str:
    if kind == "resolved":
        return f"{name} is up again (was {from_state})"
    if kind == "reminder":
        return f"{name} is still {to_state}"
    return f"{name} is {to_state} (was {from_state})"


def write(
    connection: Connection,
    rule: Rule,
    monitor_id: int,
    since_ms: int,
    what: str,
    message: Mapping[str, Any],
    status: str,
    now: datetime,
) -> int:
    """One row per channel of `rule` that exists, each with its key; rows whose key is there
    already are skipped. How many were added."""
    found = connection.execute(_CHANNEL_IDS, {"slugs": list(rule.channels)}).scalars()
    rows = []
    for channel_id in found:
        key = alert_key(monitor_id, since_ms, what, channel_id)
        rows.append(
            {
                "channel_id": channel_id,
                "monitor_id": monitor_id,
                "incident_id": message.get("incident_id"),
                "key": key,
                "kind": message["kind"],
                "payload": {**message, "key": key},
                "status": status,
                "attempts": 0,
                "next_attempt_at": now,
                "created_at": now,
            }
        )
    return insert_absent(connection, rows)


_COLUMNS = (
    "channel_id",
    "monitor_id",
    "incident_id",
    "key",
    "kind",
    "payload",
    "status",
    "attempts",
    "next_attempt_at",
    "created_at",
)
# ON CONFLICT DO NOTHING spelled the same on SQLite and PostgreSQL, as one text statement:
# the dialects' own insert constructs are not cacheable here, and compiling one per row
# cost most of the hook's time (~1 ms a transition, measured by bench/alerts.py).
_INSERT_ABSENT = text(
    f"INSERT INTO alert_outbox ({', '.join(_COLUMNS)}) "
    f"VALUES ({', '.join(':' + name for name in _COLUMNS)}) "
    "ON CONFLICT (channel_id, key) DO NOTHING RETURNING id"
).bindparams(*(bindparam(name, type_=alert_outbox.c[name].type) for name in _COLUMNS))


def insert_absent(connection: Connection, rows: Sequence[dict[str, Any]]) -> int:
    """Insert the rows whose (channel_id, key) is not there yet; how many were added."""
    added = 0
    for row in rows:  # one statement each: RETURNING tells which were new (rowcount may not)
        added += len(connection.execute(_INSERT_ABSENT, row).all())
    return added


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
    down = _MONITOR.where(monitors.c.state == rules.DOWN, monitors.c.paused.is_(False))
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
            *_MONITOR.selected_columns,
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


def add_test(
    connection: Connection, channel_id: int, key: str, message: dict[str, Any], owner: str
) -> int:
    """A channel's test message, as a row claimed by its sender at once (so its attempt shows
    like any other's, and no delivery thread takes it); its id."""
    now = utcnow()
    return int(
        connection.execute(
            insert(alert_outbox)
            .values(
                channel_id=channel_id,
                key=key,
                kind="test",
                payload={**message, "key": key},
                status=SENDING,
                attempts=1,
                next_attempt_at=now,
                claimed_by=owner,
                claimed_at=now,
                created_at=now,
            )
            .returning(alert_outbox.c.id)
        ).scalar_one()
    )
