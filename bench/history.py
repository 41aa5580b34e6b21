"""Monitor history on SQLite: bytes per result, and how fast uptime and the summary read.

    .venv/bin/python bench/history.py                    # everything, defaults below
    .venv/bin/python bench/history.py --results 50000    # a quicker size figure

1. Size: `--monitors` monitors checked every 60 s (start-to-start, offsets spread over the
   minute) until `--results` results, each recorded by the recorder's own transaction
   (app/monitors/recorder.py: compact row, state, rollups), committed `--batch` at a time as
   the writer does. `--down-pct` of the results fail (a failure keeps its full JSON). Prints
   the file's bytes per result and each table's and index's share (SQLite's dbstat).
2. Uptime: `--uptime-monitors` monitors with a year of daily rollups (366 rows each) and
   hourly rollups for the last day, histograms of a few buckets; `uptime(window=365d)` (and
   24h) for random monitors, `--reads` calls per repetition, `--reps` repetitions: the median
   over repetitions of p50/p99 (ms).
3. Summary: `--summary-monitors` monitors with 25 hourly rows each; `summary()` timed.

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert, text
from sqlalchemy.engine import URL

from app.db.engine import Database, open_database
from app.db.migrator import upgrade
from app.db.schema import monitor_rollups, monitors
from app.monitors import buckets
from app.monitors.history import History
from app.monitors.recorder import to_ms, write_check
from app.monitors.rollups import DAY_MS, HOUR_MS
from app.schemas.results import CheckError, CheckResult, ErrorKind, Timings

NOW = datetime(2026, 12, 2, 15, 30, tzinfo=UTC)


def open_fresh(directory: Path, name: str) -> Database:
    database = open_database(URL.create("sqlite", database=str(directory / name)))
    upgrade(database)
    return database


def add_monitors(database: Database, count: int) -> list[int]:
    rows = [
        {
            "slug": f"m{n}",
            "name": f"Monitor {n}",
            "source": "api",
            "url": f"https://service-{n}.example/health",
            "options": {},
            "interval_s": 60.0,
            "group_name": f"g{n % 20}",
            "labels": {},
            "paused": False,
            "failure_threshold": 3,
            "success_threshold": 2,
            "created_at": NOW,
            "updated_at": NOW,
            "generation": 1,
            "state": "unknown",
            "pending_count": 0,
            "skipped": 0,
        }
        for n in range(count)
    ]
    with database.write_engine.begin() as connection:
        connection.execute(insert(monitors), rows)
        return list(connection.execute(text("SELECT id FROM monitors ORDER BY id")).scalars())


def result(rng: random.Random, at: datetime, down_pct: float) -> CheckResult:
    elapsed = rng.lognormvariate(4.3, 0.6)  # ~75 ms median
    if rng.random() * 100 < down_pct:
        return CheckResult(
            url="https://service.example/health",
            ok=False,
            outcome="down",
            status_code=503,
            elapsed_ms=elapsed,
            checked_at=at,
            timings_ms=Timings(ttfb=elapsed - 1, transfer=1, total=elapsed),
            error=CheckError(kind=ErrorKind.UNEXPECTED_STATUS, message="status 503"),
        )
    return CheckResult(
        url="https://service.example/health",
        ok=True,
        outcome="up",
        status_code=200,
        elapsed_ms=elapsed,
        checked_at=at,
        timings_ms=Timings(ttfb=elapsed - 1, transfer=1, total=elapsed),
    )


def size_figure(
    directory: Path, monitor_count: int, results: int, batch: int, down_pct: float
) -> dict[str, Any]:
    database = open_fresh(directory, "size.db")
    ids = add_monitors(database, monitor_count)
    rng = random.Random(1)
    start = NOW - timedelta(minutes=results // monitor_count + 1)
    offsets = {m: timedelta(seconds=60 * n / monitor_count) for n, m in enumerate(ids)}
    pending: list[tuple[int, datetime, CheckResult]] = []
    began = time.perf_counter()
    done = 0
    tick = 0
    while done < results:
        for m in ids:
            at = start + timedelta(minutes=tick) + offsets[m]
            pending.append((m, at, result(rng, at, down_pct)))
            done += 1
            if len(pending) == batch or done == results:
                with database.write_engine.begin() as connection:
                    for monitor_id, when, outcome in pending:
                        write_check(connection, monitor_id, 1, when, outcome)
                pending.clear()
            if done == results:
                break
        tick += 1
    elapsed = time.perf_counter() - began
    with database.engine.connect() as connection:
        connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        by_name: dict[str, int] = {
            name: int(size)
            for name, size in connection.exec_driver_sql(
                "SELECT name, SUM(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC"
            )
        }
        pages = connection.exec_driver_sql("PRAGMA page_count").scalar_one()
        page_size = connection.exec_driver_sql("PRAGMA page_size").scalar_one()
    database.close()
    file_bytes = (directory / "size.db").stat().st_size
    raw = sum(v for k, v in by_name.items() if "monitor_results" in k)
    return {
        "monitors": monitor_count,
        "results": results,
        "down_pct": down_pct,
        "record_us_per_result": round(1e6 * elapsed / results, 1),
        "file_bytes": file_bytes,
        "file_bytes_per_result": round(file_bytes / results, 1),
        "pages_bytes_per_result": round(pages * page_size / results, 1),
        "monitor_results_and_indexes_bytes_per_result": round(raw / results, 1),
        "by_table_bytes": by_name,
    }


def histogram(rng: random.Random, checks: int) -> tuple[dict[str, int], int, int, int]:
    """A day's histogram over a few neighbouring buckets; (histogram, sum, min, max) in µs."""
    centre = buckets.bucket_of(int(rng.lognormvariate(11.2, 0.5)))
    counts: dict[str, int] = {}
    left = checks
    for offset in (-2, -1, 0, 1, 2, 3):
        take = left if offset == 3 else int(checks * (0.05, 0.2, 0.4, 0.2, 0.1, 0.05)[offset + 2])
        bucket = max(0, min(buckets.OVERFLOW, centre + offset))
        counts[str(bucket)] = counts.get(str(bucket), 0) + take
        left -= take
    low = buckets.bounds(max(0, centre - 2))[0] + 1
    high = buckets.BOUNDS_US[min(len(buckets.BOUNDS_US) - 1, centre + 3)]
    return counts, checks * buckets.BOUNDS_US[centre], low, high


def rollup_rows(
    rng: random.Random, monitor_id: int, period: str, starts: list[int]
) -> list[dict[str, Any]]:
    checks = 1440 if period == "d" else 60
    rows = []
    for start in starts:
        down = rng.choice([0, 0, 0, 1, 3])
        counts, total_us, low, high = histogram(rng, checks - down)
        rows.append(
            {
                "monitor_id": monitor_id,
                "period": period,
                "start_ms": start,
                "checks": checks,
                "up": checks - down,
                "degraded": 0,
                "down": down,
                "latency_count": checks - down,
                "latency_sum_us": total_us,
                "latency_min_us": low,
                "latency_max_us": high,
                "histogram": counts,
            }
        )
    return rows


def seed_rollups(database: Database, monitor_count: int, days: int, hours: int) -> list[int]:
    ids = add_monitors(database, monitor_count)
    rng = random.Random(2)
    now_ms = to_ms(NOW)
    today = now_ms - now_ms % DAY_MS
    hour = now_ms - now_ms % HOUR_MS
    day_starts = [today - n * DAY_MS for n in range(days)]
    hour_starts = [hour - n * HOUR_MS for n in range(hours)]
    with database.write_engine.begin() as connection:
        for m in ids:
            rows = rollup_rows(rng, m, "d", day_starts) + rollup_rows(rng, m, "h", hour_starts)
            connection.execute(insert(monitor_rollups), rows)
    return ids


def timed(call: Any, reads: int, reps: int) -> dict[str, float]:
    p50s, p99s = [], []
    for _ in range(reps):
        samples = []
        for _ in range(reads):
            began = time.perf_counter()
            call()
            samples.append(1000 * (time.perf_counter() - began))
        cuts = statistics.quantiles(samples, n=100)
        p50s.append(cuts[49])
        p99s.append(cuts[98])
    return {
        "p50_ms": round(statistics.median(p50s), 3),
        "p99_ms": round(statistics.median(p99s), 3),
    }


def uptime_figure(directory: Path, monitor_count: int, reads: int, reps: int) -> dict[str, Any]:
    database = open_fresh(directory, "uptime.db")
    ids = seed_rollups(database, monitor_count, days=366, hours=25)
    history = History(database, clock=lambda: NOW)
    rng = random.Random(3)
    check = history.uptime(ids[0], "365d")
    figures = {
        "monitors": monitor_count,
        "rollup_rows_per_monitor": 366 + 25,
        "checks_365d_one_monitor": check.checks,
        "uptime_365d": timed(lambda: history.uptime(rng.choice(ids), "365d"), reads, reps),
        "uptime_24h": timed(lambda: history.uptime(rng.choice(ids), "24h"), reads, reps),
    }
    database.close()
    return figures


def summary_figure(directory: Path, monitor_count: int, reps: int) -> dict[str, Any]:
    database = open_fresh(directory, "summary.db")
    seed_rollups(database, monitor_count, days=2, hours=25)
    history = History(database, clock=lambda: NOW)
    assert len(history.summary().monitors) == monitor_count
    figures = {"monitors": monitor_count, "summary": timed(history.summary, 5, reps)}
    database.close()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--monitors", type=int, default=1000)
    parser.add_argument("--results", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--down-pct", type=float, default=1.0)
    parser.add_argument("--uptime-monitors", type=int, default=1000)
    parser.add_argument("--reads", type=int, default=500)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--summary-monitors", type=int, default=10_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="urlhealth-history-") as tmp:
        directory = Path(tmp)
        figures = {
            "size": size_figure(directory, args.monitors, args.results, args.batch, args.down_pct),
            "uptime": uptime_figure(directory, args.uptime_monitors, args.reads, args.reps),
            "summary": summary_figure(directory, args.summary_monitors, args.reps),
            "reproduce": "python bench/history.py "
            + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items()),
        }
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
