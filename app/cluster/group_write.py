"""The batches of one cluster job, kept in ONE statement that is its own transaction, so the
job's row lock is held only while PostgreSQL runs it, never across a round trip to a client
(a worker's thread waits for the GIL after every reply: 30 ms a transaction in bench S3).

The guarantees of app/cluster/batch.write_batch, in that statement: an UPDATE of the job's
row (taking its lock; only while the job is queued or running) adds the counts by the rules
of JobRecord.add and, with its last result, gives the final status (done, or cancelled if a
cancel was asked); the INSERT gives the rows the next dense `seq` values from the row's
`completed`; `pg_notify` on `urlhealth_jobs` (app/cluster/wakeups.py's channel) is delivered
at its commit. The lock is released at that commit, so the next writer's seq values are
committed after these: a reader never sees seq N+1 before seq N.

The indexes already kept are read before, by another statement. A result a concurrent
writer keeps between that read and this statement fails it on the primary key (job_id, idx):
nothing of it is kept (no seq used, no count added) and IntegrityError is raised; the caller
runs it again, and the read then sees that result.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, select, text

from app.cluster.batch import (
    JOBS_CHANNEL,
    Written,
    count_result,
    result_rows,
    span,
    without_kept,
)
from app.db.schema import jobs
from app.schemas.jobs import JobStatus
from app.store.base import StoredResult

# Rows per statement: a larger group (the database was away a while) is kept in several,
# each atomic and dense on its own.
MAX_ROWS = 1000

_ERRORS_ADDED = """,
        errors = (
            SELECT json_object_agg(key, n ORDER BY pos)
            FROM (
                SELECT key, sum(n) AS n, min(o) AS pos FROM (
                    SELECT key, value::int AS n, o FROM json_each_text(
                        CASE WHEN json_typeof(jobs.errors) = 'object' THEN jobs.errors
                        ELSE '{}'::json END
                    ) WITH ORDINALITY AS had(key, value, o)
                    UNION ALL
                    SELECT key, value::int, 1000000 + o FROM json_each_text(
                        CAST(:errors AS json)
                    ) WITH ORDINALITY AS added(key, value, o)
                ) AS each_kind GROUP BY key
            ) AS summed
        )"""

_STATEMENT = """
WITH job AS (
    UPDATE jobs SET
        completed = completed + :n,
        up = up + :up,
        degraded = degraded + :degraded,
        down = down + :down,
        started_at = coalesce(started_at, :now),
        status = CASE WHEN completed + :n < total THEN 'running'
            WHEN cancel_requested THEN 'cancelled' ELSE 'done' END,
        finished_at = CASE WHEN completed + :n < total THEN finished_at ELSE :now END{errors}
    WHERE id = :job_id AND status IN ('queued', 'running')
    RETURNING completed - :n AS base, cancel_requested, status
), kept AS (
    INSERT INTO results (job_id, idx, seq, ok, outcome, error_kind, body)
    SELECT :job_id, v.idx, job.base + v.o - 1, v.ok, v.outcome, v.error_kind, v.body
    FROM job, unnest(
        CAST(:idx AS integer[]), CAST(:ok AS boolean[]), CAST(:outcome AS varchar[]),
        CAST(:error_kind AS varchar[]), CAST(:body AS bytea[])
    ) WITH ORDINALITY AS v(idx, ok, outcome, error_kind, body, o)
), woken AS (
    SELECT pg_notify(:channel, :job_id) FROM job
)
SELECT job.cancel_requested, job.status, (SELECT count(*) FROM woken) AS woken FROM job
"""
_PLAIN = text(_STATEMENT.format(errors=""))
_WITH_ERRORS = text(_STATEMENT.format(errors=_ERRORS_ADDED))


def write_group(
    connection: Connection, job_id: str, batches: Sequence[Sequence[tuple[int, StoredResult]]]
) -> Written | None:
    """Keep several batches of one job; None if the job is gone. `connection` must be in
    AUTOCOMMIT: each statement is its own transaction. Raises IntegrityError (see above)."""
    wanted: dict[int, StoredResult] = {}
    for batch in batches:
        for index, stored in batch:
            wanted.setdefault(index, stored)  # the same index twice: the first is kept
    if wanted:
        wanted = without_kept(connection, job_id, wanted, [span(b) for b in batches if b])
    rows = result_rows(job_id, wanted)
    written: Written | None = None
    kept = 0
    for start in range(0, len(rows), MAX_ROWS):
        found = _keep(connection, job_id, rows[start : start + MAX_ROWS])
        if found is None:  # gone, or final: nothing more is kept
            break
        kept += found.kept
        written = Written(kept, found.cancel_requested, found.status)
    if written is not None:
        return written
    job = connection.execute(
        select(jobs.c.status, jobs.c.cancel_requested).where(jobs.c.id == job_id)
    ).first()
    if job is None:
        return None
    return Written(kept, job.cancel_requested, JobStatus(job.status))


def _keep(connection: Connection, job_id: str, rows: list[dict[str, Any]]) -> Written | None:
    counts = {"up": 0, "degraded": 0, "down": 0}
    errors: dict[str, int] = {}
    for row in rows:
        count_result(row["ok"], row["outcome"], row["error_kind"], counts, errors)
    parameters: dict[str, Any] = {
        "job_id": job_id,
        "n": len(rows),
        "now": datetime.now(UTC),
        "channel": JOBS_CHANNEL,
        **counts,
        **{name: [row[name] for row in rows] for name in _COLUMNS},
    }
    statement = _PLAIN
    if errors:
        parameters["errors"] = json.dumps(errors)
        statement = _WITH_ERRORS
    job = connection.execute(statement, parameters).first()
    if job is None:
        return None
    return Written(len(rows), job.cancel_requested, JobStatus(job.status))


_COLUMNS = ("idx", "ok", "outcome", "error_kind", "body")
