"""The durable store's figures, measured on this machine (not a timed test):

- writer lag: a result recorded -> its row readable by another connection (SQLite file);
- paging 100 results out of a finished 100,000-result job (SQLite file, store level);
- SIGKILL loss: a real `urlhealth serve` on an SQLite file, killed mid-job; the results its
  stream had delivered that are not in the file afterwards.

    .venv/bin/python bench/store_figures.py [--lag N] [--pages N] [--kills N]
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx

from app.config import load_settings
from app.store.base import StoredResult
from app.store.storage import Storage
from tests.store.test_memory import OPTIONS, up
from tests.support.process import StreamFollower, running_service
from tests.support.servers import ThreadedUvicorn, target_app


def quantiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"median {statistics.median(ordered):.2f} ms, p99 {p99:.2f} ms, n={len(ordered)}"


def open_storage(path: Path) -> Storage:
    return Storage.open(load_settings(None, database_url=f"sqlite:///{path}"))


def writer_lag(directory: Path, count: int) -> str:
    path = directory / "lag.db"
    storage = open_storage(path)
    pause = threading.Event()
    reader = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        job_id = storage.store.create_job([f"http://u{i}.test/" for i in range(count)], OPTIONS).id
        lags = []
        for index in range(count):
            started = time.perf_counter()
            storage.store.record(job_id, index, up(f"http://u{index}.test/"))
            query = "SELECT 1 FROM results WHERE job_id = ? AND idx = ?"
            while reader.execute(query, (job_id, index)).fetchone() is None:
                pause.wait(0.001)
            lags.append((time.perf_counter() - started) * 1000)
            pause.wait(random.uniform(0, 0.05))  # results arrive at any point of a window
        return quantiles(lags)
    finally:
        reader.close()
        storage.close()


def paging(directory: Path, pages: int) -> str:
    storage = open_storage(directory / "page.db")
    try:
        store = storage.store
        total = 100_000
        job_id = store.create_job([f"http://h{i}.test/" for i in range(total)], OPTIONS).id
        body = up("http://h.test/")
        for index in range(total):
            result = body.model_copy(update={"url": f"http://h{index}.test/"})
            store.record(job_id, index, StoredResult.of(result))
        pause = threading.Event()
        while job_id in store.memory.statuses():
            pause.wait(0.05)
        times = []
        for _ in range(pages):
            offset = random.randrange(0, total - 100)
            started = time.perf_counter()
            page = store.page_json(job_id, offset, 100)
            times.append((time.perf_counter() - started) * 1000)
            assert json.loads(page)["results"][0]["url"] == f"http://h{offset}.test/"
        size = (directory / "page.db").stat().st_size
        return f"{quantiles(times)}; database {size / total:.0f} bytes per stored result"
    finally:
        storage.close()


def kill_loss(directory: Path, target: ThreadedUvicorn, run: int) -> tuple[int, int, float]:
    """(results the stream delivered, of them not on disk, results per second)."""
    path = directory / f"kill{run}.db"
    env = {
        "URLHEALTH_DATABASE_URL": f"sqlite:///{path}",
        "URLHEALTH_LOG_LEVEL": "warning",
        "URLHEALTH_MAX_URLS_PER_JOB": "5000",
        "URLHEALTH_MAX_QUEUED_CHECKS": "10000",
    }
    urls = [f"{target.url}/delay/40?{i}" for i in range(5000)]
    with running_service(env=env, workers=16) as svc:
        with httpx.Client(base_url=svc.url, timeout=30.0, trust_env=False) as client:
            response = client.post("/v1/jobs", json={"urls": urls})
            assert response.status_code == 202, response.text
            job_id = response.json()["id"]
        stream = StreamFollower(svc.url, job_id).start()
        pause = threading.Event()
        pause.wait(2.0 + random.uniform(0, 0.5))
        seen = [r["url"] for r in stream.results]
        svc.proc.send_signal(signal.SIGKILL)
        svc.wait_exit(10.0)
        rate = len(seen) / 2.0
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        bodies = connection.execute("SELECT body FROM results WHERE job_id = ?", (job_id,))
        on_disk = {json.loads(body)["url"] for (body,) in bodies}
    finally:
        connection.close()
    return len(seen), len(set(seen) - on_disk), rate


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lag", type=int, default=200)
    parser.add_argument("--pages", type=int, default=500)
    parser.add_argument("--kills", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="urlhealth-figures-") as name:
        directory = Path(name)
        print("writer lag (record -> readable elsewhere):", writer_lag(directory, args.lag))
        print("page of 100 from a 100,000-result job:", paging(directory, args.pages))
        target = ThreadedUvicorn(target_app()).start()
        try:
            for run in range(args.kills):
                seen, lost, rate = kill_loss(directory, target, run)
                print(
                    f"SIGKILL run {run}: stream had {seen} results ({rate:.0f}/s), "
                    f"{lost} of them not on disk ({lost / rate * 1000:.0f} ms of results)"
                )
        finally:
            target.stop()


if __name__ == "__main__":
    main()
