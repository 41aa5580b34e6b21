"""One repetition of a scenario: through the service's public API, or through the baseline.

The driver shares two cores with the service and nginx, so while a job runs it only
receives bytes and stamps each chunk's arrival; it parses and checks the results after
the stream has ended.
"""

from __future__ import annotations

import bisect
import json
import math
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from scenarios import Expected, Scenario, build_urls, check_result
from service import ServiceError, ServiceProcess, child_pids, cpu_seconds
from target import NginxTarget

BASELINE_SCRIPT = Path(__file__).with_name("baseline.py")
STREAM_CHUNK = 1 << 16
MAX_EXAMPLES = 5


def percentile(values: list[float], q: float) -> float | None:
    """Linear-interpolated percentile (q in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    low, high = math.floor(pos), math.ceil(pos)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def job_deadline_s(scenario: Scenario) -> float:
    """How long one run may take before it is abandoned (a failure, not a slow run)."""
    return max(60.0, 30.0 * scenario.ideal_s, scenario.urls / 100.0)


@dataclass
class Validation:
    """Per-URL results checked against what the target was told to answer."""

    checked: int = 0
    wrong: int = 0
    missing: int = 0
    duplicate: int = 0
    unknown: int = 0
    examples: list[str] = field(default_factory=list)

    def note(self, text: str) -> None:
        if len(self.examples) < MAX_EXAMPLES:
            self.examples.append(text)

    @property
    def failures(self) -> int:
        return self.wrong + self.missing + self.duplicate + self.unknown

    def as_dict(self) -> dict[str, Any]:
        return {
            "checked": self.checked,
            "wrong": self.wrong,
            "missing": self.missing,
            "duplicate": self.duplicate,
            "unknown": self.unknown,
            "examples": self.examples,
        }


# --------------------------------------------------------------------------- service


class StatusPoller(threading.Thread):
    """Polls GET /v1/status (or `path`) every interval until stopped (bounded in count),
    timing each."""

    def __init__(
        self, base_url: str, interval_s: float, max_polls: int, path: str = "/v1/status"
    ) -> None:
        super().__init__(daemon=True)
        self.url = f"{base_url}{path}"
        self.interval_s = interval_s
        self.max_polls = max_polls
        self.stop_event = threading.Event()
        self.latencies_ms: list[float] = []
        self.errors: list[str] = []

    def run(self) -> None:
        with requests.Session() as session:
            for _ in range(self.max_polls):
                if self.stop_event.is_set():
                    return
                start = time.perf_counter()
                try:
                    response = session.get(self.url, timeout=5)
                    response.content  # noqa: B018 - read the whole body inside the timing
                    if response.status_code != 200:
                        self.errors.append(f"HTTP {response.status_code}")
                except requests.RequestException as exc:
                    self.errors.append(type(exc).__name__)
                self.latencies_ms.append((time.perf_counter() - start) * 1000.0)
                self.stop_event.wait(self.interval_s)

    def stop(self) -> None:
        self.stop_event.set()
        self.join(timeout=10)


def _read_stream(
    session: requests.Session, url: str, deadline: float, read_timeout_s: float = 60.0
) -> tuple[list[bytes], list[float]]:
    """Receive the NDJSON stream, stamping each chunk's arrival; nothing else."""
    chunks: list[bytes] = []
    stamps: list[float] = []
    with session.get(url, stream=True, timeout=(5, read_timeout_s)) as response:
        if response.status_code != 200:
            raise ServiceError(f"GET stream: HTTP {response.status_code}: {response.text[:300]}")
        for chunk in response.iter_content(chunk_size=STREAM_CHUNK):
            chunks.append(chunk)
            stamps.append(time.perf_counter())
            if stamps[-1] > deadline:
                raise ServiceError("stream still open at the run's deadline")
    return chunks, stamps


def _parse_stream(
    chunks: list[bytes], stamps: list[float]
) -> tuple[list[dict[str, Any]], dict[str, Any] | None, float | None, dict[str, int]]:
    """Results, the end line, when the last result arrived, and a count of other line types."""
    ends: list[int] = []
    total = 0
    for chunk in chunks:
        total += len(chunk)
        ends.append(total)
    data = b"".join(chunks)
    results: list[dict[str, Any]] = []
    end: dict[str, Any] | None = None
    last_result_offset = -1
    other: dict[str, int] = {}
    offset = 0
    for line in data.split(b"\n"):
        line_end = offset + len(line)
        offset = line_end + 1
        if not line.strip():
            continue
        obj = json.loads(line)
        kind = obj.get("type")
        if kind == "result":
            results.append(obj.get("result") or {})
            last_result_offset = line_end - 1
        elif kind == "end":
            end = obj
        else:
            other[str(kind)] = other.get(str(kind), 0) + 1
    last_time = None
    if last_result_offset >= 0:
        last_time = stamps[bisect.bisect_right(ends, last_result_offset)]
    return results, end, last_time, other


def validate_service(
    urls: list[str], expected: list[Expected], results: list[dict[str, Any]]
) -> tuple[Validation, list[float]]:
    """Check each result; return the validation and the reported latencies of /delay URLs."""
    index = {url: i for i, url in enumerate(urls)}
    seen = [False] * len(urls)
    latencies: list[float] = []
    v = Validation()
    for result in results:
        url = result.get("url")
        i = index.get(url) if isinstance(url, str) else None
        if i is None:
            v.unknown += 1
            v.note(f"result for a URL not submitted: {url!r}")
            continue
        if seen[i]:
            v.duplicate += 1
            v.note(f"second result for {url}")
            continue
        seen[i] = True
        v.checked += 1
        problem = check_result(result, expected[i])
        if problem:
            v.wrong += 1
            v.note(f"{url}: {problem}")
        elif expected[i].delay_ms is not None:
            latencies.append(float(result["elapsed_ms"]))
    v.missing = seen.count(False)
    if v.missing:
        v.note(f"{v.missing} URLs without a result, e.g. {urls[seen.index(False)]}")
    return v, latencies


def _check_end(end: dict[str, Any] | None, n_urls: int, v: Validation) -> None:
    if end is None:
        v.wrong += 1
        v.note("the stream ended without an end line")
        return
    job = end.get("job") or {}
    if job.get("status") != "done":
        v.wrong += 1
        v.note(f"end line: job status {job.get('status')!r}, want 'done'")
    for key in ("total", "completed"):
        if key in job and job[key] != n_urls:
            v.wrong += 1
            v.note(f"end line: job {key} {job[key]!r}, want {n_urls}")


def _nginx_cpu(target: NginxTarget) -> float:
    if target.process is None:
        return 0.0
    pids = [target.process.pid, *child_pids(target.process.pid)]
    return sum(cpu_seconds(pid) for pid in pids)


def _store_figures(
    out: dict[str, Any],
    service: ServiceProcess,
    switches0: dict[str, int],
    checks: int,
    switches: dict[str, int] | None = None,
) -> None:
    """Per-check CPU and wake-ups (voluntary context switches over all threads)."""
    switches = switches or service.context_switches()
    voluntary = switches["voluntary"] - switches0["voluntary"]
    involuntary = switches["involuntary"] - switches0["involuntary"]
    out["voluntary_switches"] = voluntary
    out["involuntary_switches"] = involuntary
    if checks:
        out["cpu_per_check_ms"] = 1000.0 * out["cpu_s"] / checks
        out["wakeups_per_check"] = voluntary / checks
    out["db_bytes_at_end"] = service.db_bytes()


def _stop_service(out: dict[str, Any], service: ServiceProcess, stored: int) -> None:
    """Stop the service and record how it stopped, its database, and its log when the run
    failed; a service that had to be killed fails the run."""
    service.stop()
    out["sigkill"] = service.killed
    out["exit_code"] = service.exit_code
    out["stop_s"] = service.stop_s
    _db_after_stop(out, service, stored)
    if not out["ok"] or service.killed:
        out["service_log_tail"] = service.log_tail()
    service.cleanup()
    if service.killed:
        out["ok"] = False
        out.setdefault("error", "service did not exit within 30 s of SIGTERM (killed)")


def _db_after_stop(out: dict[str, Any], service: ServiceProcess, results: int) -> None:
    """The SQLite file (with -wal) once the service has flushed and exited, per result."""
    sizes = service.db_bytes()
    out["db_bytes_after_stop"] = sizes
    if sizes is not None and results and out.get("exit_code") == 0:
        out["db_bytes_per_result"] = (sizes["db"] + sizes["db_wal"]) / results
        # Without what the empty schema took at start (the file is small: a 10,000-result
        # job's share of it is not).
        start = out.get("db_bytes_at_start") or {"db": 0, "db_wal": 0}
        grown = sizes["db"] + sizes["db_wal"] - start["db"] - start["db_wal"]
        out["db_bytes_per_result_marginal"] = grown / results
        by_object = service.db_bytes_by_object()
        if by_object:
            out["db_bytes_per_result_by_object"] = {
                name: round(size / results, 1) for name, size in by_object.items()
            }


def run_service(scenario: Scenario, target: NginxTarget, store: str = "sqlite") -> dict[str, Any]:
    """Fresh service process, submit the job, read the stream to the end, check every result."""
    urls, expected = build_urls(scenario, target.port, uuid.uuid4().hex[:8])
    body = json.dumps({"urls": urls, "options": {"timeout_s": 10}}).encode()
    out: dict[str, Any] = {"ok": False, "store": store}
    service = ServiceProcess(
        workers=scenario.workers, max_connections_per_host_per_replica=scenario.workers, store=store
    )
    poller: StatusPoller | None = None
    try:
        service.start()
        out["startup_s"] = service.startup_s
        out["db_bytes_at_start"] = service.db_bytes()
        deadline_s = job_deadline_s(scenario)
        with requests.Session() as session:
            cpu0, nginx_cpu0 = service.cpu_s(), _nginx_cpu(target)
            switches0 = service.context_switches()
            driver_cpu0 = time.process_time()
            out["loadavg_1m"] = os.getloadavg()[0]
            if scenario.poll_status:
                poller = StatusPoller(service.base_url, 0.05, int(deadline_s / 0.05) + 1)
                poller.start()
            start = time.perf_counter()
            response = session.post(
                f"{service.base_url}/v1/jobs",
                data=body,
                headers={"Content-Type": "application/json"},
                timeout=(5, deadline_s),
            )
            out["submit_s"] = time.perf_counter() - start
            if response.status_code != 202:
                raise ServiceError(
                    f"POST /v1/jobs: HTTP {response.status_code}: {response.text[:500]}"
                )
            job_id = response.json()["id"]
            chunks, stamps = _read_stream(
                session, f"{service.base_url}/v1/jobs/{job_id}/stream", start + deadline_s
            )
            stream_end = time.perf_counter()
            if poller is not None:
                poller.stop()
            out["cpu_s"] = service.cpu_s() - cpu0
            out["target_cpu_s"] = _nginx_cpu(target) - nginx_cpu0
            out["driver_cpu_s"] = time.process_time() - driver_cpu0
            memory = service.memory()
            out["peak_rss_mb"] = memory.get("VmHWM")
            out["rss_end_mb"] = memory.get("VmRSS")
            out["children"] = len(service.children())
            _store_figures(out, service, switches0, len(urls))
        results, end, last_time, other = _parse_stream(chunks, stamps)
        out["wall_s"] = (last_time if last_time is not None else stream_end) - start
        out["stream_close_s"] = stream_end - start
        out["other_lines"] = other
        validation, latencies = validate_service(urls, expected, results)
        _check_end(end, len(urls), validation)
        out["end"] = (end or {}).get("job")
        out["validation"] = validation.as_dict()
        out["reported_p50_ms"] = percentile(latencies, 50)
        out["reported_p99_ms"] = percentile(latencies, 99)
        out["reported_max_ms"] = max(latencies) if latencies else None
        if poller is not None:
            out["status_polls"] = len(poller.latencies_ms)
            out["status_errors"] = poller.errors[:MAX_EXAMPLES]
            out["status_error_count"] = len(poller.errors)
            out["status_p50_ms"] = percentile(poller.latencies_ms, 50)
            out["status_p99_ms"] = percentile(poller.latencies_ms, 99)
            out["status_max_ms"] = max(poller.latencies_ms) if poller.latencies_ms else None
        # A status poll that failed (a timeout) is counted in the status figures at the time
        # it took, and judged by its own verdict: the run's times and results stay valid.
        out["ok"] = validation.failures == 0
    except (ServiceError, requests.RequestException, ValueError, KeyError, OSError) as exc:
        out["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        if poller is not None and poller.is_alive():
            poller.stop()
        _stop_service(out, service, len(urls) if out["ok"] else 0)
    return out


# --------------------------------------------------------------------------- baseline


def run_baseline(scenario: Scenario, target: NginxTarget) -> dict[str, Any]:
    """The tutorial's ThreadPoolExecutor + requests.get, in a fresh Python process."""
    urls, expected = build_urls(scenario, target.port, uuid.uuid4().hex[:8])
    out: dict[str, Any] = {"ok": False}
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(urls, handle)
        urls_file = Path(handle.name)
    try:
        nginx_cpu0 = _nginx_cpu(target)
        out["loadavg_1m"] = os.getloadavg()[0]
        proc = subprocess.run(
            [
                sys.executable,
                str(BASELINE_SCRIPT),
                "--urls-file",
                str(urls_file),
                "--workers",
                str(scenario.workers),
                "--timeout",
                "10",
            ],
            capture_output=True,
            text=True,
            timeout=job_deadline_s(scenario) + 60,
        )
        out["target_cpu_s"] = _nginx_cpu(target) - nginx_cpu0
        if proc.returncode != 0:
            out["error"] = f"baseline exited {proc.returncode}: {proc.stderr[-1000:]}"
            return out
        data = json.loads(proc.stdout)
        v = Validation(checked=len(urls))
        latencies: list[float] = []
        for i, (status, elapsed, error) in enumerate(
            zip(data["status"], data["elapsed_ms"], data["error"], strict=True)
        ):
            if status != expected[i].status:
                v.wrong += 1
                v.note(f"{urls[i]}: status {status!r} ({error}), want {expected[i].status}")
            elif expected[i].delay_ms is not None and elapsed is not None:
                latencies.append(elapsed)
        out.update(
            wall_s=data["elapsed_s"],
            cpu_s=data["cpu_s"],
            peak_rss_mb=data["peak_rss_mb"],
            validation=v.as_dict(),
            reported_p50_ms=percentile(latencies, 50),
            reported_p99_ms=percentile(latencies, 99),
            reported_max_ms=max(latencies) if latencies else None,
            ok=v.failures == 0,
        )
    except subprocess.TimeoutExpired:
        out["error"] = "baseline did not finish within its deadline"
    except (ValueError, KeyError) as exc:
        out["error"] = f"baseline output unreadable: {type(exc).__name__}: {exc}"
    finally:
        urls_file.unlink(missing_ok=True)
    return out


# --------------------------------------------------------------------------- S5: a load

LOAD_SCRIPT = Path(__file__).with_name("load.py")


def _poll_for(base_url: str, seconds: float) -> StatusPoller:
    poller = StatusPoller(base_url, 0.05, int(seconds / 0.05) + 1)
    poller.start()
    poller.stop_event.wait(seconds)
    poller.stop()
    return poller


def _status(session: requests.Session, base_url: str) -> dict[str, Any]:
    body: dict[str, Any] = session.get(f"{base_url}/v1/status", timeout=10).json()
    return body


def run_load(scenario: Scenario, target: NginxTarget, store: str = "sqlite") -> dict[str, Any]:
    """Fresh service; GET /v1/status sampled every 50 ms while idle (the baseline of the same
    run), then while load.py's clients submit, stream and read pages in another process."""
    load = scenario.load
    assert load is not None
    out: dict[str, Any] = {"ok": False, "store": store}
    service = ServiceProcess(
        workers=scenario.workers,
        max_connections_per_host_per_replica=scenario.workers,
        store=store,
        # Finished jobs are what the page readers read: the default retention, not the 10 of
        # the single-job scenarios.
        extra_env={"URLHEALTH_RETENTION_MAX_JOBS": "1000"},
    )
    clients: subprocess.Popen[str] | None = None
    total_checks = 0
    try:
        service.start()
        out["startup_s"] = service.startup_s
        out["db_bytes_at_start"] = service.db_bytes()
        out["loadavg_1m"] = os.getloadavg()[0]
        idle = _poll_for(service.base_url, load.idle_s)
        out["status_idle_p50_ms"] = percentile(idle.latencies_ms, 50)
        out["status_idle_p99_ms"] = percentile(idle.latencies_ms, 99)
        cmd = [
            sys.executable,
            str(LOAD_SCRIPT),
            f"--base-url={service.base_url}",
            f"--target-port={target.port}",
            f"--duration={load.warmup_s + load.duration_s}",
            f"--submitters={load.submitters}",
            f"--streams={load.streams}",
            f"--pagers={load.page_readers}",
            f"--urls-per-job={scenario.urls}",
            f"--delay-ms={scenario.delay_ms}",
        ]
        clients = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        with requests.Session() as session:
            time.sleep(load.warmup_s)
            before, cpu0 = _status(session, service.base_url), service.cpu_s()
            switches0 = service.context_switches()
            start = time.perf_counter()
            poller = _poll_for(service.base_url, load.duration_s)
            out["wall_s"] = time.perf_counter() - start
            after, cpu1 = _status(session, service.base_url), service.cpu_s()
            switches1 = service.context_switches()
        stdout, stderr = clients.communicate(timeout=load.duration_s + 90)
        if clients.returncode != 0:
            raise ServiceError(f"load.py exited {clients.returncode}: {stderr[-1000:]}")
        report = json.loads(stdout)
        out["clients"] = report
        out["checks"] = after["checked_total"] - before["checked_total"]
        out["cpu_s"] = cpu1 - cpu0
        _store_figures(out, service, switches0, out["checks"], switches1)
        out.setdefault("cpu_per_check_ms", None)
        total_checks = after["checked_total"]
        out["peak_rss_mb"] = service.memory().get("VmHWM")
        out["retained_mb"] = after.get("retained_bytes", 0) / 2**20
        out["status_polls"] = len(poller.latencies_ms)
        out["status_errors"] = poller.errors[:MAX_EXAMPLES]
        out["status_p50_ms"] = percentile(poller.latencies_ms, 50)
        out["status_p99_ms"] = percentile(poller.latencies_ms, 99)
        out["status_max_ms"] = max(poller.latencies_ms) if poller.latencies_ms else None
        out["status_ms"] = [round(ms, 1) for ms in poller.latencies_ms]  # for the tail's shape
        out["page_p50_ms"] = report["page_p50_ms"]
        out["page_p99_ms"] = report["page_p99_ms"]
        out["submit_s"] = (report["submit_p50_ms"] or 0.0) / 1000.0
        counts = report["counts"]
        out["ok"] = (
            not report["errors"]
            and not poller.errors
            and report["threads_alive"] == 0
            and counts.get("streams_completed", 0) > 0
            and counts.get("pages_read", 0) > 0
        )
        if not out["ok"]:
            out["error"] = f"load: errors {report['errors'] or poller.errors}, counts {counts}"
    except (ServiceError, requests.RequestException, ValueError, KeyError, OSError) as exc:
        out["error"] = f"{type(exc).__name__}: {exc}"
    except subprocess.TimeoutExpired:
        out["error"] = "load.py did not finish within its deadline"
    finally:
        if clients is not None and clients.poll() is None:
            clients.kill()
            clients.wait(timeout=10)
        # Approximate: jobs still running at the stop add their interrupted checks' rows.
        _stop_service(out, service, total_checks if out["ok"] else 0)
    return out
