"""GET /metrics through the running service with many monitors, and what a scrape costs the
rest of the API: /healthz latency while scrapes run back to back, against a quiet baseline.

    .venv/bin/python bench/metrics_route.py                      # 10,000 monitors, SQLite
    .venv/bin/python bench/metrics_route.py --monitors 1000 --scrapes 9

The service runs as `python -m app serve` on loopback, its monitors in an SQLite file seeded
first as bench/metrics_scrape.py seeds them. Figures: the first (cold) scrape's wall ms;
median scrape wall ms and bytes on the wire, identity and gzip (as Prometheus asks); the
service's CPU ms per scrape (from /proc); /healthz p50/p99/max ms, pinged every 20 ms from
another connection, quiet and while the scrapes run back to back. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
from metrics_scrape import real_result, seed

from app.db.engine import open_database
from app.db.migrator import upgrade
from app.db.url import sqlalchemy_url
from app.db.writer import Writer


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Pinger:
    """GET /healthz every 20 ms on its own connection, latencies kept while recording."""

    def __init__(self, url: str) -> None:
        self._client = httpx.Client(base_url=url, timeout=30, trust_env=False)
        self._stop = threading.Event()
        self.latencies_ms: list[float] = []
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            started = time.perf_counter()
            self._client.get("/healthz").raise_for_status()
            self.latencies_ms.append((time.perf_counter() - started) * 1000)

    def record(self, seconds: float | None = None, until: threading.Event | None = None) -> None:
        self.latencies_ms = []
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        if until is not None:
            until.wait(600)
        else:
            threading.Event().wait(seconds or 0)
        self._stop.set()
        self._thread.join(30)

    def figures(self) -> dict[str, float]:
        ordered = sorted(self.latencies_ms)
        return {
            "count": len(ordered),
            "p50_ms": round(statistics.median(ordered), 2),
            "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 2),
            "max_ms": round(ordered[-1], 2),
        }


def seeded(path: Path, monitors: int) -> str:
    """An SQLite file with `monitors` seeded, closed again for the service to open."""
    url = f"sqlite:///{path}"
    database = open_database(sqlalchemy_url(url, path.parent))
    upgrade(database)
    writer = Writer(database, flush_interval_s=0.01, queue_max=10_000).start()
    seed(writer, monitors, real_result())
    writer.stop(60)
    database.close()
    return url


def cpu_s(pid: int) -> float:
    """The process's user + system CPU seconds so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_service(tmp: Path, database_url: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("URLHEALTH_")}
    env.update(
        {
            "URLHEALTH_DATABASE_URL": database_url,
            "URLHEALTH_DATA_DIR": str(tmp / "data"),
            "URLHEALTH_LOG_LEVEL": "warning",
            "URLHEALTH_ALLOWED_NETWORKS": "127.0.0.0/8",
        }
    )
    command = [sys.executable, "-m", "app", "serve", "--host", "127.0.0.1", "--port", str(port)]
    process = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    pause = threading.Event()
    for _ in range(1200):  # bounded: 60 s
        try:
            if httpx.get(f"{url}/readyz", timeout=1, trust_env=False).status_code == 200:
                return process, url
        except httpx.HTTPError:
            pass
        if process.poll() is not None:
            break
        pause.wait(0.05)
    process.terminate()
    raise RuntimeError("the service did not become ready")


def scrape(client: httpx.Client, encoding: str) -> tuple[float, int]:
    """Wall ms and bytes on the wire (gzip not decoded: Prometheus's cost, not ours)."""
    began = time.perf_counter()
    size = 0
    with client.stream("GET", "/metrics", headers={"Accept-Encoding": encoding}) as response:
        response.raise_for_status()
        for chunk in response.iter_raw():
            size += len(chunk)
    return (time.perf_counter() - began) * 1000, size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--monitors", type=int, default=10_000)
    parser.add_argument("--scrapes", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        process, url = start_service(tmp, seeded(tmp / "route.db", args.monitors))
        try:
            client = httpx.Client(base_url=url, timeout=120, trust_env=False)
            cold = scrape(client, "identity")  # every result parsed
            pinger = Pinger(url)
            pinger.record(seconds=3)
            quiet = pinger.figures()
            scrapes: dict[str, list[tuple[float, int]]] = {"identity": [], "gzip": []}
            done = threading.Event()
            cpu: list[float] = []

            def scrape_all() -> None:
                before = cpu_s(process.pid)
                for _ in range(args.scrapes):
                    for encoding, runs in scrapes.items():
                        runs.append(scrape(client, encoding))
                cpu.append((cpu_s(process.pid) - before) / (2 * args.scrapes))
                done.set()

            threading.Thread(target=scrape_all, daemon=True).start()
            pinger.record(until=done)
            busy = pinger.figures()
        finally:
            process.terminate()
            process.wait(30)
    figures = {
        encoding: {
            "wall_ms": round(statistics.median(r[0] for r in runs), 1),
            "bytes": statistics.median(r[1] for r in runs),
        }
        for encoding, runs in scrapes.items()
    }
    print(
        json.dumps(
            {
                "monitors": args.monitors,
                "cold_scrape_ms": round(cold[0], 1),
                "scrape": figures,
                "service_cpu_ms_per_scrape": round(cpu[0] * 1000, 1),
                "healthz_quiet": quiet,
                "healthz_during_scrapes": busy,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
