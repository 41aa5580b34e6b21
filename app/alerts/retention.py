"""Retention of the outbox: final rows (sent, failed, silenced) older than
`alert_retention_days`, with their attempts, in small batches through the writer (a retention
task of app/db/retention.py's loop). Rows not final are never deleted: they are owed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, delete, select

from app.alerts.outbox import FINAL
from app.db.retention import BATCH_ROWS, VACUUM_PAGES, Pruned, RunBatch, vacuum
from app.db.schema import alert_attempts, alert_outbox

MAX_BATCHES = 100_000  # a bound, not a target


def prune_outbox(connection: Connection, *, before: datetime, limit: int = BATCH_ROWS) -> Pruned:
    """Up to `limit` final outbox rows created before `before`, oldest first, and their
    attempts (deleted explicitly: SQLite enforces ON DELETE CASCADE only with foreign keys
    on, which a hand-opened connection may not have)."""
    o = alert_outbox.c
    ids = list(
        connection.execute(
            select(o.id)
            .where(o.created_at < before, o.status.in_(FINAL))
            .order_by(o.created_at)
            .limit(limit)
        ).scalars()
    )
    if not ids:
        return vacuum(connection, VACUUM_PAGES, Pruned())
    rows = connection.execute(
        delete(alert_attempts).where(alert_attempts.c.outbox_id.in_(ids))
    ).rowcount
    rows += connection.execute(delete(alert_outbox).where(o.id.in_(ids))).rowcount
    return vacuum(connection, VACUUM_PAGES, Pruned(rows=rows, more=len(ids) >= limit))


@dataclass(frozen=True, slots=True)
class AlertRetention:
    """A retention task (app.db.retention.RetentionTask): one round over the outbox."""

    days: float
    batch_rows: int = BATCH_ROWS

    def __call__(self, now: datetime, run: RunBatch) -> Pruned | None:
        before = now - timedelta(days=self.days)
        total = Pruned()
        for _ in range(MAX_BATCHES):
            done = run(lambda c: prune_outbox(c, before=before, limit=self.batch_rows))
            if done is None:
                return None
            total += done
            if not done.more:
                break
        return Pruned(total.jobs, total.rows, total.pages, False)
