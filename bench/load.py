"""S5's clients, in a process of their own (so their threads do not share a GIL with the
driver's status sampler): submitters, stream watchers and page readers against one service,
for a fixed time, every loop bounded in count. Prints one JSON object of counts on stdout.

    python load.py --base-url http://127.0.0.1:PORT --target-port P --duration 20

- each submitter POSTs a job of `--urls-per-job` unique /delay URLs on 127.0.0.1-8, reads
  its stream to the `end` line, and submits the next (a 429 waits `Retry-After`);
- each watcher streams the newest job it has not yet read, to its end;
- each page reader GETs `/v1/jobs/{id}?limit=1000` of a finished job, again and again.
Streams and pages are checked: every stream ends with its `end` line and one result line per
URL, every page holds min(1000, total) results.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import requests

HOSTS = tuple(f"127.0.0.{i}" for i in range(1, 9))
MAX_ERRORS = 5
# Loops are bounded in count as well as in time.
MAX_JOBS_PER_SUBMITTER = 200
MAX_STREAMS_PER_WATCHER = 500
MAX_PAGES_PER_READER = 20_000
PAGE_LIMIT = 1000


@dataclass
class Shared:
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    submitted: list[str] = field(default_factory=list)
    finished: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    page_ms: list[float] = field(default_factory=list)
    submit_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    open_streams: int = 0
    max_open_streams: int = 0

    def add(self, key: str, n: int = 1) -> None:
        with self.lock:
            self.counts[key] = self.counts.get(key, 0) + n

    def error(self, text: str) -> None:
        with self.lock:
            self.counts["errors"] = self.counts.get("errors", 0) + 1
            if len(self.errors) < MAX_ERRORS:
                self.errors.append(text)

    def streams(self, delta: int) -> None:
        with self.lock:
            self.open_streams += delta
            self.max_open_streams = max(self.max_open_streams, self.open_streams)


def read_stream(session: requests.Session, base: str, job_id: str, shared: Shared) -> bool:
    """Read a job's stream to its end (or to the stop); True if it ended complete."""
    lines = 0
    tail = b""
    shared.streams(+1)
    try:
        with session.get(f"{base}/v1/jobs/{job_id}/stream", stream=True, timeout=(5, 60)) as r:
            if r.status_code != 200:
                shared.error(f"stream {job_id}: HTTP {r.status_code}")
                return False
            for chunk in r.iter_content(chunk_size=1 << 16):
                lines += chunk.count(b"\n")
                tail = (tail + chunk)[-4096:]
                if shared.stop.is_set():
                    return False  # the run is over: abandoned, neither counted nor wrong
    except requests.RequestException as exc:
        if not shared.stop.is_set():
            shared.error(f"stream {job_id}: {type(exc).__name__}")
        return False
    finally:
        shared.streams(-1)
    last = tail.rstrip(b"\n").rsplit(b"\n", 1)[-1]
    try:
        end = json.loads(last)
        job = end["job"]
        complete = end["type"] == "end" and lines == job["total"] + 1
    except (ValueError, KeyError, TypeError):
        complete = False
    if not complete:
        shared.error(f"stream {job_id}: no complete end line after {lines} lines")
        return False
    shared.add("streams_completed")
    shared.add("results_streamed", lines - 1)
    return True


def submitter(n: int, args: argparse.Namespace, shared: Shared) -> None:
    base = args.base_url
    with requests.Session() as session:
        for j in range(MAX_JOBS_PER_SUBMITTER):
            if shared.stop.is_set():
                return
            tag = f"{uuid.uuid4().hex[:8]}-{n}-{j}"
            urls = [
                f"http://{HOSTS[i % len(HOSTS)]}:{args.target_port}/delay/{args.delay_ms}"
                f"?r={tag}&i={i}"
                for i in range(args.urls_per_job)
            ]
            body = json.dumps({"urls": urls, "options": {"timeout_s": 10}})
            started = time.perf_counter()
            try:
                r = session.post(
                    f"{base}/v1/jobs",
                    data=body,
                    headers={"Content-Type": "application/json"},
                    timeout=(5, 60),
                )
            except requests.RequestException as exc:
                if not shared.stop.is_set():
                    shared.error(f"submit: {type(exc).__name__}")
                return
            if r.status_code == 429:
                shared.add("rejected_429")
                shared.stop.wait(float(r.headers.get("Retry-After", "1")))
                continue
            if r.status_code != 202:
                shared.error(f"submit: HTTP {r.status_code}: {r.text[:200]}")
                return
            with shared.lock:
                shared.submit_ms.append((time.perf_counter() - started) * 1000.0)
            job_id = r.json()["id"]
            shared.add("jobs_submitted")
            with shared.lock:
                shared.submitted.append(job_id)
            if read_stream(session, base, job_id, shared):
                with shared.lock:
                    shared.finished.append(job_id)


def watcher(n: int, args: argparse.Namespace, shared: Shared) -> None:
    seen: set[str] = set()
    with requests.Session() as session:
        for _ in range(MAX_STREAMS_PER_WATCHER):
            job_id = None
            while job_id is None and not shared.stop.is_set():
                with shared.lock:
                    fresh = [j for j in reversed(shared.submitted[-40:]) if j not in seen]
                job_id = fresh[0] if fresh else None
                if job_id is None:
                    shared.stop.wait(0.05)
            if job_id is None:
                return
            seen.add(job_id)
            read_stream(session, args.base_url, job_id, shared)


def page_reader(n: int, args: argparse.Namespace, shared: Shared) -> None:
    with requests.Session() as session:
        for _ in range(MAX_PAGES_PER_READER):
            if shared.stop.is_set():
                return
            with shared.lock:
                job_id = (
                    shared.finished[-1 - n % max(1, len(shared.finished))]
                    if (shared.finished)
                    else None
                )
            if job_id is None:
                shared.stop.wait(0.05)
                continue
            started = time.perf_counter()
            try:
                r = session.get(
                    f"{args.base_url}/v1/jobs/{job_id}",
                    params={"limit": PAGE_LIMIT},
                    timeout=(5, 30),
                )
                body = r.json() if r.status_code == 200 else None
            except (requests.RequestException, ValueError) as exc:
                if not shared.stop.is_set():
                    shared.error(f"page: {type(exc).__name__}")
                continue
            elapsed = (time.perf_counter() - started) * 1000.0
            if r.status_code == 404:
                shared.add("pages_expired")  # evicted by retention: not an error
                continue
            if body is None or len(body["results"]) != min(PAGE_LIMIT, body["total"]):
                shared.error(f"page {job_id}: HTTP {r.status_code}, wrong number of results")
                continue
            shared.add("pages_read")
            with shared.lock:
                shared.page_ms.append(elapsed)


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round((len(ordered) - 1) * q / 100.0))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--target-port", type=int, required=True)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--submitters", type=int, default=20)
    parser.add_argument("--streams", type=int, default=50, help="watchers + submitters' own")
    parser.add_argument("--pagers", type=int, default=4)
    parser.add_argument("--urls-per-job", type=int, default=1000)
    parser.add_argument("--delay-ms", type=int, default=20)
    args = parser.parse_args(argv)
    shared = Shared()
    roles = (
        [(submitter, n) for n in range(args.submitters)]
        + [(watcher, n) for n in range(max(0, args.streams - args.submitters))]
        + [(page_reader, n) for n in range(args.pagers)]
    )
    threads = [
        threading.Thread(target=role, args=(n, args, shared), daemon=True) for role, n in roles
    ]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    shared.stop.wait(args.duration)
    shared.stop.set()
    for thread in threads:
        thread.join(max(0.1, started + args.duration + 30 - time.perf_counter()))
    out: dict[str, Any] = {
        "duration_s": time.perf_counter() - started,
        "threads_alive": sum(t.is_alive() for t in threads),
        "counts": shared.counts,
        "max_open_streams": shared.max_open_streams,
        "page_p50_ms": percentile(shared.page_ms, 50),
        "page_p99_ms": percentile(shared.page_ms, 99),
        "submit_p50_ms": percentile(shared.submit_ms, 50),
        "submit_p99_ms": percentile(shared.submit_ms, 99),
        "errors": shared.errors,
    }
    json.dump(out, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
