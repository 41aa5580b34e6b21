"""The outbox as /v1/alerts shows it: newest first, filtered by status, channel or monitor,
each alert with its delivery attempts."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import Connection, select

from app.db.schema import alert_attempts, alert_outbox, channels, monitors
from app.schemas.alerts import AlertPublic, AttemptPublic

OUT = alert_outbox.c


def alerts(
    connection: Connection,
    *,
    status: str | None,
    channel_id: int | None,
    monitor_id: int | None,
    offset: int,
    limit: int,
) -> list[AlertPublic]:
    query = (
        select(alert_outbox, channels.c.slug.label("channel"), monitors.c.slug.label("monitor"))
        .join(channels, channels.c.id == OUT.channel_id)
        .outerjoin(monitors, monitors.c.id == OUT.monitor_id)
        .order_by(OUT.id.desc())
        .offset(offset)
        .limit(limit)
    )
    if status is not None:
        query = query.where(OUT.status == status)
    if channel_id is not None:
        query = query.where(OUT.channel_id == channel_id)
    if monitor_id is not None:
        query = query.where(OUT.monitor_id == monitor_id)
    rows = list(connection.execute(query))
    tried: dict[int, list[AttemptPublic]] = defaultdict(list)
    if rows:
        a = alert_attempts.c
        found = connection.execute(
            select(alert_attempts)
            .where(a.outbox_id.in_([r.id for r in rows]))
            .order_by(a.outbox_id, a.id)
        )
        for t in found:
            tried[t.outbox_id].append(
                AttemptPublic(
                    at=t.at,
                    ok=t.ok,
                    status_code=t.status_code,
                    error=t.error,
                    duration_ms=t.duration_ms,
                )
            )
    return [_alert(row, tried[row.id]) for row in rows]


def _alert(row: Any, tried: list[AttemptPublic]) -> AlertPublic:
    payload = row.payload or {}
    transition = None
    if payload.get("from_state") and payload.get("to_state"):
        transition = f"{payload['from_state']} -> {payload['to_state']}"
    return AlertPublic(
        id=row.id,
        key=row.key,
        kind=row.kind,
        monitor_id=row.monitor_id,
        monitor_slug=row.monitor or payload.get("monitor_slug"),
        transition=transition,
        channel=row.channel,
        status=row.status,
        attempts=row.attempts,
        last_error=row.last_error,
        created_at=row.created_at,
        next_attempt_at=row.next_attempt_at if row.status == "pending" else None,
        sent_at=row.sent_at,
        tried=tried,
    )
