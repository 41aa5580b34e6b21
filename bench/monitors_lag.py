"""Monitor scheduler lag on this machine (figures, not a timed test).

N monitors at one interval check the loopback nginx target (bench/target.py) through the real
scheduler and dispatcher, in this process. Two phases of equal length: the monitors alone, then
while a batch job of URLs that hang until their timeout holds every ordinary worker of the pool
and every ordinary slot of the monitors' host. Lag is due -> the check's start.

    .venv/bin/python bench/monitors_lag.py [--monitors 1000] [--interval 5] [--phase 30]
        [--job-urls 10000] [--workers 64] [--monitor-workers 16] [--monitor-slots 2]
        [--monitor-hosts 1]

Needs nginx and its echo module (`bash bench/run.sh --no-service` installs them). Prints, per
phase: checks, lag p50/p99/max, CPU ms and voluntary context switches per check; then the
scheduler's own stats. Nothing leaves the machine (127.0.0.1-127.0.0.8 only).
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import sys
import threading
import time
from concurrent.futures import Future
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
from target import HOSTS, NginxTarget  # bench/ is on sys.path when run as a script

from app.api.validation import public_options
from app.engine.checker import Checker
from app.engine.dispatcher import Dispatcher
from app.engine.options import CheckOptions
from app.engine.policy import DestinationPolicy, parse_networks
from app.engine.resolver import SystemResolver
from app.engine.transport import HttpLayer
from app.monitors.scheduler import MonitorScheduler, Scheduled
from app.monitors.timing import offset_s
from app.schemas.results import CheckResult
from app.store.memory import MemoryStore

HANG_MS = 60_000  # the job's URLs answer after a minute: each check ends at its timeout


class Phase:
    """The lags and outcomes of the checks recorded while it is open."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.lags: list[float] = []
        self.failed = 0


class Collector:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.phase: Phase | None = None

    def record(self, scheduled: Scheduled, started_at: datetime, result: CheckResult) -> None:
        # Due times are on the monitor's grid, so the due time of a check that started less
        # than an interval late is the grid time just before its start (the scheduler's own
        # lag_max, printed at the end, says whether every lag was below the interval).
        start = started_at.timestamp()
        interval = scheduled.interval_s
        offset = offset_s(scheduled.slug, interval)
        due = offset + math.floor((start - offset) / interval) * interval
        with self._lock:
            if self.phase is not None:
                self.phase.lags.append(start - due)
                self.phase.failed += not result.ok


def context_switches() -> int:
    """Voluntary context switches of every thread of this process."""
    total = 0
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        try:
            for line in (task / "status").read_text().splitlines():
                if line.startswith("voluntary_ctxt_switches:"):
                    total += int(line.split()[1])
        except OSError:
            continue  # a thread that ended meanwhile
    return total


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def percentile(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def measure(collector: Collector, name: str, seconds: float) -> dict[str, float]:
    phase = Phase(name)
    cpu0, switches0 = cpu_s(), context_switches()
    with collector._lock:
        collector.phase = phase
    threading.Event().wait(seconds)
    with collector._lock:
        collector.phase = None
    cpu, switches = cpu_s() - cpu0, context_switches() - switches0
    ordered = sorted(phase.lags)
    checks = len(ordered)
    return {
        "checks": checks,
        "failed": phase.failed,
        "lag_p50_ms": 1000 * percentile(ordered, 0.50) if checks else math.nan,
        "lag_p99_ms": 1000 * percentile(ordered, 0.99) if checks else math.nan,
        "lag_max_ms": 1000 * ordered[-1] if checks else math.nan,
        "cpu_ms_per_check": 1000 * cpu / checks if checks else math.nan,
        "switches_per_check": switches / checks if checks else math.nan,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--monitors", type=int, default=1000)
    parser.add_argument("--interval", type=float, default=5.0)
    parser.add_argument("--phase", type=float, default=30.0, help="seconds per phase")
    parser.add_argument("--job-urls", type=int, default=10_000)
    parser.add_argument("--job-timeout", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=64)
    parser.add_argument("--max-per-host", type=int, default=8)
    parser.add_argument("--monitor-workers", type=int, default=16)
    parser.add_argument("--monitor-slots", type=int, default=2)
    parser.add_argument(
        "--monitor-hosts", type=int, default=1, help="hosts the monitors use (1: all on one)"
    )
    args = parser.parse_args(argv)

    target = NginxTarget(delays_ms=(0, HANG_MS)).start()
    policy = DestinationPolicy(allowed_networks=parse_networks(["127.0.0.0/8"]))
    http = HttpLayer(
        "urlhealth-bench",
        policy,
        SystemResolver(),
        max_idle_clients=2 * (args.workers + args.monitor_workers),
    )
    dispatcher = Dispatcher(
        MemoryStore(max_jobs=10, max_age_s=3600),
        Checker(http),
        workers=args.workers,
        max_queued=args.job_urls + 10,
        max_per_host=args.max_per_host,
        monitor_workers=args.monitor_workers,
        monitor_slots_per_host=args.monitor_slots,
    )
    collector = Collector()

    def run(scheduled: Scheduled) -> Future[CheckResult]:
        return dispatcher.check_monitor(scheduled.url, scheduled.options, scheduled.parsed)

    scheduler = MonitorScheduler(
        run, collector.record, lambda monitor_id, due: None, lag_window=1_000_000
    )
    options = CheckOptions(timeout_s=10)
    try:
        for n in range(args.monitors):  # by default all on one host the job crowds: the worst
            url = f"http://{HOSTS[n % args.monitor_hosts]}:{target.port}/delay/0?m={n}"
            scheduler.put(
                Scheduled(n, f"monitor-{n}", args.interval, 1, url, options, httpx.URL(url))
            )
        scheduler.start()
        threading.Event().wait(args.interval + 1)  # every monitor checked once: warm

        figures = {"alone": measure(collector, "alone", args.phase)}
        job = CheckOptions(timeout_s=args.job_timeout)
        urls = [
            f"http://{HOSTS[i % len(HOSTS)]}:{target.port}/delay/{HANG_MS}?i={i}"
            for i in range(args.job_urls)
        ]
        dispatcher.submit_job(urls, job, public_options(job))
        held = min(args.workers, args.max_per_host * len(HOSTS))
        deadline = time.monotonic() + 30
        while dispatcher.counters()[0] < held and time.monotonic() < deadline:
            threading.Event().wait(0.05)
        figures["during job"] = measure(collector, "during job", args.phase)
        stats = scheduler.stats()
        running, waiting = dispatcher.load()
    finally:
        scheduler.stop(5)
        dispatcher.stop_accepting()
        dispatcher.cancel_all_queued()
        dispatcher.interrupt_running()
        http.abort_in_flight()
        dispatcher.wait_drained(10)
        dispatcher.close()
        http.close()
        target.stop()

    print(
        f"{args.monitors} monitors at {args.interval:g} s on {args.monitor_hosts} host(s);"
        f" workers {args.workers}"
        f" (+{args.monitor_workers} for monitors), {args.max_per_host} per host"
        f" (+{args.monitor_slots}); job: {args.job_urls} URLs hanging {args.job_timeout:g} s"
        f" over {len(HOSTS)} hosts; {args.phase:g} s per phase"
    )
    print(
        f"{'phase':<11} {'checks':>7} {'failed':>6} {'lag p50 ms':>10} {'p99 ms':>8}"
        f" {'max ms':>8} {'CPU ms/check':>12} {'switches/check':>14}"
    )
    for name, row in figures.items():
        print(
            f"{name:<11} {row['checks']:>7.0f} {row['failed']:>6.0f} {row['lag_p50_ms']:>10.1f}"
            f" {row['lag_p99_ms']:>8.1f} {row['lag_max_ms']:>8.1f}"
            f" {row['cpu_ms_per_check']:>12.2f} {row['switches_per_check']:>14.1f}"
        )
    print(
        f"scheduler: lag max {1000 * stats.lag_max_s:.1f} ms over {stats.lag_samples} checks"
        f" (below the interval: the per-phase lags above are exact), skipped {stats.skipped},"
        f" errors {stats.errors}; at the end the engine ran {running} checks, {waiting} waiting"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
