"""Rows per second one worker process writes into PostgreSQL, and what each row costs.

    bench/.venv/bin/python bench/pg_rows.py                       # 3 reps, 1 and 2 processes
    bench/.venv/bin/python bench/pg_rows.py --kinds job_rows --rows 20000 --reps 1 --processes 1

Starts its own PostgreSQL (bench/pgserver.py: a cluster in a temporary directory on loopback,
fsync and synchronous_commit ON unless --not-durable), a fresh database per measurement,
migrated to head (app.db.migrator.upgrade). Each writing process is a fresh Python process
with the service's own Writer (app/db/writer.py) on the service's own engine
(app/db/engine.py): its queue is filled before the clock starts, then the writer thread runs
and the clock stops when every write is committed. A full queue is what a saturated service
has, so the writer takes batches of MAX_BATCH (1,000) per transaction, as the service does
under load. Kinds:

- `monitor_checks`: what the service writes for each monitor check today: the recorder's
  transaction (app/monitors/recorder.py `write_check`: read the monitor's row, conditional
  state update, the compact `monitor_results` row, the hourly and daily rollups), queued
  with `Writer.put`, one per check; 10,000 monitors (state up), each checked every 60 s of
  its own clock, `--down-pct` of the checks down (their full JSON kept in `detail`).
- `monitor_rows`: the compact `monitor_results` row alone (`Writer.put_row`: consecutive rows
  of a batch in one executemany): the floor for the history's insert.
- `job_rows`: a job's `results` rows as app/store/durable.py queues them (`put_row`, real
  StoredResult JSON bodies of CheckResults like a loopback check's), jobs of 10,000.

Measured per kind and number of writing processes (started together, each its own rows):
rows/s per process and in aggregate; CPU per row of the writing processes (all their
threads) and of PostgreSQL (the postmaster and every child, /proc/<pid>/stat); voluntary
context switches (wake-ups) per row for both; on-disk bytes per row (pg_total_relation_size).
Medians over `--reps`. Prints one JSON object and saves it as
bench/results/<UTC timestamp>-pg-rows.json, with an extrapolation to 16,700 rows/s
(1,000,000 monitors at 60 s).
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import os
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from pg_rows_data import fill, seed
from pgserver import BenchPostgres  # bench/ is on sys.path when run as a script
from service import context_switches, cpu_seconds

from app.db.engine import open_database
from app.db.url import sqlalchemy_url
from app.db.writer import Writer

RESULTS_DIR = Path(__file__).resolve().parent / "results"
KINDS = ("monitor_checks", "monitor_rows", "job_rows")
TABLE = {
    "monitor_checks": "monitor_results",
    "monitor_rows": "monitor_results",
    "job_rows": "results",
}
TARGET_ROWS_PER_S = 1_000_000 / 60  # 1,000,000 monitors at 60 s


# --------------------------------------------------------------------------- one writer


def writer_process(
    url: str,
    kind: str,
    rows: int,
    refs: list[Any],
    down_pct: float,
    index: int,
    ready: Any,
    go: Any,
    out: Any,
    release: Any,
) -> None:
    """One worker process's writer: fill the queue, wait for `go`, write it all, report;
    its connections stay open until `release`, so their backends are still there (and
    counted) when the parent reads PostgreSQL's CPU."""
    database = open_database(sqlalchemy_url(url, Path(".")))
    writer = Writer(database, flush_interval_s=0.1, queue_max=rows + 10)
    body_bytes = fill(writer, kind, rows, refs, down_pct, index)
    ready.release()
    go.wait()
    pid = os.getpid()
    cpu0, sw0 = cpu_seconds(pid), context_switches(pid)
    started = time.perf_counter()
    writer.start()
    pause = mp.Event()
    while True:
        stats = writer.stats()
        if stats.written + stats.failed + stats.dropped >= rows:
            break
        pause.wait(0.005)
    wall = time.perf_counter() - started
    cpu1, sw1 = cpu_seconds(pid), context_switches(pid)
    stats = writer.stats()
    writer.stop(10)
    out.put(
        {
            "index": index,
            "rows": rows,
            "wall_s": wall,
            "ended_at": time.time(),
            "cpu_s": cpu1 - cpu0,
            "voluntary_switches": sw1["voluntary"] - sw0["voluntary"],
            "involuntary_switches": sw1["involuntary"] - sw0["involuntary"],
            "written": stats.written,
            "failed": stats.failed,
            "batches": stats.batches,
            "json_bytes_per_row": body_bytes / rows,
        }
    )
    release.wait(600)
    database.close()


# --------------------------------------------------------------------------- one measurement


def measure(
    pg: BenchPostgres, kind: str, processes: int, args: argparse.Namespace
) -> dict[str, Any]:
    name = pg.create_database()
    url = pg.url(name)
    try:
        rows = args.check_rows if kind == "monitor_checks" else args.rows
        refs = seed(url, kind, processes, rows)
        key = "monitor_ids" if kind.startswith("monitor") else "job_ids"
        ctx = mp.get_context("spawn")
        ready, go, out, release = ctx.Semaphore(0), ctx.Event(), ctx.Queue(), ctx.Event()
        children = [
            ctx.Process(
                target=writer_process,
                args=(url, kind, rows, refs[key][p], args.down_pct, p, ready, go, out, release),
                daemon=True,
            )
            for p in range(processes)
        ]
        for child in children:
            child.start()
        for _ in children:
            if not ready.acquire(timeout=600):
                raise RuntimeError("a writer process did not fill its queue in 600 s")
        with pg_connect(url) as connection:
            connection.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            connection.execute("SELECT pg_stat_statements_reset()")
        pg0 = pg.usage()
        started = time.time()
        go.set()
        reports = [out.get(timeout=args.timeout_s) for _ in children]
        pg1 = pg.usage()
        release.set()
        for child in children:
            child.join(timeout=30)
        ended = max(r["ended_at"] for r in reports)
        total = sum(r["rows"] for r in reports)
        db = pg1.minus(pg0)
        with pg_connect(url) as connection:
            table = TABLE[kind]
            # A partitioned table (monitor_results on PostgreSQL, revision 0010) is the sum of
            # its partitions; pg_partition_tree has no row for a plain table.
            size = connection.execute(
                "SELECT coalesce((SELECT sum(pg_total_relation_size(relid))"
                " FROM pg_partition_tree(%(t)s::regclass)),"
                " pg_total_relation_size(%(t)s::regclass))",
                {"t": table},
            ).fetchone()
            stored = connection.execute(f"SELECT count(*) FROM {table}").fetchone()
            top = connection.execute(TOP_STATEMENTS).fetchall()
        assert size is not None
        assert stored is not None
        cpu = sum(r["cpu_s"] for r in reports)
        switches = sum(r["voluntary_switches"] for r in reports)
        return {
            "kind": kind,
            "processes": processes,
            "loadavg_1m": os.getloadavg()[0],
            "rows": total,
            "stored_rows": int(stored[0]),
            "failed": sum(r["failed"] for r in reports),
            "wall_s": ended - started,
            "rows_per_s": total / (ended - started),
            "rows_per_s_per_process": statistics.median(r["rows"] / r["wall_s"] for r in reports),
            "rows_per_batch": total / max(1, sum(r["batches"] for r in reports)),
            "writer_cpu_us_per_row": 1e6 * cpu / total,
            # Load-independent: what a writer with a core of its own would do at most.
            "rows_per_writer_cpu_s": total / cpu if cpu > 0 else None,
            "writer_wakeups_per_row": switches / total,
            "pg_cpu_us_per_row": 1e6 * db["cpu_s"] / total,
            "pg_wakeups_per_row": db["voluntary_switches"] / total,
            "pg": db,
            "bytes_per_row_on_disk": int(size[0]) / max(1, int(stored[0])),
            "json_bytes_per_row": statistics.mean(r["json_bytes_per_row"] for r in reports),
            "per_process": reports,
            # Where PostgreSQL's time went (pg_stat_statements, execution time per statement).
            "top_statements": [
                {"query": q[:160], "calls": int(c), "total_ms": float(t), "mean_us": 1000 * m}
                for q, c, t, m in top
            ],
        }
    finally:
        pg.drop_database(name)


TOP_STATEMENTS = """
    SELECT regexp_replace(query, '\\s+', ' ', 'g'), calls, total_exec_time, mean_exec_time
    FROM pg_stat_statements WHERE query NOT ILIKE '%pg_stat_statements%'
    ORDER BY total_exec_time DESC LIMIT 6
"""


def pg_connect(url: str) -> Any:
    import psycopg

    return psycopg.connect(url, autocommit=True)


def median_of(runs: list[dict[str, Any]], key: str) -> float:
    return statistics.median(float(r[key]) for r in runs)


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    keys = (
        "rows_per_s",
        "rows_per_s_per_process",
        "rows_per_batch",
        "rows_per_writer_cpu_s",
        "writer_cpu_us_per_row",
        "writer_wakeups_per_row",
        "pg_cpu_us_per_row",
        "pg_wakeups_per_row",
        "bytes_per_row_on_disk",
        "json_bytes_per_row",
    )
    out: dict[str, Any] = {"reps": len(runs), "failed_rows": sum(r["failed"] for r in runs)}
    for key in keys:
        values = [float(r[key]) for r in runs if r.get(key) is not None]
        if not values:
            continue
        out[key] = {"median": statistics.median(values), "min": min(values), "max": max(values)}
    return out


def extrapolate(summary: dict[str, Any], cores: int) -> dict[str, Any]:
    """How many writing processes and cores 16,700 rows/s need, from the one-process figures."""
    per_process = summary["rows_per_s_per_process"]["median"]
    writer_us = summary["writer_cpu_us_per_row"]["median"]
    pg_us = summary["pg_cpu_us_per_row"]["median"]
    return {
        "target_rows_per_s": round(TARGET_ROWS_PER_S),
        "writer_processes_at_full_speed": math.ceil(TARGET_ROWS_PER_S / per_process),
        "writer_cores": TARGET_ROWS_PER_S * writer_us / 1e6,
        "postgres_cores": TARGET_ROWS_PER_S * pg_us / 1e6,
        "total_cores_for_the_writes": TARGET_ROWS_PER_S * (writer_us + pg_us) / 1e6,
        "measured_on_cores": cores,
        "note": (
            "writer_processes_at_full_speed: processes doing nothing but these writes, each at "
            "the median rows/s of one writing process measured here (its writer is one thread); "
            "cores: CPU per row x 16,700 rows/s, for the writes alone (the checks themselves "
            "cost more: see bench/cluster.py's CPU per check)"
        ),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kinds", default=",".join(KINDS))
    parser.add_argument("--rows", type=int, default=50_000, help="rows per writing process")
    parser.add_argument(
        "--check-rows", type=int, default=10_000, help="monitor_checks per writing process"
    )
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--processes", default="1,2", help="writing processes at once, a list")
    parser.add_argument("--down-pct", type=float, default=1.0)
    parser.add_argument("--not-durable", action="store_true", help="fsync etc. off (the tests')")
    parser.add_argument("--timeout-s", type=float, default=600.0, help="per measurement")
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args(argv)
    kinds = [k for k in args.kinds.split(",") if k]
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        parser.error(f"unknown kinds {unknown}; known: {', '.join(KINDS)}")
    counts = [int(p) for p in args.processes.split(",") if p]
    cores = os.cpu_count() or 1
    report: dict[str, Any] = {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "args": vars(args),
        "cores": cores,
        "loadavg_1m": os.getloadavg()[0],
        "reproduce": "bench/.venv/bin/python bench/pg_rows.py " + " ".join(argv or sys.argv[1:]),
        "results": {},
    }
    with BenchPostgres(durable=not args.not_durable, stat_statements=True) as pg:
        with pg_connect(pg.url()) as connection:
            version = connection.execute("SHOW server_version").fetchone()
        report["postgres"] = version[0] if version else None
        runs: dict[str, list[dict[str, Any]]] = {}
        # Repetitions outermost, so a noisy spell of the machine falls on every kind alike.
        for rep in range(args.reps):
            for kind in kinds:
                for processes in counts:
                    run = measure(pg, kind, processes, args)
                    run["rep"] = rep
                    runs.setdefault(f"{kind}/{processes}", []).append(run)
                    print(
                        f"rep {rep + 1} {kind} x{processes}: {run['rows_per_s']:,.0f} rows/s "
                        f"({run['rows_per_s_per_process']:,.0f} per process), writer "
                        f"{run['writer_cpu_us_per_row']:.0f} us/row, postgres "
                        f"{run['pg_cpu_us_per_row']:.0f} us/row",
                        file=sys.stderr,
                        flush=True,
                    )
    for key, key_runs in runs.items():
        summary = summarise(key_runs)
        entry: dict[str, Any] = {"summary": summary, "runs": key_runs}
        if key.endswith("/1"):
            entry["extrapolation"] = extrapolate(summary, cores)
        report["results"][key] = entry
    text_out = json.dumps(report, indent=2)
    if not args.no_save:
        RESULTS_DIR.mkdir(exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        path = RESULTS_DIR / f"{stamp}-pg-rows.json"
        path.write_text(text_out + "\n")
        report["saved"] = str(path)
        print(f"saved {path}", file=sys.stderr)
    print(text_out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
