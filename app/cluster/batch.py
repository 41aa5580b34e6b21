"""A cluster job's results, written a batch at a time by whichever replica ran them.

One transaction per batch (not per result): it locks the job's row, so two batches of one
job (two chunks on two workers) take turns; keeps only the results of indexes that have none
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

from sqlalchemy import Connection, insert, select, update

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
    """Keep `batch` ((index, result) pairs) for the job; None if the job is gone."""
    job = connection.execute(
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
    if job is None:
        return None
    status = JobStatus(job.status)
    if status.final or not batch:
        return Written(0, job.cancel_requested, status)
    wanted = dict(batch)
    # A range of the primary key (a chunk's indexes are contiguous): an IN list of 100
    # parameters was planned as a scan of the job's results, 45 ms a batch at 20,000.
    present = connection.execute(
        select(results.c.idx).where(
            results.c.job_id == job_id,
            results.c.idx >= min(wanted),
            results.c.idx <= max(wanted),
        )
    )
    for (index,) in present:
        wanted.pop(index, None)
    if not wanted:
        return Written(0, job.cancel_requested, status)
    counts = {"up": job.up, "degraded": job.degraded, "down": job.down}
    errors: dict[str, int] = dict(job.errors or {})
    rows = []
    for seq, (index, stored) in enumerate(sorted(wanted.items()), start=job.completed):
        rows.append(result_row(job_id, index, seq, stored))
        _count(stored, counts, errors)
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
    notify(connection, JOBS_CHANNEL, job_id)
    return Written(len(rows), job.cancel_requested, status)


def _count(stored: StoredResult, counts: dict[str, int], errors: dict[str, int]) -> None:
    """JobRecord.add's rules, on the row's counts."""
    if stored.ok:
        counts["up"] += 1
        return
    kind = stored.error_kind
    if kind is not None:
        errors[kind] = errors.get(kind, 0) + 1
    if kind in _NOT_EVIDENCE:
        return
    counts["degraded" if stored.degraded else "down"] += 1


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
