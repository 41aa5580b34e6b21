"""S6 (issue 9's "S5"): many monitors on a schedule, a batch job landing in the middle.

    bash bench/run.sh --help >/dev/null   # once: nginx + bench/.venv (see bench/README.md)
    bench/.venv/bin/python bench/monitors.py                      # 10,000 monitors, 60 s, 5 min
    bench/.venv/bin/python bench/monitors.py --quick              # 1,000 monitors, 10 s, 60 s

A fresh `urlhealth serve` (SQLite, as users run it) loads `--monitors` monitors from a
monitors file (every one a unique URL on the nginx target, `/delay/<ms>` over eight loopback
hosts), runs for `--duration` seconds, and halfway submits a batch job of `--batch-urls` URLs
to the same hosts that hang for `--batch-delay-ms` each. Meanwhile API clients read a
monitor, the monitor list, /v1/status and an uptime window, about `--api-rate` requests/s.

Scheduler lag (due → the check started) is computed per check afterwards from the stored
results: each result's start time against the monitor's own due time (the scheduler's
grid, app/monitors/timing.py), split into checks started before the batch job, while it
ran, and after.
Prints one JSON object: lag p50/p99/max per phase, checks done against checks due, skipped
runs, API latency p50/p99 per endpoint, the service's CPU and wake-ups per check, peak RSS,
database bytes per stored result and its growth per day of history at this rate.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from sqlalchemy import create_engine, func, select

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from driver import percentile  # bench/ is on sys.path when run as a script
from service import ServiceProcess
from target import NginxTarget

from app.db.schema import incidents, monitor_results, monitors
from app.monitors.timing import offset_s, slot_after
from app.schemas.monitoring import CODE_OUTCOME

# Paths the nginx target serves (bench/target.py DEFAULT_DELAYS_MS): every monitor is up.
DELAYS_MS = (0, 1, 5, 10, 20)


@dataclass
class ApiTimes:
    lock: threading.Lock = field(default_factory=threading.Lock)
    ms: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: list[str] = field(default_factory=list)

    def add(self, name: str, ms: float) -> None:
        with self.lock:
            self.ms[name].append(ms)

    def error(self, text: str) -> None:
        with self.lock:
            if len(self.errors) < 10:
                self.errors.append(text)


def write_monitors_file(path: Path, target: NginxTarget, count: int, interval: float) -> None:
    lines = []
    for i in range(count):
        url = target.url(i, f"/delay/{DELAYS_MS[i % len(DELAYS_MS)]}?m={i}")
        lines += [
            "[[monitors]]",
            f'name = "monitor {i}"',
            f'slug = "m{i}"',
            f'url = "{url}"',
            f"interval_s = {interval}",
            f'group = "g{i % 10}"',
            "",
        ]
    path.write_text("\n".join(lines))


def api_clients(base: str, count: int, rate: float, stop: threading.Event, times: ApiTimes) -> None:
    endpoints: list[tuple[str, Callable[[], str]]] = [
        ("monitor", lambda: f"/v1/monitors/m{random.randrange(count)}"),
        ("list", lambda: "/v1/monitors?limit=50"),
        ("status", lambda: "/v1/status"),
        ("uptime_24h", lambda: f"/v1/monitors/m{random.randrange(count)}/uptime?window=24h"),
    ]
    period = 1.0 / rate
    with requests.Session() as session:
        while not stop.wait(period):
            name, path = random.choice(endpoints)
            started = time.perf_counter()
            try:
                answer = session.get(base + path(), timeout=10)
                if answer.status_code != 200:
                    times.error(f"{name}: {answer.status_code} {answer.text[:200]}")
                    continue
            except requests.RequestException as exc:
                times.error(f"{name}: {exc}")
                continue
            times.add(name, (time.perf_counter() - started) * 1000)


def lags(db_path: Path, interval: float, phases: list[tuple[str, float, float]]) -> dict[str, Any]:
    """Lag of every stored check, by phase (start and end in epoch seconds)."""
    engine = create_engine(f"sqlite:///{db_path}")
    out: dict[str, Any] = {}
    with engine.connect() as connection:
        slugs: dict[int, str] = {
            row.id: row.slug for row in connection.execute(select(monitors.c.id, monitors.c.slug))
        }
        rows = connection.execute(select(monitor_results.c.monitor_id, monitor_results.c.at_ms))
        by_phase: dict[str, list[float]] = defaultdict(list)
        for monitor_id, at_ms in rows:
            at = at_ms / 1000.0
            # The grid time at or before the start (the scheduler's own due time); at_ms is cut
            # to the millisecond, so a start on time may read up to 1 ms before its due time.
            offset = offset_s(slugs[monitor_id], interval)
            due = slot_after(at + 0.001, interval, offset) - interval
            lag = max(0.0, at - due)
            for name, start, end in phases:
                if start <= at < end:
                    by_phase[name].append(lag)
        stored = connection.execute(select(func.count()).select_from(monitor_results)).scalar()
        kinds = connection.execute(
            select(monitor_results.c.outcome, monitor_results.c.error_kind, func.count()).group_by(
                monitor_results.c.outcome, monitor_results.c.error_kind
            )
        ).all()
        out["outcomes"] = {f"{CODE_OUTCOME[o]}:{kind or '-'}": n for o, kind, n in kinds}
        out["incidents"] = connection.execute(select(func.count()).select_from(incidents)).scalar()
        # Full results kept for failures and state changes: a short run is mostly each
        # monitor's first change (unknown -> up), which a day of history amortises.
        out["detail_bytes"] = connection.execute(
            select(func.coalesce(func.sum(func.length(monitor_results.c.detail)), 0))
        ).scalar()
    engine.dispose()
    for name, values in by_phase.items():
        out[name] = {
            "checks": len(values),
            "lag_p50_s": percentile(values, 50),
            "lag_p99_s": percentile(values, 99),
            "lag_max_s": max(values),
        }
    out["stored_results"] = stored
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"args": vars(args)}
    with NginxTarget(worker_processes=1) as target, tempfile.TemporaryDirectory() as tmp:
        monitors_file = Path(tmp) / "monitors.toml"
        write_monitors_file(monitors_file, target, args.monitors, args.interval)
        service = ServiceProcess(
            workers=args.workers,
            max_connections_per_host_per_replica=args.workers,
            ready_timeout_s=120.0,
            stop_timeout_s=60.0,
            extra_env={
                "URLHEALTH_MONITORS_FILE": str(monitors_file),
                "URLHEALTH_MONITOR_MIN_INTERVAL_S": "1",
            },
        )
        service.start()
        try:
            out["startup_s"] = service.startup_s
            db_path = service.db_path
            assert db_path is not None
            times, stop = ApiTimes(), threading.Event()
            clients = threading.Thread(
                target=api_clients,
                args=(service.base_url, args.monitors, args.api_rate, stop, times),
                daemon=True,
            )
            cpu0, switches0 = service.cpu_s(), service.context_switches()
            bytes0 = db_path.stat().st_size
            t0 = time.time()
            clients.start()
            time.sleep(args.duration / 2)
            batch_start = time.time()
            urls = [
                target.url(i, f"/delay/{args.batch_delay_ms}?b={i}") for i in range(args.batch_urls)
            ]
            answer = requests.post(f"{service.base_url}/v1/jobs", json={"urls": urls}, timeout=60)
            answer.raise_for_status()
            job_id = answer.json()["id"]
            batch_end = None
            deadline = t0 + args.duration
            while time.time() < deadline:
                if batch_end is None:
                    job = requests.get(f"{service.base_url}/v1/jobs/{job_id}?limit=1", timeout=10)
                    if job.json()["status"] not in ("queued", "running"):
                        batch_end = time.time()
                time.sleep(0.5)
            end = time.time()
            stop.set()
            clients.join(timeout=15)
            cpu1, switches1 = service.cpu_s(), service.context_switches()
            status = requests.get(f"{service.base_url}/v1/status", timeout=10).json()
            out["peak_rss_mb"] = service.memory().get("VmHWM")
            out["status_monitors"] = status.get("monitors")
        finally:
            service.stop()
        out["batch_s"] = None if batch_end is None else batch_end - batch_start
        phases = [
            ("before_batch", t0, batch_start),
            ("during_batch", batch_start, batch_end or end),
            ("after_batch", batch_end or end, end),
        ]
        out["lag"] = lags(db_path, args.interval, phases)
        checks = sum(
            phase["checks"]
            for name, phase in out["lag"].items()
            if name in dict.fromkeys(p[0] for p in phases)
        )
        out["checks"] = checks
        out["checks_due"] = round(args.monitors * (end - t0) / args.interval)
        out["cpu_ms_per_check"] = 1000 * (cpu1 - cpu0) / max(1, checks + args.batch_urls)
        out["wakeups_per_check"] = (switches1["voluntary"] - switches0["voluntary"]) / max(
            1, checks + args.batch_urls
        )
        out["db_bytes"] = db_path.stat().st_size + _wal_bytes(db_path)
        out["db_bytes_at_start"] = bytes0
        # The history's own tables (the batch job's rows are not monitor history).
        by_object = service.db_bytes_by_object() or {}
        history = {
            name: size
            for name, size in by_object.items()
            if name.startswith(("monitor_results", "ix_monitor_results", "monitor_rollups"))
            or name.startswith(("sqlite_autoindex_monitor_rollups", "incidents"))
        }
        out["history_bytes_by_object"] = history
        stored = out["lag"]["stored_results"] or 1
        out["history_bytes_per_result"] = sum(history.values()) / stored
        raw = sum(size for name, size in history.items() if "monitor_results" in name)
        steady = (raw - out["lag"]["detail_bytes"]) / stored
        out["raw_bytes_per_result_without_detail"] = steady
        per_day = args.monitors * 86400 / args.interval
        # Raw results are kept history_raw_days; rollups add 25 rows per monitor a day.
        out["raw_mb_per_day"] = steady * per_day / 2**20
        out["api"] = {
            name: {
                "n": len(values),
                "p50_ms": percentile(values, 50),
                "p99_ms": percentile(values, 99),
            }
            for name, values in times.ms.items()
        }
        out["api_errors"] = times.errors
    return out


def _wal_bytes(db_path: Path) -> int:
    wal = Path(f"{db_path}-wal")
    return wal.stat().st_size if wal.exists() else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--monitors", type=int, default=10_000)
    parser.add_argument("--interval", type=float, default=60.0)
    parser.add_argument("--duration", type=float, default=300.0)
    parser.add_argument("--batch-urls", type=int, default=10_000)
    parser.add_argument("--batch-delay-ms", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=64)
    parser.add_argument("--api-rate", type=float, default=10.0)
    parser.add_argument("--quick", action="store_true", help="1,000 monitors, 10 s, 60 s")
    args = parser.parse_args(argv)
    if args.quick:
        args.monitors, args.interval, args.duration, args.batch_urls = 1000, 10.0, 60.0, 2000
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    print(json.dumps(run(args), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
