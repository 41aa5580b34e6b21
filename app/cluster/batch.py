"""A cluster job's results, written a batch at a time by whichever replica ran them, and
what a chunk reads of its job.

`write_batch` is one transaction per batch (the API's cancel writes this way; the workers'
chunks write through app/cluster/results_writer.py, in one statement of
app/cluster/group_write.py, with the same guarantees): it locks the job's row, so two
writers of one job take turns; keeps only the results of indexes that have none
yet, so a chunk run again after its worker died never writes a URL twice; gives them the next
dense `seq` values (pages and streams read `seq` ranges); adds them to the summary counts by
the rules of JobRecord.add; and, with the job's last result, gives it its final status as
single-process mode does (done, or cancelled if a cancel was asked). Streams on every replica
are woken at commit (NOTIFY on `urlhealth_jobs`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Row, and_, insert, or_, select, update

from app.cluster.wakeups import notify
from app.db.schema import UNFINISHED, job_urls, jobs, results
from app.schemas.jobs import JobStatus
from app.store.base import StoredResult
from app.store.rows import result_row

JOBS_CHANNEL = "urlhealth_jobs"
_NOT_EVIDENCE = ("cancelled", "interrupted")  # never ran: no up, degraded or down


@dataclass(frozen=True, slots=True)
class Written:
    """What a batch found and did: how many results it kept, whether a cancel was asked,
    and the job's status after it (final once its last result is in)."""

    kept: int
    cancel_requested: bool
    status: JobStatus


def mark_running(connection: Connection, job_id: str) -> None:
    """queued -> running, once, with the time it started."""
    changed = connection.execute(
        update(jobs)
        .where(jobs.c.id == job_id, jobs.c.status == JobStatus.QUEUED.value)
        .values(status=JobStatus.RUNNING.value, started_at=datetime.now(UTC))
    ).rowcount
    if changed:
        notify(connection, JOBS_CHANNEL, job_id)


def write_batch(
    connection: Connection, job_id: str, batch: Sequence[tuple[int, StoredResult]]
) -> Written | None:
    """Keep `batch` ((index, result) pairs) for the job; None if the job is gone. Takes the
    job's row lock first, so it never fails on a concurrent writer of the same indexes (the
    API's cancel writes this way; the workers' chunks through ResultsWriter, in one
    statement: app/cluster/group_write.py)."""
    job = _lock_job(connection, job_id)
    if job is None:
        return None
    if JobStatus(job.status).final or not batch:
        return _unchanged(job)
    wanted = without_kept(connection, job_id, dict(batch), [span(batch)])
    if not wanted:
        return _unchanged(job)
    notify(connection, JOBS_CHANNEL, job_id)
    return _keep(connection, job_id, job, result_rows(job_id, wanted))


def _lock_job(connection: Connection, job_id: str) -> Row[Any] | None:
    return connection.execute(
        select(
            jobs.c.status,
            jobs.c.total,
            jobs.c.completed,
            jobs.c.up,
            jobs.c.degraded,
            jobs.c.down,
            jobs.c.errors,
            jobs.c.cancel_requested,
            jobs.c.started_at,
        )
        .where(jobs.c.id == job_id)
        .with_for_update()
    ).first()


def _unchanged(job: Row[Any]) -> Written:
    return Written(0, job.cancel_requested, JobStatus(job.status))


def span(batch: Sequence[tuple[int, StoredResult]]) -> tuple[int, int]:
    indexes = [index for index, _ in batch]
    return min(indexes), max(indexes)


def without_kept(
    connection: Connection,
    job_id: str,
    wanted: dict[int, StoredResult],
    spans: Sequence[tuple[int, int]],
) -> dict[int, StoredResult]:
    """`wanted` less the indexes with a result. Ranges of the primary key, one per batch (a
    chunk's indexes are contiguous): an IN list of 100 parameters was planned as a scan of
    the job's results, 45 ms a batch at 20,000."""
    within = or_(*(and_(results.c.idx >= low, results.c.idx <= high) for low, high in spans))
    present = connection.execute(select(results.c.idx).where(results.c.job_id == job_id, within))
    left = dict(wanted)
    for (index,) in present:
        left.pop(index, None)
    return left


def result_rows(job_id: str, wanted: dict[int, StoredResult]) -> list[dict[str, Any]]:
    """The rows to insert, in index order; their `seq` is given under the lock."""
    return [result_row(job_id, index, 0, stored) for index, stored in sorted(wanted.items())]


def _keep(
    connection: Connection, job_id: str, job: Row[Any], rows: list[dict[str, Any]]
) -> Written:
    """Under the job's row lock: the rows with the next dense seq values, the summary
    counts, and the final status with the job's last result."""
    counts = {"up": job.up, "degraded": job.degraded, "down": job.down}
    errors: dict[str, int] = dict(job.errors or {})
    for seq, row in enumerate(rows, start=job.completed):
        row["seq"] = seq
        count_result(row["ok"], row["outcome"], row["error_kind"], counts, errors)
    connection.execute(insert(results), rows)
    completed = job.completed + len(rows)
    now = datetime.now(UTC)
    values: dict[str, Any] = {"completed": completed, "errors": errors, **counts}
    values["started_at"] = job.started_at or now
    if completed >= job.total:
        status = JobStatus.CANCELLED if job.cancel_requested else JobStatus.DONE
        values["finished_at"] = now
    else:
        status = JobStatus.RUNNING
    values["status"] = status.value
    connection.execute(update(jobs).where(jobs.c.id == job_id).values(**values))
    return Written(len(rows), job.cancel_requested, status)


def count_result(
    ok: bool, outcome: str, kind: str | None, counts: dict[str, int], errors: dict[str, int]
) -> None:
    """JobRecord.add's rules, on the row's counts."""
    if ok:
        counts["up"] += 1
        return
    if kind is not None:
        errors[kind] = errors.get(kind, 0) + 1
    if kind in _NOT_EVIDENCE:
        return
    counts[outcome] += 1  # degraded | down


@dataclass(frozen=True, slots=True)
class ChunkPlan:
    """What a chunk is to do: the job's options and cancel flag, and the URLs of its range
    that have no result yet."""

    options: dict[str, Any]
    cancel_requested: bool
    urls: list[tuple[int, str]]


def read_chunk(connection: Connection, job_id: str, start: int, stop: int) -> ChunkPlan | None:
    """None if the job is gone or final (nothing left to do)."""
    job = connection.execute(
        select(jobs.c.status, jobs.c.options, jobs.c.cancel_requested).where(jobs.c.id == job_id)
    ).first()
    if job is None or job.status not in UNFINISHED:
        return None
    done = select(results.c.idx).where(
        results.c.job_id == job_id, results.c.idx >= start, results.c.idx < stop
    )
    urls = connection.execute(
        select(job_urls.c.idx, job_urls.c.url)
        .where(
            job_urls.c.job_id == job_id,
            job_urls.c.idx >= start,
            job_urls.c.idx < stop,
            job_urls.c.idx.not_in(done),
        )
        .order_by(job_urls.c.idx)
    ).all()
    return ChunkPlan(dict(job.options), bool(job.cancel_requested), [(i, u) for i, u in urls])


def cancel_requested(connection: Connection, job_id: str) -> bool:
    flag = connection.execute(select(jobs.c.cancel_requested).where(jobs.c.id == job_id)).scalar()
    return bool(flag)
