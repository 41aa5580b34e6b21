"""Rows for database tests: a write that adds a finished job with no URLs, a result row."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import Connection, insert

from app.db.schema import jobs

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def add_job(job_id: str) -> Callable[[Connection], str]:
    def write(connection: Connection) -> str:
        connection.execute(
            insert(jobs).values(
                id=job_id, status="done", options={}, total=0, created_at=T0, errors={}
            )
        )
        return job_id

    return write


def result_row(job_id: str, idx: int, body: bytes = b'{"ok": true}') -> dict[str, object]:
    return {
        "job_id": job_id,
        "idx": idx,
        "seq": idx,
        "ok": True,
        "outcome": "up",
        "error_kind": None,
        "body": body,
    }
