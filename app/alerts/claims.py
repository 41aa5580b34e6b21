"""The delivery's database steps (healthchecks.io's sendalerts, with a lease): find due rows,
CLAIM them with a conditional UPDATE, and record each send's end.

A row is due when `pending` and its `next_attempt_at` has come, or `sending` under a claim
older than the lease (its sender was killed mid-send: the row is sent again, same key). The
claim sets status `sending`, `claimed_by` and `claimed_at` only where the row is STILL due,
and returns the rows it matched: of two deliverers (two replicas) picking one row, one
matches it, the other gets nothing — on PostgreSQL the second UPDATE waits for the first's
row lock and re-checks the condition against the committed row. Sends happen after the
claim's transaction, outside any lock; `finish` then records the attempt and marks the row
sent, due again after a backoff, or failed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, insert, or_, select, update

from app.alerts.outbox import FAILED, PENDING, SENDING, SENT
from app.db.schema import alert_attempts, alert_outbox, channels

C = alert_outbox.c


@dataclass(frozen=True, slots=True)
class Claimed:
    id: int
    channel_id: int
    key: str
    kind: str
    payload: dict[str, Any]
    attempts: int  # this one included
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Done:
    """One claimed row's send, as recorded."""

    id: int
    at: datetime
    ok: bool
    retryable: bool
    status_code: int | None
    error: str | None
    duration_ms: float
    retry_at: datetime | None  # when to try again, if it may be tried again


def _due(now: datetime, lease_s: float) -> Any:
    return or_(
        and_(C.status == PENDING, C.next_attempt_at <= now),
        and_(C.status == SENDING, C.claimed_at < now - timedelta(seconds=lease_s)),
    )


def due(connection: Connection, now: datetime, lease_s: float, limit: int) -> list[Any]:
    """Up to `limit` due rows (id, channel_id), the longest due first: a read, no claim."""
    return list(
        connection.execute(
            select(C.id, C.channel_id)
            .where(_due(now, lease_s))
            .order_by(C.next_attempt_at, C.id)
            .limit(limit)
        )
    )


def claim(
    connection: Connection, ids: Sequence[int], owner: str, now: datetime, lease_s: float
) -> list[Claimed]:
    """Claim those of `ids` that are still due; the rows this UPDATE matched."""
    if not ids:
        return []
    rows = connection.execute(
        update(alert_outbox)
        .where(C.id.in_(ids), _due(now, lease_s))
        .values(status=SENDING, claimed_by=owner, claimed_at=now, attempts=C.attempts + 1)
        .returning(C.id, C.channel_id, C.key, C.kind, C.payload, C.attempts, C.created_at)
    ).all()
    return sorted((Claimed(*row) for row in rows), key=lambda c: c.id)


def finish(connection: Connection, owner: str, done: Sequence[Done]) -> None:
    """Record each attempt; mark its row sent, pending again (retry_at) or failed. A row
    whose claim another deliverer took over meanwhile (our lease ran out) keeps its state:
    the attempt is recorded all the same."""
    if not done:
        return
    connection.execute(
        insert(alert_attempts),
        [
            {
                "outbox_id": d.id,
                "at": d.at,
                "ok": d.ok,
                "status_code": d.status_code,
                "error": d.error,
                "duration_ms": d.duration_ms,
            }
            for d in done
        ],
    )
    for d in done:
        values: dict[str, Any] = {"claimed_by": None, "claimed_at": None}
        if d.ok:
            values.update(status=SENT, sent_at=d.at, last_error=None)
        elif d.retry_at is not None:
            values.update(status=PENDING, next_attempt_at=d.retry_at, last_error=d.error)
        else:
            values.update(status=FAILED, last_error=d.error)
        connection.execute(
            update(alert_outbox)
            .where(C.id == d.id, C.status == SENDING, C.claimed_by == owner)
            .values(**values)
        )


def release(connection: Connection, owner: str, ids: Sequence[int]) -> int:
    """Give back claims never sent (stopping): pending again, the claim's attempt undone."""
    if not ids:
        return 0
    return connection.execute(
        update(alert_outbox)
        .where(C.id.in_(ids), C.status == SENDING, C.claimed_by == owner)
        .values(status=PENDING, claimed_by=None, claimed_at=None, attempts=C.attempts - 1)
    ).rowcount


def next_due(connection: Connection) -> datetime | None:
    """When the soonest pending row falls due (the index on status, next_attempt_at)."""
    return connection.execute(
        select(C.next_attempt_at).where(C.status == PENDING).order_by(C.next_attempt_at).limit(1)
    ).scalar()


def channel_configs(connection: Connection, ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    rows = connection.execute(
        select(channels.c.id, channels.c.config).where(channels.c.id.in_(ids))
    )
    return {row.id: row.config for row in rows}
