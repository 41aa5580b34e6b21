"""Rows/s of a cluster job's batch transaction (app/cluster/batch.write_batch), one thread
on a PostgreSQL of its own: a job of N URLs submitted (one transaction with its chunk
tasks), then its results written 100 at a time, as a worker's chunk writes them.

    .venv/bin/python -m bench.cluster_batch --urls 20000
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime
from pathlib import Path

from app.cluster.batch import write_batch
from app.cluster.jobs import ClusterJobs
from app.cluster.queue import TaskQueue
from app.db.engine import open_database
from app.db.migrator import upgrade
from app.db.url import sqlalchemy_url
from app.schemas.results import CheckResult
from app.store.base import StoredResult
from tests.support.jobs import stored_options
from tests.support.postgres import start_postgres

OPTIONS = stored_options()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--urls", type=int, default=20000)
    parser.add_argument("--batch", type=int, default=100)
    args = parser.parse_args()
    server = start_postgres()
    try:
        database = open_database(sqlalchemy_url(server.url(server.create_database()), Path()))
        upgrade(database)
        queue = TaskQueue(database.url).open()
        urls = [f"http://127.0.0.1:9/{i}" for i in range(args.urls)]
        began = time.perf_counter()
        job = ClusterJobs(database, queue, 10**7, 100).submit(urls, OPTIONS)
        submitted = time.perf_counter() - began
        body = StoredResult.of(
            CheckResult(url=urls[0], ok=True, outcome="up", checked_at=datetime.now(UTC))
        )
        began = time.perf_counter()
        for start in range(0, args.urls, args.batch):
            batch = [(i, body) for i in range(start, min(args.urls, start + args.batch))]
            with database.engine.begin() as connection:
                write_batch(connection, job.id, batch)
        wrote = time.perf_counter() - began
        batches = -(-args.urls // args.batch)
        print(
            f"submit {args.urls} URLs: {submitted * 1000:.0f} ms; "
            f"batches of {args.batch}: {args.urls / wrote:.0f} rows/s "
            f"({wrote / batches * 1000:.1f} ms a batch)"
        )
        queue.close()
        database.close()
    finally:
        server.remove()


if __name__ == "__main__":
    main()
