"""Crash recovery: at start, every job left unfinished by a process that is gone gets a
final state. Its checks without a result become `interrupted`, and the job `interrupted`, so
nothing accepted is ever left without a final state.

Which jobs are orphans: on SQLite, every unfinished one (the file's lock admits one process,
so none can be another live process's); on PostgreSQL, those whose owner's heartbeat is
older than the lease, or whose owner has no row. Each job is finalised in a transaction of
its own, its row locked first (PostgreSQL) so two replicas starting together finalise it once.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta

from pydantic_core import to_json
from sqlalchemy import Connection, func, insert, or_, select, update

from app.db.schema import UNFINISHED, instances, job_urls, jobs, results
from app.db.writer import Writer
from app.schemas.results import CheckError, CheckResult, ErrorKind
from app.store.base import StoredResult
from app.store.rows import CLUSTER_OWNER, result_row

log = logging.getLogger("urlhealth.store")

MESSAGE = "the service stopped before this check finished"
_URL_MARK = "urlhealth:the-url-goes-here"


def orphaned_jobs(
    connection: Connection, me: str, lease_s: float, keep_cluster: bool = False
) -> list[str]:
    """`keep_cluster`: this process is a replica, and a cluster's jobs belong to its task
    queue, not to a process (a single process on the same database finalises them: no
    worker is left to run them)."""
    query = select(jobs.c.id).where(jobs.c.status.in_(UNFINISHED))
    if keep_cluster and connection.dialect.name != "sqlite":
        query = query.where(or_(jobs.c.owner.is_(None), jobs.c.owner != CLUSTER_OWNER))
    if connection.dialect.name != "sqlite":
        stale = datetime.now(UTC) - timedelta(seconds=lease_s)
        query = (
            query.outerjoin(instances, instances.c.id == jobs.c.owner)
            .where(or_(jobs.c.owner.is_(None), jobs.c.owner != me))
            .where(or_(instances.c.id.is_(None), instances.c.heartbeat_at < stale))
        )
    return [job_id for (job_id,) in connection.execute(query.order_by(jobs.c.created_at))]


def finalise(connection: Connection, job_id: str) -> int:
    """Give the job its final state; returns how many checks became `interrupted` (0 if
    another process finalised it first)."""
    locked = select(jobs.c.status, jobs.c.started_at).where(jobs.c.id == job_id)
    if connection.dialect.name != "sqlite":
        locked = locked.with_for_update()
    row = connection.execute(locked).first()
    if row is None or row.status not in UNFINISHED:
        return 0
    now = datetime.now(UTC)
    kept = select(results.c.idx).where(results.c.job_id == job_id)
    missing = connection.execute(
        select(job_urls.c.idx, job_urls.c.url)
        .where(job_urls.c.job_id == job_id, job_urls.c.idx.not_in(kept))
        .order_by(job_urls.c.idx)
    ).all()
    last = connection.execute(
        select(func.max(results.c.seq)).where(results.c.job_id == job_id)
    ).scalar()
    seq = 0 if last is None else int(last) + 1
    bodies = interrupted_results([url for _idx, url in missing], now)
    rows = [
        result_row(job_id, idx, seq + n, body)
        for n, ((idx, _url), body) in enumerate(zip(missing, bodies, strict=True))
    ]
    if rows:
        connection.execute(insert(results), rows)
    connection.execute(
        update(jobs)
        .where(jobs.c.id == job_id)
        .values(
            status="interrupted",
            interrupted=True,
            started_at=row.started_at or now,
            finished_at=now,
            **_summary(connection, job_id),
        )
    )
    return len(rows)


def interrupted(url: str, now: datetime) -> CheckResult:
    return CheckResult(
        url=url,
        ok=False,
        outcome="down",
        checked_at=now,
        error=CheckError(kind=ErrorKind.INTERRUPTED, message=MESSAGE),
    )


def interrupted_results(urls: Sequence[str], now: datetime) -> Iterator[StoredResult]:
    """`StoredResult.of(interrupted(url, now))` for each URL, byte for byte, with one model
    built and encoded: the URL is the one field that differs, put into the encoded template
    by the same JSON encoder. A job of 10,000 URLs left half done is 5,000 of them, at start,
    before the service is ready (bench/restart.py: 3 such jobs took 650 ms to recover, a
    third of it building and encoding models)."""
    template = StoredResult.of(interrupted(_URL_MARK, now))
    head, tail = template.json.split(to_json(_URL_MARK), 1)
    for url in urls:
        yield dataclasses.replace(template, json=head + to_json(url) + tail)


def _summary(connection: Connection, job_id: str) -> dict[str, object]:
    """The job's summary counted from its results, by the rules of JobRecord.add."""
    counts = connection.execute(
        select(results.c.ok, results.c.outcome, results.c.error_kind, func.count())
        .where(results.c.job_id == job_id)
        .group_by(results.c.ok, results.c.outcome, results.c.error_kind)
    ).all()
    up = degraded = down = completed = 0
    errors: dict[str, int] = {}
    for ok, kind_of_outcome, kind, count in counts:
        completed += count
        if ok:
            up += count
            continue
        if kind is not None:
            errors[kind] = errors.get(kind, 0) + count
        if kind in (ErrorKind.CANCELLED.value, ErrorKind.INTERRUPTED.value):
            continue
        if kind_of_outcome == "degraded":
            degraded += count
        else:
            down += count
    return {"completed": completed, "up": up, "degraded": degraded, "down": down, "errors": errors}


def recover(
    writer: Writer, me: str, lease_s: float, timeout_s: float, keep_cluster: bool = False
) -> tuple[int, int]:
    """Finalise every orphaned job through the writer; returns (jobs, checks interrupted)."""
    orphaned = functools.partial(_orphaned, me=me, lease_s=lease_s, keep_cluster=keep_cluster)
    orphans = writer.submit(orphaned).result(timeout_s)
    checks = 0
    for job_id in orphans:
        checks += writer.submit(functools.partial(_finalise, job_id=job_id)).result(timeout_s)
    if orphans:
        log.warning(
            "%d jobs left unfinished by a stopped service ended interrupted (%d checks)",
            len(orphans),
            checks,
        )
    return len(orphans), checks


def _orphaned(connection: Connection, me: str, lease_s: float, keep_cluster: bool) -> list[str]:
    return orphaned_jobs(connection, me, lease_s, keep_cluster)


def _finalise(connection: Connection, job_id: str) -> int:
    return finalise(connection, job_id)
