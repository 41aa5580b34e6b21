"""Restart with a large history: how long `urlhealth serve` takes to be ready on an SQLite
file that holds 1,000,000 results (issue 8's target: <= 2 s).

    .venv/bin/python bench/restart.py                        # 100 jobs x 10,000 results
    .venv/bin/python bench/restart.py --jobs 10 --results 1000 --starts 3   # a smoke run

It seeds a fresh SQLite file (through the project's migrations, then SQLAlchemy Core
executemany in one transaction per job: the jobs finished, their URLs and results as the
service writes them), then starts the real service (the `urlhealth` console script next to
this interpreter, exec'd directly) `--starts` times in each of three cases:

- `empty`: a file with the schema only (what a start costs without history);
- `history`: the 1,000,000 results;
- `recover`: the same plus `--unfinished` jobs left `running` by a process that is gone,
  each with half of its results: recovery finalises them at start (added before each
  start, so every start has them to recover).

The cases are interleaved start by start (empty, history, recover, empty, ...), so a noisy
spell of the machine falls on all three.

For each start: seconds from exec to the first 200 from GET /readyz (polled every 10 ms),
and to the log's "ready on" line (its arrival in the log file, polled the same way). Then
SIGTERM, and the next start waits for the exit (the file admits one process). Then, in this
process, the same number of opens of the store's parts in Storage.open's order, each phase
timed (`phases_ms`: open the file, check migrations, writer + instance row, crash recovery,
the jobs-by-status count), which says what the database costs of the start; the rest of a
start is Python importing the service (the `empty` case shows it). Prints one JSON object:
medians, min and max per case, and the database's size.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import insert

from app.db.engine import Database, open_database
from app.db.migrator import upgrade
from app.db.schema import job_urls, jobs, results
from app.db.url import sqlalchemy_url
from app.db.writer import Writer
from app.schemas.results import CheckResult, Timings
from app.store.base import StoredResult
from app.store.instance import LEASE_S, Instance
from app.store.recovery import recover
from app.store.rows import result_row
from app.store.stored import StoredJobs

READY_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 60.0
POLL_S = 0.01


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def body(url: str) -> StoredResult:
    """A result as a check of a healthy URL leaves it (about 500 bytes of JSON)."""
    return StoredResult.of(
        CheckResult(
            url=url,
            ok=True,
            outcome="up",
            status_code=200,
            reason="OK",
            elapsed_ms=12.5,
            final_url=url,
            http_version="HTTP/1.1",
            remote_ip="127.0.0.1",
            bytes_read=2,
            timings_ms=Timings(dns=0.1, connect=0.3, tls=0.0, ttfb=11.0, transfer=0.1, total=12.5),
            checked_at=datetime.now(UTC),
        )
    )


def job_row(job_id: str, status: str, total: int, completed: int, at: datetime) -> dict[str, Any]:
    final = status not in ("queued", "running")
    return {
        "id": job_id,
        "status": status,
        "options": {"timeout_s": 10},
        "total": total,
        "duplicates_removed": 0,
        "created_at": at,
        "started_at": at,
        "finished_at": at if final else None,
        "completed": completed,
        "up": completed,
        "degraded": 0,
        "down": 0,
        "errors": {},
        "cancel_requested": False,
        "interrupted": False,
        "owner": "gone-" + uuid.uuid4().hex[:8],
    }


def add_job(db: Database, status: str, total: int, kept: int, at: datetime) -> None:
    """One job of `total` URLs with results for the first `kept`, in one transaction."""
    job_id = uuid.uuid4().hex
    sample = body("http://127.0.0.1/x")
    with db.write_engine.begin() as connection:
        connection.execute(insert(jobs), [job_row(job_id, status, total, kept, at)])
        urls = [f"http://127.0.0.{1 + i % 8}:8080/delay/10?i={i}" for i in range(total)]
        connection.execute(
            insert(job_urls), [{"job_id": job_id, "idx": i, "url": u} for i, u in enumerate(urls)]
        )
        rows = []
        for i in range(kept):
            stored = StoredResult(
                sample.json.replace(b"http://127.0.0.1/x", urls[i].encode()), True, False, None
            )
            rows.append(result_row(job_id, i, i, stored))
        if rows:
            connection.execute(insert(results), rows)


def seed(db: Database, count: int, per_job: int) -> float:
    started = time.perf_counter()
    base = datetime.now(UTC) - timedelta(hours=1)
    for n in range(count):
        add_job(db, "done", per_job, per_job, base + timedelta(seconds=n))
    return time.perf_counter() - started


def urlhealth() -> str:
    script = Path(sys.executable).parent / "urlhealth"
    found = str(script) if script.is_file() else shutil.which("urlhealth")
    if found is None:
        raise SystemExit("no `urlhealth` console script next to this interpreter nor on PATH")
    return found


def start_once(path: Path, workdir: Path) -> dict[str, float]:
    """Exec `urlhealth serve` on the file; seconds to the first /readyz 200 and to
    "ready on" in its log."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("URLHEALTH_")}
    env.update(
        {
            "URLHEALTH_DATABASE_URL": f"sqlite:///{path}",
            "URLHEALTH_DATA_DIR": str(workdir / "data"),
            "URLHEALTH_LOG_LEVEL": "info",
            "PYTHONUNBUFFERED": "1",
        }
    )
    log_path = workdir / f"serve-{port}.log"
    command = [urlhealth(), "serve", "--host", "127.0.0.1", "--port", str(port)]
    figures: dict[str, float] = {}
    pause = threading.Event()
    with open(log_path, "wb") as log:
        started = time.perf_counter()
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
        )
        try:
            with httpx.Client(timeout=2.0, trust_env=False) as client:
                while time.perf_counter() - started < READY_TIMEOUT_S:
                    now = time.perf_counter() - started
                    if "log" not in figures and b"ready on" in log_path.read_bytes():
                        figures["log"] = now
                    if "readyz" not in figures:
                        try:
                            if client.get(f"http://127.0.0.1:{port}/readyz").status_code == 200:
                                figures["readyz"] = time.perf_counter() - started
                        except httpx.TransportError:
                            pass
                    if len(figures) == 2:
                        break
                    if process.poll() is not None:
                        raise SystemExit(f"the service exited:\n{log_path.read_text()}")
                    pause.wait(POLL_S)
                else:
                    raise SystemExit(f"not ready in {READY_TIMEOUT_S} s:\n{log_path.read_text()}")
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
    return figures


def open_phases(path: Path, workdir: Path) -> dict[str, float]:
    """Storage.open's steps on the file, each timed in ms (app/store/storage.py's order)."""
    marks = [time.perf_counter()]
    db = open_database(sqlalchemy_url(f"sqlite:///{path}", workdir))
    marks.append(time.perf_counter())
    writer = None
    try:
        upgrade(db)
        marks.append(time.perf_counter())
        writer = Writer(db, 0.1, 10_000).start()
        instance = Instance(writer)
        instance.register(60.0)
        marks.append(time.perf_counter())
        recover(writer, instance.id, LEASE_S, 60.0)
        marks.append(time.perf_counter())
        StoredJobs(db).counts_by_status()
        marks.append(time.perf_counter())
        instance.stop()
    finally:
        if writer is not None:
            writer.stop(30.0)
        db.close()
    names = ("open", "migrations", "writer_instance", "recovery", "counts")
    return {name: (marks[i + 1] - marks[i]) * 1000 for i, name in enumerate(names)}


def phase_summary(samples: list[dict[str, float]]) -> dict[str, float]:
    return {k: round(statistics.median(s[k] for s in samples), 1) for k in samples[0]}


def add_unfinished(path: Path, workdir: Path, count: int, per_job: int) -> None:
    db = open_database(sqlalchemy_url(f"sqlite:///{path}", workdir))
    try:
        for _ in range(count):
            add_job(db, "running", per_job, per_job // 2, datetime.now(UTC))
    finally:
        db.close()


def summary(samples: list[dict[str, float]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in ("readyz", "log"):
        values = [s[key] for s in samples]
        out[key] = {
            "median_s": round(statistics.median(values), 3),
            "min_s": round(min(values), 3),
            "max_s": round(max(values), 3),
            "all_s": [round(v, 3) for v in values],
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument("--results", type=int, default=10_000, help="results per job")
    parser.add_argument("--unfinished", type=int, default=3, help="jobs to recover at start")
    parser.add_argument("--starts", type=int, default=5)
    parser.add_argument("--dir", type=Path, default=None, help="where the files go (a tmp dir)")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="urlhealth-restart-", dir=args.dir))
    empty, path = workdir / "empty" / "urlhealth.db", workdir / "history" / "urlhealth.db"
    try:
        for file in (empty, path):
            file.parent.mkdir()
            db = open_database(sqlalchemy_url(f"sqlite:///{file}", file.parent))
            try:
                upgrade(db)
            finally:
                db.close()
        db = open_database(sqlalchemy_url(f"sqlite:///{path}", path.parent))
        try:
            seed_s = seed(db, args.jobs, args.results)
        finally:
            db.close()
        os.sync()  # the seed's gigabyte written back before the clock runs, not during it
        # Interleaved, start by start, so a noisy spell of the machine falls on every case.
        starts: dict[str, list[dict[str, float]]] = {"empty": [], "history": [], "recover": []}
        phases: dict[str, list[dict[str, float]]] = {"empty": [], "history": [], "recover": []}
        for _ in range(args.starts):
            starts["empty"].append(start_once(empty, empty.parent))
            starts["history"].append(start_once(path, path.parent))
            add_unfinished(path, path.parent, args.unfinished, args.results)
            starts["recover"].append(start_once(path, path.parent))
        for _ in range(args.starts):
            phases["empty"].append(open_phases(empty, empty.parent))
            phases["history"].append(open_phases(path, path.parent))
            add_unfinished(path, path.parent, args.unfinished, args.results)
            phases["recover"].append(open_phases(path, path.parent))
        cases = {
            name: {**summary(starts[name]), "phases_ms": phase_summary(phases[name])}
            for name in starts
        }
        report = {
            "stored_results": args.jobs * args.results,
            "jobs": args.jobs,
            "unfinished_per_start": args.unfinished,
            "unfinished_checks_per_job": args.results - args.results // 2,
            "seed_s": round(seed_s, 1),
            "db_bytes": path.stat().st_size,
            "starts": args.starts,
            "cases": cases,
            "loadavg_1m": os.getloadavg()[0],
            "command": " ".join([Path(sys.executable).name, *sys.argv]),
        }
        print(json.dumps(report, indent=2))
        for name, case in cases.items():
            print(
                f"{name:8} exec->readyz 200 median {case['readyz']['median_s']:.3f} s "
                f"(min {case['readyz']['min_s']:.3f}, max {case['readyz']['max_s']:.3f}), "
                f"exec->'ready on' {case['log']['median_s']:.3f} s; "
                f"in-process phases ms {case['phases_ms']}",
                file=sys.stderr,
            )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
