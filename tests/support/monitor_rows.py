"""Monitor rows written straight into the `monitors` table, for tests of what reads them
(metrics, history) before the monitors' own repository writes them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, insert, update

from app.db.schema import monitors
from app.db.writer import Writer

T0 = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def monitor_row(
    monitor_id: int,
    url: str,
    last_result: bytes | None = None,
    *,
    slug: str | None = None,
    group: str | None = None,
    paused: bool = False,
    state: str = "unknown",
    checked_at: datetime | None = None,
) -> dict[str, Any]:
    slug = slug or f"monitor-{monitor_id}"
    return {
        "id": monitor_id,
        "slug": slug,
        "name": slug,
        "source": "api",
        "url": url,
        "options": {},
        "interval_s": 60.0,
        "group_name": group,
        "labels": {},
        "paused": paused,
        "failure_threshold": 3,
        "success_threshold": 2,
        "created_at": T0,
        "updated_at": T0,
        "generation": 1,
        "state": state,
        "pending_count": 0,
        "skipped": 0,
        "last_result": last_result,
        "last_checked_at": checked_at if checked_at else (T0 if last_result else None),
    }


def insert_monitors(writer: Writer, rows: Sequence[dict[str, Any]], timeout: float = 30) -> None:
    def write(connection: Connection) -> None:
        connection.execute(insert(monitors), list(rows))

    writer.submit(write).result(timeout)


def update_monitor(writer: Writer, monitor_id: int, timeout: float = 30, **values: Any) -> None:
    def write(connection: Connection) -> None:
        connection.execute(update(monitors).where(monitors.c.id == monitor_id).values(**values))

    writer.submit(write).result(timeout)
