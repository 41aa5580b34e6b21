"""The jobs API over the durable store: lists filtered by status and creation time, streams
of jobs that are on disk only, and a store that cannot keep a job answering 503."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

import pytest

import app.store.durable
from app.store.stored import StoredJobs
from tests.conftest import RunningService
from tests.support.api import submit, wait_final
from tests.support.dbfaults import SqliteFault
from tests.support.process import StreamFollower, wait_until
from tests.support.servers import ThreadedUvicorn


def _ids(service: RunningService, **params: Any) -> list[str]:
    response = service.client.get("/v1/jobs", params=params)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["count"] == len(body["jobs"])
    return [job["id"] for job in body["jobs"]]


def _on_disk(service: RunningService, job_id: str) -> bool:
    return job_id not in service.services.store.memory.statuses()


def test_jobs_are_listed_by_status_and_creation_time(
    service: RunningService, target: ThreadedUvicorn
) -> None:
    first = submit(service.client, [f"{target.url}/status/200"])
    wait_final(service.client, first["id"])
    second = submit(service.client, [f"{target.url}/status/200", f"{target.url}/delay/5000"])

    assert _ids(service, status="done") == [first["id"]]
    assert _ids(service, status="running") + _ids(service, status="queued") == [second["id"]]
    assert _ids(service, status="cancelled") == []
    assert _ids(service, created_since=second["created_at"]) == [second["id"]]
    assert _ids(service, created_until=second["created_at"]) == [first["id"]]
    # A zone other than UTC means the same instant.
    created = datetime.fromisoformat(first["created_at"])
    shifted = created.astimezone(datetime.now().astimezone().tzinfo).isoformat()
    assert first["id"] in _ids(service, created_since=shifted)
    tomorrow = (created + timedelta(days=1)).isoformat()
    assert _ids(service, created_since=tomorrow) == []
    assert _ids(service, status="done", created_until=second["created_at"]) == [first["id"]]
    service.client.delete(f"/v1/jobs/{second['id']}")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("status", "finished"),
        ("created_since", "yesterday"),
        ("created_until", "2026-13-01T00:00:00Z"),
    ],
)
def test_bad_list_filters_are_422_naming_the_parameter(
    service: RunningService, name: str, value: str
) -> None:
    response = service.client.get("/v1/jobs", params={name: value})
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["query", name]


def test_a_naive_time_is_422_saying_a_zone_is_needed(service: RunningService) -> None:
    response = service.client.get("/v1/jobs", params={"created_since": "2026-01-01T00:00:00"})
    assert response.status_code == 422, response.text
    detail = response.json()["detail"][0]
    assert detail["loc"] == ["query", "created_since"]
    assert "zone" in detail["msg"]


def test_a_job_on_disk_streams_in_batches_to_its_end(
    service: RunningService, target: ThreadedUvicorn, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Batches of 2 make a 5-result job come from the database in three reads.
    monkeypatch.setattr(app.store.durable, "STREAM_BATCH", 2)
    job = submit(service.client, [f"{target.url}/status/20{i}" for i in range(5)])
    wait_final(service.client, job["id"])
    assert wait_until(lambda: _on_disk(service, job["id"]), 10.0)
    follower = StreamFollower(service.url, job["id"]).start()
    assert follower.wait_finished(20.0), "the stream of a job on disk never ended"
    assert follower.error is None
    assert len(follower.results) == 5
    assert follower.end is not None
    assert follower.end["job"]["status"] == "done"


def test_a_job_the_store_cannot_keep_is_503_with_the_reason(
    service: RunningService, target: ThreadedUvicorn
) -> None:
    service.services.storage.writer.stop(10.0)  # the database is gone as far as it knows
    response = service.client.post("/v1/jobs", json={"urls": [f"{target.url}/status/200"]})
    assert response.status_code == 503, response.text
    assert "the job could not be kept" in response.json()["detail"]
    assert response.headers["Retry-After"]
    assert service.client.get("/v1/jobs").json()["count"] == 0
    assert service.services.dispatcher.counters()[1] == 0  # nothing admitted stays counted


def test_while_the_database_is_away_readyz_is_503_with_the_reason_and_jobs_are_refused(
    service: RunningService, target: ThreadedUvicorn
) -> None:
    storage = service.services.storage
    fault = SqliteFault(storage.database)  # the service's memory:// database, made read-only
    try:
        fault.mode = "readonly"
        storage.writer.put(lambda connection: connection.exec_driver_sql("CREATE TABLE p (x)"))
        assert wait_until(lambda: not storage.writer.healthy, 10.0)
        ready = service.client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["status"] == "database_unavailable"
        assert "readonly" in ready.json()["reason"]
        response = service.client.post("/v1/jobs", json={"urls": [f"{target.url}/status/200"]})
        assert response.status_code == 503, response.text
        assert "readonly" in response.json()["detail"]
        fault.mode = "none"
        assert wait_until(lambda: storage.writer.healthy, 15.0)
        assert service.client.get("/readyz").status_code == 200
        submit(service.client, [f"{target.url}/status/200"])
    finally:
        fault.mode = "none"


def test_a_stream_reads_a_job_on_disk_off_the_event_loop(
    service: RunningService, target: ThreadedUvicorn, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = submit(service.client, [f"{target.url}/status/200", f"{target.url}/status/201"])
    wait_final(service.client, job["id"])
    assert wait_until(lambda: _on_disk(service, job["id"]), 10.0)
    on_loop: list[bool] = []
    read = StoredJobs.stream

    def spy(self: StoredJobs, job_id: str, start: int, count: int) -> Any:
        try:
            asyncio.get_running_loop()
            on_loop.append(True)
        except RuntimeError:  # no loop runs in this thread
            on_loop.append(False)
        return read(self, job_id, start, count)

    monkeypatch.setattr(StoredJobs, "stream", spy)
    lines = service.client.get(f"/v1/jobs/{job['id']}/stream").text.splitlines()
    assert len(lines) == 3
    assert on_loop
    assert not any(on_loop), "a database read ran on the event loop"
