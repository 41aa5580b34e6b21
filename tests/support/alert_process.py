"""A deliverer in a process of its own, to be stopped by SIGTERM or killed by SIGKILL:
`python -m tests.support.alert_process DATABASE_URL DATA_DIR LEASE_S WORKERS`.

It sends the outbox of an existing (migrated) database with the test webhook sender until
SIGTERM, then stops as the service does: the delivery first (sends in flight recorded, unsent
claims given back), then the writer. Prints "started" once delivering, "stopping" once its
stop flag is set, "stopped" at the end.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from dataclasses import replace
from pathlib import Path

import httpx

from app.db.engine import open_database
from app.db.url import sqlalchemy_url
from app.db.writer import Writer
from tests.support.alerts import FAST, delivery

RUN_LIMIT_S = 120.0  # bounded: a test that forgets this process does not leave it behind


def main(url: str, data_dir: str, lease_s: str, workers: str) -> int:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    database = open_database(sqlalchemy_url(url, Path(data_dir)))
    writer = Writer(database, 0.01, 10_000).start()
    config = replace(FAST, lease_s=float(lease_s), workers=int(workers))
    with httpx.Client(timeout=30.0, trust_env=False) as http:
        deliverer = delivery(database, writer, http, f"pid-{os.getpid()}", config).start()
        print("started", flush=True)
        stop.wait(RUN_LIMIT_S)
        stopper = threading.Thread(target=deliverer.stop, args=(20.0,))
        stopper.start()
        for _ in range(200):  # bounded: 10 s
            if deliverer.stopping:
                break
            stop.wait(0.05)
        print("stopping", flush=True)  # the stop flag is set: nothing new is claimed or sent
        stopper.join(30.0)
    writer.stop(10.0)
    database.close()
    print("stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:5]))
