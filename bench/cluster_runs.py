"""One repetition of a bench/cluster.py scenario on a started topology (bench/topology.py).

Jobs (S3, S4): every job's body encoded before the clock, the jobs submitted to the API
replica one after the other, their streams read from it at once (one thread each, receiving
bytes only), the clock stopped at the last result line of the last stream; every result
checked against what the target was told to answer (bench/scenarios.py), the end line too.
Monitors (S5): the topology runs a monitors file for a while; lag (due -> the check started)
computed afterwards for every stored check from the scheduler's own grid.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from driver import (
    MAX_EXAMPLES,
    StatusPoller,
    _check_end,
    _nginx_cpu,
    _parse_stream,
    _read_stream,
    percentile,
    validate_service,
)
from scenarios import Scenario, build_urls
from sqlalchemy import create_engine, select
from target import NginxTarget
from topology import Topology

from app.db.schema import monitor_results, monitors
from app.db.url import sqlalchemy_url
from app.monitors.timing import offset_s, slot_after


@dataclass(frozen=True)
class JobsCase:
    """`jobs` jobs of `scenario.urls` URLs each, submitted at once."""

    scenario: Scenario
    jobs: int = 1
    poll_status: bool = False


@dataclass(frozen=True)
class MonitorsCase:
    monitors: int
    interval_s: float
    duration_s: float
    warmup_s: float
    workers: int


def read_stream(url: str, deadline: float) -> tuple[list[bytes], list[float]]:
    """driver._read_stream with a read timeout up to the deadline: a job queued behind
    others may send nothing for longer than a minute (S4's four jobs on one process)."""
    with requests.Session() as session:
        return _read_stream(session, url, deadline, max(5.0, deadline - time.perf_counter()))


def submit(
    session: requests.Session, api: str, body: bytes, deadline: float, refused: list[str]
) -> str:
    """POST the job as a client would: a 503 or 429 (the store's database behind: one
    process writing the previous jobs' results) is retried a second later, and noted."""
    pause = threading.Event()
    while True:
        answer = session.post(
            f"{api}/v1/jobs",
            data=body,
            headers={"Content-Type": "application/json"},
            timeout=(5, max(5.0, deadline - time.perf_counter())),
        )
        if answer.status_code == 202:
            return str(answer.json()["id"])
        if answer.status_code not in (429, 503) or time.perf_counter() > deadline:
            raise RuntimeError(f"POST /v1/jobs: {answer.status_code} {answer.text[:300]}")
        refused.append(f"{answer.status_code} {answer.text[:120]}")
        pause.wait(1.0)


def per_check(usage: dict[str, Any], checks: int) -> dict[str, Any]:
    """CPU ms and wake-ups per check for every component of a usage delta."""
    out: dict[str, Any] = {}
    for name, figures in usage.items():
        if "cpu_s" not in figures:
            continue
        out[name] = {
            "cpu_ms_per_check": 1000.0 * figures["cpu_s"] / max(1, checks),
            "wakeups_per_check": figures["voluntary_switches"] / max(1, checks),
        }
    replicas = [v for k, v in usage.items() if k != "postgres" and "cpu_s" in v]
    total_cpu = sum(v["cpu_s"] for v in replicas) + usage.get("postgres", {}).get("cpu_s", 0.0)
    total_wakeups = sum(v["voluntary_switches"] for v in replicas) + usage.get("postgres", {}).get(
        "voluntary_switches", 0
    )
    out["total"] = {
        "cpu_ms_per_check": 1000.0 * total_cpu / max(1, checks),
        "wakeups_per_check": total_wakeups / max(1, checks),
    }
    return out


def run_jobs(topology: Topology, case: JobsCase, target: NginxTarget) -> dict[str, Any]:
    scenario = case.scenario
    jobs = [build_urls(scenario, target.port, uuid.uuid4().hex[:8]) for _ in range(case.jobs)]
    bodies = [json.dumps({"urls": urls, "options": {"timeout_s": 10}}).encode() for urls, _ in jobs]
    total = sum(len(urls) for urls, _ in jobs)
    deadline_s = max(120.0, total / 200.0)
    out: dict[str, Any] = {"ok": False, "topology": topology.name, "urls": total}
    api = topology.api_url
    poller = None
    floors: dict[str, StatusPoller] = {}
    streams: list[tuple[list[bytes], list[float]] | BaseException] = [
        RuntimeError("not read") for _ in jobs
    ]
    try:
        topology.reset_statements()
        usage0, nginx0 = topology.usage(), _nginx_cpu(target)
        if case.poll_status:
            polls = int(deadline_s / 0.05) + 1
            poller = StatusPoller(api, 0.05, polls)
            # The same poll of the replica's cheapest route, and of nginx (another process,
            # in C): what is the status route's, the replica's event loop's, the machine's.
            floors = {
                "healthz": StatusPoller(api, 0.05, polls, "/healthz"),
                "nginx": StatusPoller(target.url(0, ""), 0.05, polls, "/status/200"),
            }
            for each in (poller, *floors.values()):
                each.start()
        start = time.perf_counter()
        job_ids: list[str] = []
        submit_s: list[float] = []
        refused: list[str] = []
        with requests.Session() as session:
            for body in bodies:
                t = time.perf_counter()
                job_id = submit(session, api, body, start + deadline_s, refused)
                submit_s.append(time.perf_counter() - t)
                job_ids.append(job_id)
        out["submit_refusals"] = refused

        def read(i: int, job_id: str) -> None:
            try:
                streams[i] = read_stream(f"{api}/v1/jobs/{job_id}/stream", start + deadline_s)
            except BaseException as exc:  # reported below with the run
                streams[i] = exc

        readers = [
            threading.Thread(target=read, args=(i, j), daemon=True) for i, j in enumerate(job_ids)
        ]
        for reader in readers:
            reader.start()
        for reader in readers:
            reader.join(deadline_s + 10)
        stream_end = time.perf_counter()
        if poller is not None:
            for each in (poller, *floors.values()):
                each.stop()
        usage = topology.usage().minus(usage0)
        out["target_cpu_s"] = _nginx_cpu(target) - nginx0
        out["peak_rss_mb"] = topology.peak_rss_mb()
        out["submit_s"] = submit_s
        out["usage"] = usage
        out["per_check"] = per_check(usage, total)
        out["top_statements"] = topology.top_statements()
        last_times, failures, examples, reported = [], 0, [], []
        for (urls, expected), stream in zip(jobs, streams, strict=True):
            if isinstance(stream, BaseException):
                raise RuntimeError(f"stream: {type(stream).__name__}: {stream}")
            results, end, last_time, _other = _parse_stream(*stream)
            validation, latencies = validate_service(urls, expected, results)
            reported += latencies
            _check_end(end, len(urls), validation)
            failures += validation.failures
            examples += validation.examples
            last_times.append(last_time if last_time is not None else stream_end)
        out["wall_s"] = max(last_times) - start
        # How many of the machine's cores the service (every component) and nginx kept busy.
        spent = sum(v["cpu_s"] for v in usage.values() if "cpu_s" in v)
        out["cores_busy"] = (spent + out["target_cpu_s"]) / out["wall_s"]
        out["validation"] = {"failures": failures, "examples": examples[:MAX_EXAMPLES]}
        # What the checks reported against the target's true delay: an overloaded checker
        # reports latencies the target never had.
        out["reported_p50_ms"] = percentile(reported, 50)
        out["reported_p99_ms"] = percentile(reported, 99)
        if poller is not None:
            out["status_polls"] = len(poller.latencies_ms)
            out["status_error_count"] = len(poller.errors)
            out["status_errors"] = poller.errors[:MAX_EXAMPLES]
            out["status_p50_ms"] = percentile(poller.latencies_ms, 50)
            out["status_p99_ms"] = percentile(poller.latencies_ms, 99)
            out["status_max_ms"] = max(poller.latencies_ms, default=None)
            for name, floor in floors.items():
                out[f"{name}_p50_ms"] = percentile(floor.latencies_ms, 50)
                out[f"{name}_p99_ms"] = percentile(floor.latencies_ms, 99)
        out["ok"] = failures == 0
    except (RuntimeError, requests.RequestException, ValueError, KeyError, OSError) as exc:
        out["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        for each in [*([poller] if poller else []), *floors.values()]:
            if each.is_alive():
                each.stop()
    return out


def run_monitors(topology: Topology, case: MonitorsCase) -> dict[str, Any]:
    out: dict[str, Any] = {"ok": False, "topology": topology.name}
    try:
        pause = threading.Event()
        pause.wait(case.warmup_s)
        topology.reset_statements()
        poller = StatusPoller(topology.api_url, 0.5, int(case.duration_s / 0.5) + 10)
        usage0 = topology.usage()
        t0 = time.time()
        poller.start()
        pause.wait(case.duration_s)
        end = time.time()
        usage = topology.usage().minus(usage0)
        poller.stop()
        out["scheduler"] = {
            name: _scheduler_stats(url) for name, url in topology.urls.items() if name != "api"
        }
        out["peak_rss_mb"] = topology.peak_rss_mb()
        out["usage"] = usage
        out["top_statements"] = topology.top_statements()
        out["status_p50_ms"] = percentile(poller.latencies_ms, 50)
        out["status_p99_ms"] = percentile(poller.latencies_ms, 99)
        out["status_error_count"] = len(poller.errors)
        out["window"] = [t0, end]
        out["ok"] = True
    except (RuntimeError, requests.RequestException, ValueError, KeyError, OSError) as exc:
        out["error"] = f"{type(exc).__name__}: {exc}"
    return out


def monitor_lags(database_url: str, interval: float, t0: float, end: float) -> dict[str, Any]:
    """Lag of every check stored in [t0, end), and due times run more than once."""
    engine = create_engine(sqlalchemy_url(database_url, Path(".")))
    try:
        with engine.connect() as connection:
            slugs = {
                r.id: r.slug for r in connection.execute(select(monitors.c.id, monitors.c.slug))
            }
            rows = connection.execute(
                select(monitor_results.c.monitor_id, monitor_results.c.at_ms).where(
                    monitor_results.c.at_ms >= int(t0 * 1000),
                    monitor_results.c.at_ms < int(end * 1000),
                )
            ).all()
    finally:
        engine.dispose()
    lags: list[float] = []
    slots: Counter[tuple[int, float]] = Counter()
    per_monitor: dict[int, int] = defaultdict(int)
    for monitor_id, at_ms in rows:
        at = at_ms / 1000.0
        offset = offset_s(slugs[monitor_id], interval)
        due = slot_after(at + 0.001, interval, offset) - interval
        lags.append(max(0.0, at - due))
        slots[(monitor_id, round(due, 3))] += 1
        per_monitor[monitor_id] += 1
    return {
        "checks": len(lags),
        "checks_due": round(len(slugs) * (end - t0) / interval),
        "monitors_checked": len(per_monitor),
        "due_times_run_twice": sum(1 for n in slots.values() if n > 1),
        "lag_p50_ms": _ms(percentile(lags, 50)),
        "lag_p99_ms": _ms(percentile(lags, 99)),
        "lag_max_ms": _ms(max(lags, default=None)),
    }


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else 1000.0 * seconds


def _scheduler_stats(base_url: str) -> dict[str, Any] | None:
    try:
        return dict(requests.get(f"{base_url}/v1/status", timeout=10).json().get("monitors"))
    except (requests.RequestException, ValueError, TypeError):
        return None
