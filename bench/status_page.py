"""The status page at scale: server time and compressed size of `GET /` with 1,000 monitors.

    .venv/bin/python bench/status_page.py                  # 1,000 monitors in 20 groups
    .venv/bin/python bench/status_page.py --monitors 5000

An SQLite file with `--monitors` monitors (20 groups, a few down), each with 90 daily and 24
hourly rollups and one incident in the last 90 days: what a year of checks leaves, without
the raw results the page never reads. The app is served in-process (Starlette's TestClient,
no lifespan: nothing is scheduled, no check runs); each figure is the median and max over
`--reps` requests, with gzip as a browser asks. Pages: `/` (page 1 of 50 monitors), a group
page, and the tiles JSON the script polls (states of all monitors of the page's scope).
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import insert

from app.config import load_settings
from app.db.schema import incidents, monitor_rollups, monitors
from app.main import create_app
from app.monitors.recorder import to_ms
from app.monitors.rollups import DAY_MS, HOUR_MS, period_start
from app.services import Services


def seed(services: Services, count: int, rng: random.Random) -> None:
    now = datetime.now(UTC)
    now_ms = to_ms(now)
    rows: list[dict[str, Any]] = [
        {
            "slug": f"m{n}",
            "name": f"Monitor {n}",
            "source": "api",
            "url": f"http://127.0.0.1:9/{n}",
            "options": {},
            "interval_s": 60.0,
            "group_name": f"Group {n % 20}",
            "labels": {},
            "paused": False,
            "failure_threshold": 3,
            "success_threshold": 2,
            "created_at": now,
            "updated_at": now,
            "generation": 1,
            "state": "down" if n % 97 == 0 else "up",
            "pending_count": 0,
            "skipped": 0,
            "last_checked_at": now - timedelta(seconds=rng.randrange(60)),
        }
        for n in range(count)
    ]
    database = services.storage.database
    with database.write_engine.begin() as connection:
        connection.execute(insert(monitors), rows)
        ids = list(connection.execute(monitors.select().with_only_columns(monitors.c.id)).scalars())
        for monitor_id in ids:
            rollups = []
            for period, size, n in (("d", DAY_MS, 90), ("h", HOUR_MS, 24)):
                first = period_start(now_ms, period) - (n - 1) * size
                per = 1440 if period == "d" else 60
                for k in range(n):
                    down = rng.choice((0, 0, 0, 0, 1, 5))
                    latency = rng.randrange(20_000, 400_000)
                    rollups.append(
                        {
                            "monitor_id": monitor_id,
                            "period": period,
                            "start_ms": first + k * size,
                            "checks": per,
                            "up": per - down,
                            "degraded": 0,
                            "down": down,
                            "latency_count": per,
                            "latency_sum_us": per * latency,
                            "latency_min_us": latency // 2,
                            "latency_max_us": latency * 3,
                            "histogram": {"40": per},
                        }
                    )
            connection.execute(insert(monitor_rollups), rollups)
            started = now - timedelta(days=rng.randrange(1, 89), hours=rng.randrange(24))
            connection.execute(
                insert(incidents).values(
                    monitor_id=monitor_id,
                    started_at=started,
                    ended_at=started + timedelta(minutes=rng.randrange(2, 90)),
                    worst_state="down",
                    events=[],
                )
            )


def measure(client: TestClient, path: str, reps: int) -> dict[str, Any]:
    times, raw, sent = [], 0, 0
    client.get(path)  # warm: the first request compiles the template
    for _ in range(reps):
        start = time.perf_counter()
        answer = client.get(path, headers={"Accept-Encoding": "gzip"})
        times.append((time.perf_counter() - start) * 1000)
        assert answer.status_code == 200, (path, answer.status_code)
        raw = len(answer.content)
        # httpx decodes the body; the server compresses it at this same level.
        sent = len(gzip.compress(answer.content, compresslevel=6))
        assert answer.headers.get("content-encoding") == "gzip", path
    return {
        "median_ms": round(statistics.median(times), 1),
        "max_ms": round(max(times), 1),
        "bytes": raw,
        "gzip_bytes": sent,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--monitors", type=int, default=1000)
    parser.add_argument("--reps", type=int, default=15)
    args = parser.parse_args()
    rng = random.Random(1)
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(
            None, database_url=f"sqlite:///{Path(tmp) / 'bench.db'}", log_level="warning"
        )
        app = create_app(settings)
        services: Services = app.state.services
        try:
            seed(services, args.monitors, rng)
            client = TestClient(app)  # no `with`: no lifespan, so no monitor is scheduled
            figures = {
                "monitors": args.monitors,
                "/": measure(client, "/", args.reps),
                "/?page=10": measure(client, "/?page=10", args.reps),
                "/status/group-3": measure(client, "/status/group-3", args.reps),
                "/status-tiles.json": measure(client, "/status-tiles.json", args.reps),
            }
        finally:
            services.close()
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
