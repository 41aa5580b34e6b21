"""A real `urlhealth serve` on a real PostgreSQL that stops for a few seconds mid-job: the
job completes, every result reaches the database, nothing is counted lost, and /readyz said
503 with the reason while the database was away."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest

from tests.support.postgres import PostgresServer, own_server
from tests.support.process import ServiceProcess, running_service, wait_until
from tests.support.servers import ThreadedUvicorn

pytestmark = pytest.mark.slow

URLS = 60  # x 500 ms over 4 workers: about 7.5 s of checks, the outage falls inside
DELAY_MS = 500


@pytest.fixture(scope="module")
def own_postgres() -> Iterator[PostgresServer]:
    """A server of this module's own: stopping the session's would fail other tests."""
    server = own_server(ci=os.environ.get("CI") == "true")
    yield server
    server.remove()


def get(svc: ServiceProcess, path: str) -> httpx.Response:
    with httpx.Client(base_url=svc.url, timeout=10.0, trust_env=False) as client:
        return client.get(path)


def stored(url: str, job_id: str) -> tuple[Any, ...]:
    """(status, completed) of the job's row and (rows, distinct indices) of its results."""
    with psycopg.connect(url) as connection:
        job = connection.execute(
            "SELECT status, completed FROM jobs WHERE id = %s", (job_id,)
        ).fetchone()
        found = connection.execute(
            "SELECT count(*), count(DISTINCT idx) FROM results WHERE job_id = %s", (job_id,)
        ).fetchone()
    assert job is not None
    assert found is not None
    return (*job, *found)


def test_postgres_stopped_mid_job_loses_nothing_and_readyz_says_why(
    own_postgres: PostgresServer, target: ThreadedUvicorn
) -> None:
    name = own_postgres.create_database()
    url = own_postgres.url(name)
    urls = [f"{target.url}/delay/{DELAY_MS}?i={i}" for i in range(URLS)]
    env = {"URLHEALTH_DATABASE_URL": url, "URLHEALTH_DB_RETRY_MAX_DELAY_S": "0.5"}
    with running_service(env=env, workers=4) as svc:
        with httpx.Client(base_url=svc.url, timeout=10.0, trust_env=False) as client:
            response = client.post("/v1/jobs", json={"urls": urls})
        assert response.status_code == 202, response.text
        job_id = response.json()["id"]
        assert wait_until(lambda: stored(url, job_id)[2] >= 4, 20.0)  # some on disk first

        unready: list[dict[str, Any]] = []
        with own_postgres.stopped():

            def said_why() -> bool:
                answer = get(svc, "/readyz")
                if answer.status_code == 503:
                    unready.append(answer.json())
                return bool(unready)

            assert wait_until(said_why, 15.0), "readyz never answered 503 while away"
            threading.Event().wait(3.0)  # away for a few seconds while checks go on
        assert unready[0]["status"] == "database_unavailable"
        assert unready[0]["reason"]

        assert wait_until(lambda: get(svc, "/readyz").status_code == 200, 30.0), svc.log()
        assert wait_until(lambda: get(svc, f"/v1/jobs/{job_id}").json()["status"] == "done", 60)
        assert wait_until(lambda: stored(url, job_id) == ("done", URLS, URLS, URLS), 30.0), stored(
            url, job_id
        )
        database = get(svc, "/v1/status").json()["database"]
        assert (database["lost"], database["dropped"]) == (0, 0)
        page = get(svc, f"/v1/jobs/{job_id}?limit={URLS}").json()
    assert sorted(r["url"] for r in page["results"]) == sorted(urls)
    assert all(r["ok"] for r in page["results"])
