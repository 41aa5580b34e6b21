"""An API-only replica runs no checks: `POST /v1/check`, `/probe` and a monitor's
check-now run on a worker replica and are waited for, answering as one process answers.
Real replica processes on a real PostgreSQL; targets on loopback.

The worker replica serves the API too and runs its checks itself, as a single process does:
the API replica's answers are compared with its answers to the same requests."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, create_engine, func, insert, select

from app.db.schema import cluster_calls
from app.db.url import sqlalchemy_url
from tests.support.cluster import Cluster
from tests.support.postgres import PostgresServer
from tests.support.process import wait_until
from tests.support.servers import ThreadedUvicorn, refused_port

pytestmark = pytest.mark.timeout(180)

# Fields that depend on the run (time, latency), not on the answer.
_RUN = {"checked_at", "elapsed_ms", "waited_ms", "timings_ms", "timings_all_hops_ms"}
# Replicas start slowly on a loaded 2-core machine (other suites beside this one).
_START_S = 90.0


@contextlib.contextmanager
def cluster(database_url: str, roles: list[str]) -> Iterator[Cluster]:
    """tests/support/cluster.py's, with a start bound for a loaded machine."""
    running = Cluster(database_url)
    try:
        for replica in [running.start(role, wait=False) for role in roles]:
            replica.wait_ready(_START_S)
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def pair(postgres: PostgresServer) -> Iterator[Cluster]:
    """One API replica and one worker replica on a database of their own."""
    name = postgres.create_database()
    try:
        with cluster(postgres.url(name), ["api", "worker"]) as running:
            yield running
    finally:
        postgres.drop_database(name)


def _api(pair: Cluster) -> str:
    return pair.replicas[0].url


def _worker(pair: Cluster) -> str:
    return pair.replicas[1].url


def _shape(value: Any) -> Any:
    """What a result says, without what it measured."""
    if isinstance(value, dict):
        return {key: _shape(item) for key, item in value.items() if key not in _RUN}
    if isinstance(value, list):
        return [_shape(item) for item in value]
    return value


def test_check_on_the_api_replica_answers_as_a_single_process(
    pair: Cluster, target: ThreadedUvicorn
) -> None:
    refused = f"http://127.0.0.1:{refused_port()}/"
    body = {"urls": [f"{target.url}/status/200", f"{target.url}/status/500", refused]}

    answers = [
        httpx.post(f"{base}/v1/check", json=body, timeout=60.0)
        for base in (_api(pair), _worker(pair))
    ]

    for answer in answers:
        assert answer.status_code == 200, (answer.text, pair.logs())
        assert answer.headers["content-type"] == "application/json"
    on_api, on_worker = (answer.json()["results"] for answer in answers)
    assert [r["url"] for r in on_api] == body["urls"]
    assert [r["status_code"] for r in on_api] == [200, 500, None]
    assert on_api[2]["error"]["kind"] == "connect"
    assert all(r["elapsed_ms"] is not None for r in on_api[:2])
    assert [_shape(r) for r in on_api] == [_shape(r) for r in on_worker]


def test_a_refused_check_on_the_api_replica_answers_as_a_single_process(
    pair: Cluster,
) -> None:
    body = {"urls": ["ftp://127.0.0.1/file"], "options": {"timeout_s": 1}}

    answers = [
        httpx.post(f"{base}/v1/check", json=body, timeout=30.0)
        for base in (_api(pair), _worker(pair))
    ]

    assert [a.status_code for a in answers] == [422, 422]
    assert answers[0].json() == answers[1].json()


def test_probe_on_the_api_replica_answers_as_blackbox_exporter(
    pair: Cluster, target: ThreadedUvicorn
) -> None:
    for path, success in (("/status/200", "1"), ("/status/500", "0")):
        answers = [
            httpx.get(f"{base}/probe", params={"target": target.url + path}, timeout=60.0)
            for base in (_api(pair), _worker(pair))
        ]
        for answer in answers:
            assert answer.status_code == 200, (answer.text, pair.logs())
            assert f"\nprobe_success {success}.0\n" in answer.text
        assert answers[0].headers["content-type"] == answers[1].headers["content-type"]
        assert _families(answers[0].text) == _families(answers[1].text)

    missing = [httpx.get(f"{base}/probe", timeout=30.0) for base in (_api(pair), _worker(pair))]
    assert [m.status_code for m in missing] == [400, 400]
    assert missing[0].text == missing[1].text
    # Every check so far (these probes, the module's earlier /v1/check) ran on the worker.
    assert _checks_run(_api(pair)) == 0
    assert _checks_run(_worker(pair)) >= 2


def _checks_run(base: str) -> float:
    text = httpx.get(f"{base}/metrics", timeout=30.0).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("urlhealth_checks_total{")
    )


def test_check_now_through_the_api_replica_records_the_result(
    pair: Cluster, target: ThreadedUvicorn
) -> None:
    monitor = {"name": "calls-check-now", "url": f"{target.url}/status/200", "interval_s": 3600}
    created = httpx.post(f"{_api(pair)}/v1/monitors", json=monitor, timeout=30.0)
    assert created.status_code == 201, created.text
    slug = created.json()["slug"]

    checked = httpx.post(f"{_api(pair)}/v1/monitors/{slug}/check", timeout=60.0)

    assert checked.status_code == 200, (checked.text, pair.logs())
    assert checked.json()["status_code"] == 200
    assert checked.json()["ok"] is True

    started = datetime.fromisoformat(checked.json()["checked_at"])

    def recorded() -> bool:  # kept to the millisecond
        page = httpx.get(f"{_api(pair)}/v1/monitors/{slug}/results", timeout=10.0)
        return page.status_code == 200 and any(
            abs((datetime.fromisoformat(r["at"]) - started).total_seconds()) < 0.002
            for r in page.json()["results"]
        )

    assert wait_until(recorded, timeout_s=20.0), pair.logs()
    unknown = [
        httpx.post(f"{base}/v1/monitors/no-such-monitor/check", timeout=30.0)
        for base in (_api(pair), _worker(pair))
    ]
    assert [u.status_code for u in unknown] == [404, 404]
    assert unknown[0].json() == unknown[1].json()


def test_replies_nobody_read_are_deleted_when_a_later_reply_is_written(
    pair: Cluster, target: ThreadedUvicorn
) -> None:
    engine = create_engine(sqlalchemy_url(pair.database_url, Path(".")))
    long_ago = datetime.now(UTC) - timedelta(hours=1)
    try:
        with engine.begin() as connection:  # an API replica that died waiting
            connection.execute(
                insert(cluster_calls).values(
                    id="f" * 32, kind="check", created_at=long_ago, status=200, body=b"{}"
                )
            )

        answer = httpx.post(
            f"{_api(pair)}/v1/check", json={"urls": [f"{target.url}/status/200"]}, timeout=60.0
        )

        assert answer.status_code == 200, answer.text
        assert _calls_left(engine) == 0
    finally:
        engine.dispose()


def _calls_left(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(cluster_calls)).scalar_one())


def test_with_no_worker_the_api_replica_answers_503_with_the_reason(
    pg_url: str, target: ThreadedUvicorn
) -> None:
    body = {"urls": [f"{target.url}/status/200"], "options": {"timeout_s": 1, "retries": 0}}
    # The check's own bound: 1 s, 5 s for a free worker, 5 s for a worker to take it.
    bound_s = 11.0
    with cluster(pg_url, ["api"]) as alone:
        started = time.monotonic()
        answer = httpx.post(f"{alone.replicas[0].url}/v1/check", json=body, timeout=60.0)
        took = time.monotonic() - started

    assert answer.status_code == 503, answer.text
    assert answer.json() == {"detail": f"no worker replica took the call within {bound_s:g} s"}
    assert answer.headers["retry-after"] == "5"
    assert bound_s <= took < bound_s + 15.0
    engine = create_engine(sqlalchemy_url(pg_url, Path(".")))
    try:  # the call it gave up left nothing behind
        assert _calls_left(engine) == 0
    finally:
        engine.dispose()


def _families(text: str) -> list[str]:
    """The sample names, in order: what the answer says, whatever it measured."""
    return [line.split(" ")[0].split("{")[0] for line in text.splitlines() if line[:1] != "#"]
