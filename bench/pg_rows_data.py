"""The rows bench/pg_rows.py writes: seeded monitors and jobs they refer to, check results
shaped like a loopback check's, and the writes queued on a Writer as the service queues them."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert, text

from app.db.engine import open_database
from app.db.migrator import upgrade
from app.db.schema import jobs, monitor_results, monitors, results
from app.db.url import sqlalchemy_url
from app.db.writer import Writer
from app.monitors.recorder import to_ms, write_check
from app.schemas.monitoring import OUTCOME_CODE
from app.schemas.results import CheckError, CheckResult, ErrorKind, Timings
from app.store.base import StoredResult
from app.store.rows import result_row

MONITORS = 10_000
JOB_SIZE = 10_000
NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def check_result(rng: random.Random, i: int, at: datetime, down: bool) -> CheckResult:
    """A result shaped like a loopback check's (plain HTTP, keep-alive connection)."""
    elapsed = 50.0 + rng.random() * 5
    url = f"http://127.0.0.{1 + i % 8}:18080/delay/50?r=bench&i={i}"
    if down:
        return CheckResult(
            url=url,
            ok=False,
            outcome="down",
            status_code=503,
            reason="Service Unavailable",
            elapsed_ms=elapsed,
            final_url=url,
            bytes_read=23,
            http_version="HTTP/1.1",
            checked_at=at,
            timings_ms=Timings(ttfb=elapsed - 0.2, transfer=0.2, total=elapsed),
            error=CheckError(kind=ErrorKind.UNEXPECTED_STATUS, message="status 503"),
        )
    return CheckResult(
        url=url,
        ok=True,
        outcome="up",
        status_code=200,
        reason="OK",
        elapsed_ms=elapsed,
        final_url=url,
        bytes_read=3,
        http_version="HTTP/1.1",
        checked_at=at,
        timings_ms=Timings(ttfb=elapsed - 0.2, transfer=0.2, total=elapsed),
    )


def seed(url: str, kind: str, processes: int, rows: int) -> dict[str, Any]:
    """Monitors (state up) or job rows the writers' rows refer to; their ids per process."""
    database = open_database(sqlalchemy_url(url, Path(".")))
    try:
        upgrade(database)
        with database.write_engine.begin() as connection:
            if kind.startswith("monitor"):
                connection.execute(
                    insert(monitors),
                    [
                        {
                            "slug": f"m{n}",
                            "name": f"monitor {n}",
                            "source": "api",
                            "url": f"http://127.0.0.{1 + n % 8}:18080/delay/0?m={n}",
                            "options": {},
                            "interval_s": 60.0,
                            "group_name": f"g{n % 10}",
                            "labels": {},
                            "paused": False,
                            "failure_threshold": 3,
                            "success_threshold": 2,
                            "created_at": NOW,
                            "updated_at": NOW,
                            "generation": 1,
                            "state": "up",
                            "state_since": NOW,
                            "pending_count": 0,
                            "skipped": 0,
                        }
                        for n in range(MONITORS)
                    ],
                )
                ids = list(
                    connection.execute(text("SELECT id FROM monitors ORDER BY id")).scalars()
                )
                # Each process its own monitors, as replicas each claim their own due checks.
                return {"monitor_ids": [ids[p::processes] for p in range(processes)]}
            job_ids: list[list[str]] = []
            for p in range(processes):
                mine = [f"bench{p:02d}{j:010d}" for j in range(math.ceil(rows / JOB_SIZE))]
                job_ids.append(mine)
                connection.execute(
                    insert(jobs),
                    [
                        {
                            "id": job_id,
                            "status": "running",
                            "options": {},
                            "total": JOB_SIZE,
                            "duplicates_removed": 0,
                            "created_at": NOW,
                            "completed": 0,
                            "up": 0,
                            "degraded": 0,
                            "down": 0,
                            "errors": {},
                            "cancel_requested": False,
                            "interrupted": False,
                            "owner": "bench",
                        }
                        for job_id in mine
                    ],
                )
            return {"job_ids": job_ids}
    finally:
        database.close()


def fill(writer: Writer, kind: str, rows: int, refs: list[Any], down_pct: float, seed_: int) -> int:
    """Queue `rows` writes of `kind` (the writer not yet started); the JSON bytes queued."""
    rng = random.Random(seed_)
    body_bytes = 0
    if kind == "job_rows":
        for n in range(rows):
            job_id, idx = refs[n // JOB_SIZE], n % JOB_SIZE
            result = check_result(rng, n, NOW, rng.random() * 100 < down_pct)
            stored = StoredResult.of(result)
            body_bytes += len(stored.json)
            writer.put_row(results, result_row(job_id, idx, idx, stored))
        return body_bytes
    for n in range(rows):
        monitor_id = refs[n % len(refs)]
        at = NOW + timedelta(seconds=60 * (n // len(refs)) + (n % len(refs)) * 60 / len(refs))
        result = check_result(rng, n, at, rng.random() * 100 < down_pct)
        if kind == "monitor_checks":
            writer.put(
                lambda c, m=monitor_id, a=at, r=result: write_check(c, m, 1, a, r)  # type: ignore[misc]
            )
            continue
        detail = result.model_dump_json().encode() if result.outcome != "up" else None
        body_bytes += len(detail or b"")
        timings = result.timings_ms
        assert timings is not None
        writer.put_row(
            monitor_results,
            {
                "monitor_id": monitor_id,
                "at_ms": to_ms(at),
                "outcome": OUTCOME_CODE[result.outcome],
                "status": result.status_code,
                "latency_us": round((result.elapsed_ms or 0) * 1000),
                "dns_us": 0,
                "connect_us": 0,
                "tls_us": 0,
                "ttfb_us": round(timings.ttfb * 1000),
                "transfer_us": round(timings.transfer * 1000),
                "error_kind": result.error.kind.value if result.error else None,
                "detail": detail,
            },
        )
    return body_bytes
