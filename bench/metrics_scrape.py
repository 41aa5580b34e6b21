"""/metrics' per-monitor families: render time, CPU time and bytes with many monitors.

    .venv/bin/python bench/metrics_scrape.py                     # 10,000 monitors, SQLite file
    .venv/bin/python bench/metrics_scrape.py --monitors 1000 --scrapes 9
    .venv/bin/python bench/metrics_scrape.py --url postgresql://postgres@127.0.0.1:5432/bench

It seeds `--monitors` rows in the `monitors` table whose `last_result` is the JSON of a real
check of a loopback HTTP server (a quarter of them https, with the TLS facts a certificate
gives), then renders MonitorFamilies (app/metrics/monitors.py) as /metrics does:
- cold: the first scrape, which parses every stored result;
- warm: nothing changed since the previous scrape (the cache serves every monitor);
- churn: `--churn` of the monitors got a new result since the previous scrape (60 s
  intervals scraped every 15 s: a quarter);
- client: the same series built as prometheus_client GaugeMetricFamily samples and rendered
  by generate_latest, from results already parsed, for comparison;
- gzip: compressing one warm scrape's text at level 1 and at 6 (Prometheus asks for gzip).
Each figure is the median of `--scrapes` runs: wall ms and CPU ms of the rendering thread
(SQLite reads happen on it; PostgreSQL's server CPU is not counted). Full garbage collections
are deferred as the service defers them (app/lifecycle/collector.py). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import gzip
import json
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Connection, insert, update

from app.db.engine import open_database
from app.db.migrator import upgrade
from app.db.schema import monitors
from app.db.url import sqlalchemy_url
from app.db.writer import Writer
from app.engine.checker import Checker
from app.engine.options import CheckOptions
from app.engine.policy import DestinationPolicy, parse_networks
from app.engine.resolver import SystemResolver
from app.engine.transport import HttpLayer
from app.lifecycle.collector import defer_full_collections
from app.metrics.exposition import public_url
from app.metrics.monitors import MonitorFamilies
from app.metrics.probes import MONITOR_FAMILIES, probe_samples
from app.schemas.results import CheckResult, TlsInfo

T0 = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
GROUPS = ("web", "api", "internal", "payments", None)


class _Ok(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"ok\n" * 100
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def real_result() -> CheckResult:
    """One real check of a loopback server, as the engine records it."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    policy = DestinationPolicy(allowed_networks=parse_networks(("127.0.0.0/8",)))
    http = HttpLayer("bench", policy, SystemResolver(), max_idle_clients=4)
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/health"
        return Checker(http).check(url, CheckOptions(timeout_s=5))
    finally:
        http.close()
        server.shutdown()


def stored(base: CheckResult, n: int) -> tuple[str, bytes]:
    """Monitor n's URL and last result: every fourth https, with its certificate's facts."""
    https = n % 4 == 0
    url = f"{'https' if https else 'http'}://service-{n % 997}.example.org/health/{n}"
    update: dict[str, Any] = {"url": url, "final_url": url, "elapsed_ms": 5 + n % 300}
    if https:
        update["tls"] = TlsInfo(
            version="TLSv1.3",
            cipher="TLS_AES_256_GCM_SHA384",
            verified=True,
            subject=f"service-{n % 997}.example.org",
            issuer="R11",
            sans=[f"service-{n % 997}.example.org"],
            not_before=T0 - timedelta(days=30),
            not_after=T0 + timedelta(days=60 + n % 30),
            days_left=60 + n % 30,
        )
    return url, base.model_copy(update=update).model_dump_json().encode()


def seed(writer: Writer, count: int, base: CheckResult) -> None:
    rows = []
    for n in range(1, count + 1):
        url, last = stored(base, n)
        rows.append(
            {
                "id": n,
                "slug": f"service-{n}",
                "name": f"service {n}",
                "source": "api",
                "url": url,
                "options": {},
                "interval_s": 60.0,
                "group_name": GROUPS[n % len(GROUPS)],
                "labels": {},
                "paused": n % 100 == 0,
                "failure_threshold": 3,
                "success_threshold": 2,
                "created_at": T0,
                "updated_at": T0,
                "state": "up",
                "last_checked_at": T0,
                "last_result": last,
            }
        )

    def write(connection: Connection) -> None:
        for start in range(0, count, 1000):
            connection.execute(insert(monitors), rows[start : start + 1000])

    writer.submit(write).result(300)


def touch(writer: Writer, ids: list[int], at: datetime) -> None:
    """A new result for `ids` (its time moves on), as the recorder would write it."""

    def write(connection: Connection) -> None:
        connection.execute(
            update(monitors).where(monitors.c.id.in_(ids)).values(last_checked_at=at)
        )

    writer.submit(write).result(120)


def timed(render: Callable[[], bytes]) -> tuple[float, float, bytes]:
    wall, cpu = time.perf_counter(), time.thread_time()
    text = render()
    return (time.perf_counter() - wall) * 1000, (time.thread_time() - cpu) * 1000, text


def median(runs: list[tuple[float, float, bytes]]) -> dict[str, float]:
    return {
        "wall_ms": round(statistics.median(r[0] for r in runs), 1),
        "cpu_ms": round(statistics.median(r[1] for r in runs), 1),
        "bytes": statistics.median(len(r[2]) for r in runs),
    }


class _ClientCollector(Collector):
    """The same probe series as prometheus_client metric families, for comparison."""

    def __init__(self, parsed: list[tuple[str, str, str, dict[str, list[tuple[str, float]]]]]):
        self._parsed = parsed

    def collect(self) -> Iterator[Metric]:
        for family in MONITOR_FAMILIES:
            phased = family.name == "probe_http_duration_seconds"
            names = ["monitor", "group", "url", *(["phase"] if phased else [])]
            metric = GaugeMetricFamily(family.name, family.help, labels=names)
            for slug, group, url, samples in self._parsed:
                for extra, value in samples.get(family.name, ()):
                    phase = [extra.split('"')[1]] if extra else []
                    metric.add_metric([slug, group, url, *phase], value)
            yield metric


def client_render(count: int, base: CheckResult) -> Callable[[], bytes]:
    parsed = []
    for n in range(1, count + 1):
        url, last = stored(base, n)
        group = GROUPS[n % len(GROUPS)] or ""
        samples = probe_samples(json.loads(last), blackbox_extras=False)
        parsed.append((f"service-{n}", group, public_url(url), samples))
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_ClientCollector(parsed))
    return lambda: generate_latest(registry)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--monitors", type=int, default=10_000)
    parser.add_argument("--scrapes", type=int, default=5)
    parser.add_argument("--churn", type=float, default=0.25)
    parser.add_argument("--url", help="database URL (default: an SQLite file in a tmp dir)")
    args = parser.parse_args()
    defer_full_collections()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.url or f"sqlite:///{Path(tmp) / 'metrics.db'}"
        database = open_database(sqlalchemy_url(url, Path(tmp)))
        upgrade(database)
        writer = Writer(database, flush_interval_s=0.01, queue_max=10_000).start()
        base = real_result()
        seed(writer, args.monitors, base)
        families = MonitorFamilies(database.engine)
        cold = [timed(families.render)]
        warm = [timed(families.render) for _ in range(args.scrapes)]
        churn = []
        step = max(1, round(1 / args.churn)) if args.churn > 0 else 0
        for scrape in range(args.scrapes):
            if step:
                ids = list(range(1 + scrape % step, args.monitors + 1, step))
                touch(writer, ids, T0 + timedelta(seconds=15 * (scrape + 1)))
            churn.append(timed(families.render))
        client = [timed(client_render(args.monitors, base)) for _ in range(args.scrapes)]
        text = warm[-1][2]
        gz = {}
        for level in (1, 6):
            started = time.thread_time()
            size = len(gzip.compress(text, compresslevel=level))
            gz[f"level{level}"] = {
                "cpu_ms": round((time.thread_time() - started) * 1000, 1),
                "bytes": size,
            }
        writer.stop(30)
        database.close()
    series = sum(1 for line in text.splitlines() if line and not line.startswith(b"#"))
    print(
        json.dumps(
            {
                "monitors": args.monitors,
                "database": url.split(":", 1)[0],
                "series": series,
                "cold": median(cold),
                "warm": median(warm),
                f"churn_{args.churn:g}": median(churn),
                "prometheus_client_generate_latest": median(client),
                "gzip": gz,
                "parsed_total": families.parsed,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
