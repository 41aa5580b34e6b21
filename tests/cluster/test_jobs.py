"""Batch jobs on a cluster, end to end: real `urlhealth serve --role ...` processes on a
real PostgreSQL, targets on loopback. Whatever happens to a worker (SIGKILL, SIGTERM) or to
the database (restarted), every URL of a job appears exactly once in its results.

One cluster for the module (two API replicas, two workers, on a server of the module's own,
as one test restarts it): starting replicas is most of the time here. A test that stops a
worker starts another in its place, not waited for."""

from __future__ import annotations

import os
import signal
import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.cluster import Cluster, cluster
from tests.support.postgres import PostgresServer, own_server
from tests.support.process import ServiceProcess, StreamFollower, wait_until
from tests.support.servers import ThreadedUvicorn

URLS = 2000
ENV = {
    "URLHEALTH_MAX_URLS_PER_JOB": str(URLS),
    "URLHEALTH_MAX_CONNECTIONS_PER_HOST": "32",
}


def urls(target: ThreadedUvicorn, delay_ms: int, count: int = URLS) -> list[str]:
    return [f"{target.url}/delay/{delay_ms}?i={i}" for i in range(count)]


def submit(api: str, job_urls: list[str]) -> str:
    response = httpx.post(f"{api}/v1/jobs", json={"urls": job_urls}, timeout=30.0)
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def header(api: str, job_id: str) -> dict[str, Any]:
    response = httpx.get(f"{api}/v1/jobs/{job_id}", params={"limit": 1}, timeout=10.0)
    response.raise_for_status()
    return dict(response.json())


def all_results(api: str, job_id: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    while True:
        page = httpx.get(
            f"{api}/v1/jobs/{job_id}",
            params={"offset": len(found), "limit": 1000},
            timeout=10.0,
        ).json()
        found.extend(page["results"])
        if not page["results"]:
            return found


def final(api: str, job_id: str, timeout_s: float, running: Cluster) -> dict[str, Any]:
    def done() -> bool:
        try:
            return header(api, job_id)["status"] in ("done", "cancelled", "interrupted")
        except httpx.HTTPError:
            return False

    assert wait_until(done, timeout_s, 0.2), running.logs()[-6000:]
    return header(api, job_id)


def assert_exactly_once(results: list[dict[str, Any]], job_urls: list[str]) -> None:
    counts = Counter(result["url"] for result in results)
    twice = [url for url, n in counts.items() if n > 1]
    assert not twice, f"{len(twice)} URLs have more than one result, e.g. {twice[:3]}"
    assert set(counts) == set(job_urls)


@pytest.fixture(scope="module")
def own_postgres() -> Iterator[PostgresServer]:
    """A server of this module's own: one test restarts it under the replicas."""
    server = own_server(ci=os.environ.get("CI") == "true")
    yield server
    server.remove()


@pytest.fixture(scope="module")
def running(own_postgres: PostgresServer) -> Iterator[Cluster]:
    database = own_postgres.url(own_postgres.create_database())
    with cluster(database, ["api", "api", "worker", "worker"], env=ENV) as started:
        yield started


def live_worker(running: Cluster) -> ServiceProcess:
    """A worker still running (replicas after the two API ones are workers)."""
    return next(r for r in running.replicas[2:] if r.proc.poll() is None)


def completed(api: str, job_id: str) -> int:
    try:
        return int(header(api, job_id)["completed"])
    except httpx.HTTPError:
        return 0


def test_a_job_submitted_to_one_replica_streams_from_another(
    running: Cluster, target: ThreadedUvicorn
) -> None:
    job_urls = urls(target, 5)
    first, second = running.replicas[0].url, running.replicas[1].url
    job_id = submit(first, job_urls)
    stream = StreamFollower(second, job_id).start()
    assert stream.wait_finished(90.0), running.logs()[-6000:]
    assert stream.error is None
    assert stream.end is not None
    assert stream.end["job"]["status"] == "done"
    assert len(stream.results) == URLS
    assert_exactly_once(stream.results, job_urls)
    done = header(first, job_id)
    assert done["completed"] == URLS
    assert done["summary"]["up"] == URLS
    assert_exactly_once(all_results(second, job_id), job_urls)

    def counted() -> bool:  # the cluster's jobs, cached for a second
        jobs = httpx.get(f"{second}/v1/status", timeout=10.0).json()["jobs"]
        return bool(jobs["done"] >= 1 and jobs["running"] == 0)

    assert wait_until(counted, 10.0)


def test_delete_mid_job_cancels_it_everywhere(running: Cluster, target: ThreadedUvicorn) -> None:
    job_urls = urls(target, 100)
    api = running.replicas[0].url
    job_id = submit(api, job_urls)
    assert wait_until(lambda: completed(api, job_id) >= 100, 60.0), running.logs()[-4000:]
    response = httpx.delete(f"{running.replicas[1].url}/v1/jobs/{job_id}", timeout=30.0)
    assert response.status_code == 200, response.text
    job = final(api, job_id, 30.0, running)
    assert job["status"] == "cancelled"
    results = all_results(api, job_id)
    assert_exactly_once(results, job_urls)
    cancelled = [r for r in results if r["error"] and r["error"]["kind"] == "cancelled"]
    assert cancelled
    assert len(cancelled) == job["summary"]["cancelled"]
    assert cancelled[0]["error"]["message"] == "job cancelled before this check started"


def test_a_worker_killed_mid_job_leaves_its_chunks_to_the_other(
    running: Cluster, target: ThreadedUvicorn
) -> None:
    job_urls = urls(target, 50)
    api = running.replicas[0].url
    job_id = submit(api, job_urls)
    assert wait_until(lambda: completed(api, job_id) >= 200, 60.0), running.logs()[-4000:]
    live_worker(running).proc.send_signal(signal.SIGKILL)
    job = final(api, job_id, 120.0, running)
    assert job["status"] == "done"
    assert job["completed"] == URLS
    assert_exactly_once(all_results(api, job_id), job_urls)
    running.start("worker", wait=False)


def test_a_worker_stopped_mid_job_hands_back_what_it_had_not_run(
    running: Cluster, target: ThreadedUvicorn
) -> None:
    job_urls = urls(target, 50)
    api = running.replicas[0].url
    job_id = submit(api, job_urls)
    assert wait_until(lambda: completed(api, job_id) >= 200, 60.0), running.logs()[-4000:]
    stopped = live_worker(running)
    stopped.proc.send_signal(signal.SIGTERM)
    job = final(api, job_id, 90.0, running)
    assert stopped.wait_exit(30.0) == 0, stopped.log()[-4000:]
    # Its drain cancelled some checks, or refused a chunk it had just taken: run elsewhere.
    assert "handed back" in stopped.log(), stopped.log()[-4000:]
    assert_exactly_once(all_results(api, job_id), job_urls)
    assert job["status"] == "done", running.logs()[-4000:]
    assert job["summary"]["up"] == URLS  # nothing cancelled nor interrupted
    running.start("worker", wait=False)


def test_a_job_completes_across_a_postgres_restart(
    running: Cluster, own_postgres: PostgresServer, target: ThreadedUvicorn
) -> None:
    job_urls = urls(target, 50)
    api = running.replicas[0].url
    job_id = submit(api, job_urls)
    assert wait_until(lambda: completed(api, job_id) >= 200, 60.0), running.logs()[-4000:]
    with own_postgres.stopped():
        threading.Event().wait(2.0)  # away for a while, then back on the same port
    job = final(api, job_id, 120.0, running)
    assert job["status"] == "done"
    assert job["completed"] == URLS
    assert_exactly_once(all_results(api, job_id), job_urls)
