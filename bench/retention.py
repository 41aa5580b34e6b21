"""Retention through the writer: how long one batch holds the writer, and how long a small
write waits behind it, while a backlog of expired jobs is deleted.

    .venv/bin/python bench/retention.py                      # an SQLite file in a tmp dir
    .venv/bin/python bench/retention.py --url postgresql://postgres@127.0.0.1:5432/bench

It fills the database with `--jobs` finished jobs of `--results` results each (1 KB bodies)
plus one job of `--big` results, all expired, then runs RetentionLoop's batches through a
Writer while another thread submits one small write every 10 ms and times its commit. It
prints one JSON object: batch durations (p50/p99/max, ms), the small writes' latency
(p50/p99/max, ms), jobs and rows deleted, pages given back, file size before and after.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, insert, update

from app.db.engine import Database, open_database
from app.db.migrator import upgrade
from app.db.retention import BATCH_ROWS, VACUUM_PAGES, Pruned, prune_batch
from app.db.schema import instances, job_urls, jobs, results
from app.db.url import sqlalchemy_url
from app.db.writer import Writer

NOW = datetime.now(UTC)
OLD = NOW - timedelta(days=60)


def fill(db: Database, count: int, per_job: int, big: int) -> None:
    body = b"x" * 1000
    sizes = [big] + [per_job] * count
    with db.write_engine.begin() as connection:
        for n, size in enumerate(sizes):
            job_id = f"{n:032d}"
            connection.execute(
                insert(jobs).values(
                    id=job_id,
                    status="done",
                    options={},
                    total=size,
                    created_at=OLD,
                    finished_at=OLD,
                    errors={},
                )
            )
            urls = [
                {"job_id": job_id, "idx": i, "url": f"http://127.0.0.1/{i}"} for i in range(size)
            ]
            connection.execute(insert(job_urls), urls)
            rows = [
                {"job_id": job_id, "idx": i, "seq": i, "ok": True, "outcome": "up", "body": body}
                for i in range(size)
            ]
            connection.execute(insert(results), rows)


def percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    if not ordered:
        return {}
    return {
        "n": len(ordered),
        "p50": round(statistics.median(ordered), 2),
        "p99": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 2),
        "max": round(ordered[-1], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=None, help="database URL (default: a tmp SQLite file)")
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--results", type=int, default=50)
    parser.add_argument("--big", type=int, default=100_000)
    parser.add_argument("--batch-rows", type=int, default=BATCH_ROWS)
    parser.add_argument("--vacuum-pages", type=int, default=VACUUM_PAGES)
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="urlhealth-retention-"))
    url = args.url or f"sqlite:///{tmp / 'bench.db'}"
    db = open_database(sqlalchemy_url(url, tmp))
    upgrade(db)
    fill(db, args.jobs, args.results, args.big)
    path = Path(str(db.url.database)) if db.dialect == "sqlite" else None
    if path is not None:
        with db.engine.connect() as connection:
            connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    size_before = path.stat().st_size if path else None

    writer = Writer(db, flush_interval_s=0.1, queue_max=10_000).start()
    with db.write_engine.begin() as connection:
        connection.execute(
            insert(instances).values(
                id="bench", hostname="bench", pid=0, started_at=NOW, heartbeat_at=NOW
            )
        )
    stop, latencies = threading.Event(), []

    def beat(connection: Connection) -> None:
        connection.execute(update(instances).values(heartbeat_at=datetime.now(UTC)))

    def small_writes() -> None:
        while not stop.wait(0.01):
            started = time.perf_counter()
            writer.submit(beat).result(timeout=60)
            latencies.append((time.perf_counter() - started) * 1000)

    other = threading.Thread(target=small_writes)
    other.start()
    durations: list[float] = []
    total = Pruned()

    def timed(connection: Connection) -> Pruned:
        started = time.perf_counter()
        pruned = prune_batch(
            connection,
            older_than=NOW - timedelta(days=30),
            keep_max_jobs=10**6,
            batch_rows=args.batch_rows,
            vacuum_pages=args.vacuum_pages,
        )
        durations.append((time.perf_counter() - started) * 1000)
        return pruned

    started = time.perf_counter()
    while True:
        pruned = writer.submit(timed).result(timeout=600)
        total += pruned
        if not pruned.more:
            break
    wall = time.perf_counter() - started
    stop.set()
    other.join(60)
    writer.stop(timeout_s=60)
    if path is not None:
        with db.engine.connect() as connection:
            connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    report: dict[str, Any] = {
        "dialect": db.dialect,
        "jobs_deleted": total.jobs,
        "rows_deleted": total.rows,
        "pages_given_back": total.pages,
        "batch_rows": args.batch_rows,
        "vacuum_pages": args.vacuum_pages,
        "wall_s": round(wall, 2),
        "batch_ms": percentiles(durations),
        "small_write_ms": percentiles(latencies),
        "file_bytes_before": size_before,
        "file_bytes_after": path.stat().st_size if path else None,
    }
    db.close()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
