"""A burst of alerts on SQLite: `--monitors` monitors, `--flipping` of them confirmed down at
once (a shared dependency failing), alerting `--channels` channels paced like Slack (one
message per `--min-interval-s`, `--max-batch` transitions each), to a loopback receiver.

    .venv/bin/python bench/alerts.py                    # 10,000 monitors, 1,000 flipping

Reports: the writer's time for the flipping monitors' results with and without the alerts
hook (the outbox rows written in the state change's transaction: its cost per transition),
and, from the last transition committed, when every transition had reached its channel
(seconds, and requests made). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, insert, select

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.alerts.outbox import AlertHook
from app.db.engine import open_database
from app.db.migrator import upgrade
from app.db.schema import alert_outbox, monitors
from app.db.url import sqlalchemy_url
from app.db.writer import Writer
from app.monitors.recorder import Recorder
from tests.support.alerts import FAST, Receiver, add_channel, add_rule, delivery
from tests.support.monitors import check

T0 = datetime(2026, 12, 1, tzinfo=UTC)


def monitor_rows(n: int, start: int) -> list[dict[str, Any]]:
    return [
        {
            "slug": f"m{i}",
            "name": f"M{i}",
            "source": "api",
            "url": f"http://127.0.0.1:9/{i}",
            "options": {},
            "interval_s": 60.0,
            "labels": {},
            "paused": False,
            "failure_threshold": 3,
            "success_threshold": 2,
            "created_at": T0,
            "updated_at": T0,
            "generation": 1,
            "state": "up",
            "state_since": T0,
            "pending_count": 0,
            "skipped": 0,
        }
        for i in range(start, start + n)
    ]


def flip(recorder: Recorder, writer: Writer, ids: list[int]) -> float:
    """Three downs for each monitor, as the scheduler records them; seconds until committed."""
    started = time.perf_counter()
    for n in range(3):
        at = T0 + timedelta(minutes=1 + n)
        result = check("down", at=at)
        for monitor_id in ids:
            recorder.record(monitor_id, 1, at, result)
    writer.submit(lambda c: None).result(600)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--monitors", type=int, default=10_000)
    parser.add_argument("--flipping", type=int, default=1_000)
    parser.add_argument("--channels", type=int, default=1)
    parser.add_argument("--max-batch", type=int, default=50)
    parser.add_argument("--min-interval-s", type=float, default=1.0)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-alerts-"))
    database = open_database(sqlalchemy_url(f"sqlite:///{tmp / 'a.db'}", tmp))
    upgrade(database)
    writer = Writer(database, 0.1, 100_000).start()
    receiver = Receiver()
    with database.write_engine.begin() as connection:
        for start in range(0, args.monitors, 1000):
            connection.execute(
                insert(monitors), monitor_rows(min(1000, args.monitors - start), start)
            )
        ids = list(connection.execute(select(monitors.c.id).order_by(monitors.c.id)).scalars())
    names = [f"ch{n}" for n in range(args.channels)]
    for name in names:
        add_channel(
            database,
            writer,
            name,
            receiver.url,
            max_batch=args.max_batch,
            min_interval_s=args.min_interval_s,
        )
    add_rule(writer, "all", names)
    half = args.flipping
    # Without the hook (other monitors: the same work but the outbox), after a warm-up run
    # on a third set, then with it.
    flip(Recorder(writer), writer, ids[2 * half : 3 * half])
    plain = flip(Recorder(writer), writer, ids[half : 2 * half])
    hooked = flip(Recorder(writer, on_transition=AlertHook()), writer, ids[:half])
    with database.engine.connect() as connection:
        owed = connection.execute(select(func.count()).select_from(alert_outbox)).scalar_one()
    http = httpx.Client(timeout=10.0, trust_env=False)
    started = time.perf_counter()
    deliverer = delivery(database, writer, http, "bench", FAST).start()
    delivered = None
    pause = time.perf_counter
    for _ in range(1200):
        if len(receiver.accepted_keys()) >= owed:
            delivered = pause() - started
            break
        time.sleep(0.05)  # a bench's poll, outside the service
    deliverer.stop(10)
    writer.stop(10)
    receiver.stop()
    http.close()
    database.close()
    print(
        json.dumps(
            {
                "monitors": args.monitors,
                "transitions": half,
                "channels": args.channels,
                "outbox_rows": owed,
                "writer_s_without_hook": round(plain, 3),
                "writer_s_with_hook": round(hooked, 3),
                "hook_ms_per_transition": round((hooked - plain) / half * 1000, 3),
                "all_delivered_s": None if delivered is None else round(delivered, 2),
                "requests": len(receiver.requests),
                "keys_received": len(receiver.accepted_keys()),
            }
        )
    )


if __name__ == "__main__":
    main()
