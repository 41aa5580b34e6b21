"""Writing the outbox: one row per channel for each confirmed state change, in the change's
own transaction (the recorder's `on_transition` hook); app/alerts/ticker.py adds reminders
and lets out what a maintenance window held.

Rows are inserted "if absent" on the unique (channel_id, key): a replayed transaction, a
second replica's tick or a tick racing the transition add nothing twice.

A change inside a maintenance window is written `held` (visible in /v1/alerts, not sent).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Row, bindparam, insert, select, text

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


MONITOR = select(
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
_MONITOR_BY_ID = MONITOR.where(monitors.c.id == bindparam("m_id"))


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


def test_message(channel_name: str, at: datetime) -> dict[str, Any]:
    """A channel's test message: an AlertMessage of kind `test` about no monitor."""
    return {
        "kind": "test",
        "monitor_slug": None,
        "monitor_name": None,
        "url": None,
        "from_state": None,
        "to_state": None,
        "at": at.isoformat(),
        "since": None,
        "incident_id": None,
        "summary": f"A test message from urlhealth to the channel {channel_name!r}",
        "link": None,
    }
