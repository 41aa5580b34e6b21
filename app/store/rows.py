"""The durable store's statements: a job and its results as rows, and the reads that serve
jobs no longer in memory. Each write is a function of a Connection, run by the writer thread
in its batch; each read takes a connection of its own from the pool, never the store's lock.

A page is a range of `seq` through ix_results_job_id_seq, however deep the offset; a list
is a range of ix_jobs_created_at (or ix_jobs_status_created_at with a status filter).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, and_, delete, func, insert, select, true, update
from sqlalchemy.sql.elements import ColumnElement

from app.db.schema import job_urls, jobs, results
from app.schemas.jobs import CheckOptionsPublic, JobStatus
from app.store.base import JobFilter, StoredResult

_CANCELLED = "cancelled"
_INTERRUPTED = "interrupted"
# The owner of a cluster's jobs (app/cluster/jobs.py): no process, so no process's death
# makes them orphans; the task queue re-runs what a dead worker left.
CLUSTER_OWNER = "cluster"


def where_clause(where: JobFilter) -> ColumnElement[bool]:
    clauses: list[ColumnElement[bool]] = []
    if where.status is not None:
        clauses.append(jobs.c.status == where.status.value)
    if where.created_since is not None:
        clauses.append(jobs.c.created_at >= where.created_since)
    if where.created_until is not None:
        clauses.append(jobs.c.created_at < where.created_until)
    return and_(true(), *clauses)


# --- writes (run by the writer thread) ------------------------------------------------------
def new_job(total: int, options: CheckOptionsPublic, duplicates_removed: int = 0) -> dict[str, Any]:
    """A new job's header fields, `queued`, with a fresh id: what insert_job keeps (one
    process's store and a cluster's admission both make jobs this way)."""
    return {
        "id": uuid.uuid4().hex,
        "status": JobStatus.QUEUED,
        "total": total,
        "duplicates_removed": duplicates_removed,
        "options": options,
        "created_at": datetime.now(UTC),
    }


def insert_job(fields: dict[str, Any], urls: Sequence[str], owner: str) -> Any:
    """The write that keeps a new job: its row, then its URLs in one executemany."""
    row = {
        "id": fields["id"],
        "status": fields["status"].value,
        "options": fields["options"].model_dump(mode="json"),
        "total": fields["total"],
        "duplicates_removed": fields["duplicates_removed"],
        "created_at": fields["created_at"],
        "completed": 0,
        "up": 0,
        "degraded": 0,
        "down": 0,
        "errors": {},
        "cancel_requested": False,
        "interrupted": False,
        "owner": owner,
    }
    url_rows = [{"job_id": fields["id"], "idx": i, "url": url} for i, url in enumerate(urls)]

    def write(connection: Connection) -> None:
        connection.execute(insert(jobs), [row])
        if url_rows:
            connection.execute(insert(job_urls), url_rows)

    return write


def delete_job(job_id: str) -> Any:
    """The job's row, and with it (ON DELETE CASCADE) its URLs and results."""

    def write(connection: Connection) -> None:
        connection.execute(delete(jobs).where(jobs.c.id == job_id))

    return write


def result_row(job_id: str, index: int, seq: int, stored: StoredResult) -> dict[str, Any]:
    return {
        "job_id": job_id,
        "idx": index,
        "seq": seq,
        "ok": stored.ok,
        "outcome": outcome(stored.ok, stored.degraded),
        "error_kind": stored.error_kind,
        "body": stored.json,
    }


def outcome(ok: bool, degraded: bool) -> str:
    return "degraded" if degraded else "up" if ok else "down"


def mark_started(job_id: str, started_at: datetime) -> Any:
    def write(connection: Connection) -> None:
        connection.execute(
            update(jobs)
            .where(jobs.c.id == job_id, jobs.c.status == JobStatus.QUEUED.value)
            .values(status=JobStatus.RUNNING.value, started_at=started_at)
        )

    return write


def finish_job(fields: dict[str, Any]) -> Any:
    """The write of a job's final row: status, times and summary, as its header shows them."""
    summary = fields["summary"]
    values = {
        "status": fields["status"].value,
        "started_at": fields["started_at"],
        "finished_at": fields["finished_at"],
        "completed": fields["completed"],
        "up": summary["up"],
        "degraded": summary["degraded"],
        "down": summary["down"],
        "errors": summary["errors"],
        "interrupted": fields["status"] is JobStatus.INTERRUPTED,
    }

    def write(connection: Connection) -> None:
        connection.execute(update(jobs).where(jobs.c.id == fields["id"]).values(**values))

    return write


# --- reads ----------------------------------------------------------------------------------
_HEADER_COLUMNS = (
    jobs.c.id,
    jobs.c.status,
    jobs.c.options,
    jobs.c.total,
    jobs.c.duplicates_removed,
    jobs.c.created_at,
    jobs.c.started_at,
    jobs.c.finished_at,
    jobs.c.completed,
    jobs.c.up,
    jobs.c.degraded,
    jobs.c.down,
    jobs.c.errors,
)


def header_fields(row: Any) -> dict[str, Any]:
    """A jobs row as the fields app/store/views.py builds a header from (as JobRecord's)."""
    errors = dict(row.errors or {})
    return {
        "id": row.id,
        "status": JobStatus(row.status),
        "total": row.total,
        "completed": row.completed,
        "duplicates_removed": row.duplicates_removed,
        "summary": {
            "up": row.up,
            "degraded": row.degraded,
            "down": row.down,
            "cancelled": errors.get(_CANCELLED, 0),
            "interrupted": errors.get(_INTERRUPTED, 0),
            "errors": errors,
        },
        "options": CheckOptionsPublic.model_validate(row.options),
        "created_at": row.created_at,
        "started_at": row.started_at,
        "finished_at": row.finished_at,
    }


def read_header(connection: Connection, job_id: str) -> dict[str, Any] | None:
    row = connection.execute(select(*_HEADER_COLUMNS).where(jobs.c.id == job_id)).first()
    return None if row is None else header_fields(row)


def read_results(connection: Connection, job_id: str, start: int, stop: int) -> list[bytes]:
    """The bodies of results seq in [start, stop), in completion order."""
    rows = connection.execute(
        select(results.c.body)
        .where(results.c.job_id == job_id, results.c.seq >= start, results.c.seq < stop)
        .order_by(results.c.seq)
    )
    return [bytes(body) for (body,) in rows]


def read_results_from(
    connection: Connection, job_id: str, start: int, limit: int
) -> list[tuple[int, bytes]]:
    """At most `limit` results from seq `start` on, with their seq, in completion order: a
    stream's next read starts after the last seq, not after as many places as it got (a
    result the database lost leaves its seq missing)."""
    rows = connection.execute(
        select(results.c.seq, results.c.body)
        .where(results.c.job_id == job_id, results.c.seq >= start)
        .order_by(results.c.seq)
        .limit(limit)
    )
    return [(seq, bytes(body)) for seq, body in rows]


def read_list(
    connection: Connection, offset: int, limit: int, where: JobFilter
) -> tuple[list[dict[str, Any]], int]:
    """Jobs newest first, and how many match."""
    condition = where_clause(where)
    rows = connection.execute(
        select(*_HEADER_COLUMNS)
        .where(condition)
        .order_by(jobs.c.created_at.desc(), jobs.c.id.desc())
        .offset(offset)
        .limit(limit)
    )
    headers = [header_fields(row) for row in rows]
    count = connection.execute(select(func.count()).select_from(jobs).where(condition)).scalar()
    return headers, int(count or 0)


def count_by_status(connection: Connection) -> dict[str, int]:
    rows = connection.execute(select(jobs.c.status, func.count()).group_by(jobs.c.status))
    return {status: int(count) for status, count in rows}
