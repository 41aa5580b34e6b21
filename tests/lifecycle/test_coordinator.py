"""The shutdown coordinator, in process: readiness, refusing new work, and the drain sequence
(queued checks cancelled, running ones given the grace period, then interrupted and freed)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from app.api.validation import resolve_options
from app.engine.dispatcher import ShuttingDown
from app.schemas.jobs import JobHeader, JobOptions, JobStatus
from app.services import Services
from tests.conftest import RunningService, make_settings
from tests.support.process import StreamFollower, wait_until
from tests.support.servers import RawServer, ThreadedUvicorn

ServicesFactory = Callable[..., Services]


@pytest.fixture
def build() -> Iterator[ServicesFactory]:
    """Services built from settings, with no server around them; always closed afterwards."""
    built: list[Services] = []

    def make(**overrides: Any) -> Services:
        services = Services.build(make_settings(**overrides))
        built.append(services)
        return services

    yield make
    for services in built:
        services.close()


def submit(services: Services, urls: list[str], **options: Any) -> JobHeader:
    engine, public = resolve_options(JobOptions(**options), services.settings)
    return services.dispatcher.submit_job(urls, engine, public)


def kinds(services: Services, job_id: str) -> dict[str, str]:
    page = services.store.page(job_id, 0, 1000)
    return {r.url: ("ok" if r.error is None else r.error.kind.value) for r in page.results}


def test_ready_only_between_start_and_shutdown(build: ServicesFactory) -> None:
    coordinator = build().coordinator
    assert not coordinator.ready
    assert not coordinator.shutting_down

    coordinator.mark_started()
    assert coordinator.ready
    assert not coordinator.shutting_down

    coordinator.begin()
    assert not coordinator.ready
    assert coordinator.shutting_down
    assert coordinator.wait(5.0)


def test_begin_more_than_once_runs_one_drain(
    build: ServicesFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="urlhealth.lifecycle")
    coordinator = build().coordinator
    coordinator.mark_started()

    coordinator.begin()
    coordinator.begin()
    assert coordinator.wait(5.0)
    coordinator.begin()  # after the drain: still harmless
    assert coordinator.wait(0.0)

    drains = [r for r in caplog.records if r.getMessage().startswith("drained in")]
    assert len(drains) == 1
    assert not coordinator.ready


def test_new_work_is_refused_once_shutdown_begins(
    build: ServicesFactory, target: ThreadedUvicorn
) -> None:
    services = build()
    services.coordinator.mark_started()
    services.coordinator.begin()

    with pytest.raises(ShuttingDown, match="shutting down"):
        submit(services, [f"{target.url}/status/200"])
    engine, _ = resolve_options(JobOptions(), services.settings)
    with pytest.raises(ShuttingDown, match="shutting down"):
        services.dispatcher.check_now([f"{target.url}/status/200"], engine)

    assert services.coordinator.wait(5.0)
    assert services.store.list_jobs(0, 10) == ([], 0)
    assert services.dispatcher.counters() == (0, 0, 0)


def test_drain_cancels_queued_checks_then_interrupts_and_frees_running_ones_after_grace(
    build: ServicesFactory, hanging_server: RawServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="urlhealth.lifecycle")
    services = build(workers=1, shutdown_grace_s=1.0)
    running = f"{hanging_server.url}/running"
    queued = [f"{hanging_server.url}/queued/{n}" for n in range(2)]
    job = submit(services, [running, *queued], timeout_s=30)
    assert wait_until(lambda: hanging_server.connections >= 1, 10.0)

    services.coordinator.begin()
    # The queued checks end at once; the running one is given the grace period.
    assert wait_until(lambda: len(kinds(services, job.id)) == 2, 5.0)
    assert kinds(services, job.id) == dict.fromkeys(queued, "cancelled")
    assert not services.coordinator.wait(0.3)
    assert services.store.header(job.id).status is JobStatus.RUNNING

    assert services.coordinator.wait(5.0)
    header = services.store.header(job.id)
    assert header.status is JobStatus.INTERRUPTED
    assert header.completed == header.total == 3
    assert kinds(services, job.id) == {running: "interrupted", **dict.fromkeys(queued, "cancelled")}
    interrupted = next(r for r in services.store.page(job.id, 0, 10).results if r.url == running)
    assert interrupted.error is not None
    assert interrupted.error.message == "still running when the service shut down"
    # Its connection was aborted, so the worker thread is free again, well before the check's
    # own 30 s deadline; the late result it produced did not replace `interrupted`.
    assert wait_until(lambda: services.dispatcher.counters()[:2] == (0, 0), 5.0), (
        services.dispatcher.counters()
    )
    assert kinds(services, job.id)[running] == "interrupted"
    assert any("grace period of 1.0 s over" in r.getMessage() for r in caplog.records)


def test_drain_ends_as_soon_as_running_checks_finish(
    build: ServicesFactory, target: ThreadedUvicorn
) -> None:
    services = build(workers=2, shutdown_grace_s=10.0)
    slow = f"{target.url}/delay/500"
    job = submit(services, [slow])
    assert wait_until(lambda: services.store.header(job.id).status is JobStatus.RUNNING, 5.0)

    services.coordinator.begin()
    # Not the whole 10 s: the drain is over once nothing runs.
    assert services.coordinator.wait(8.0)
    assert kinds(services, job.id) == {slow: "ok"}
    # Shutdown cut none of its checks, so the job's results are all real: it ends done.
    assert services.store.header(job.id).status is JobStatus.DONE


def test_jobs_already_finished_are_left_as_they_were(
    build: ServicesFactory, target: ThreadedUvicorn
) -> None:
    services = build()
    job = submit(services, [f"{target.url}/status/200"])
    assert wait_until(lambda: services.store.header(job.id).status.final, 5.0)

    services.coordinator.begin()
    assert services.coordinator.wait(5.0)
    assert services.store.header(job.id).status is JobStatus.DONE


# --- through the HTTP API of a running service ----------------------------------------------


def test_service_answers_503_to_readiness_and_new_work_once_shutdown_begins(
    service: RunningService, target: ThreadedUvicorn
) -> None:
    client = service.client
    assert client.get("/readyz").json() == {"status": "ready"}
    assert client.get("/v1/status").json()["shutting_down"] is False

    service.services.coordinator.begin()

    ready = client.get("/readyz")
    assert (ready.status_code, ready.json()) == (503, {"status": "shutting_down"})
    assert client.get("/healthz").status_code == 200  # alive, just not ready
    assert client.get("/v1/status").json()["shutting_down"] is True
    body = {"urls": [f"{target.url}/status/200"]}
    for path in ("/v1/jobs", "/v1/check"):
        refused = client.post(path, json=body)
        assert refused.status_code == 503, path
        assert refused.json() == {"detail": "the service is shutting down"}
        assert refused.headers["Retry-After"] == "5"
    assert service.services.coordinator.wait(5.0)


def test_open_stream_ends_with_the_jobs_final_status_when_shutdown_begins(
    service_factory: Callable[..., RunningService], hanging_server: RawServer
) -> None:
    service = service_factory(workers=1, shutdown_grace_s=1.0)
    running, queued = f"{hanging_server.url}/a", f"{hanging_server.url}/b"
    job_id = service.client.post(
        "/v1/jobs", json={"urls": [running, queued], "options": {"timeout_s": 30}}
    ).json()["id"]
    stream = StreamFollower(service.url, job_id).start()
    assert wait_until(lambda: hanging_server.connections >= 1, 10.0)

    service.services.coordinator.begin()

    assert stream.wait_finished(10.0)
    assert stream.error is None, repr(stream.error)
    assert stream.kinds_by_url() == {queued: ["cancelled"], running: ["interrupted"]}
    end = stream.end
    assert end is not None
    assert end["job"]["status"] == "interrupted"


def _check_in_background(service: RunningService, urls: list[str]) -> Callable[[], httpx.Response]:
    """POST /v1/check on a thread; the returned function waits (bounded) for the answer."""
    answer: list[httpx.Response] = []
    thread = threading.Thread(
        target=lambda: answer.append(
            service.client.post("/v1/check", json={"urls": urls, "options": {"timeout_s": 30}})
        ),
        daemon=True,
    )
    thread.start()

    def wait() -> httpx.Response:
        thread.join(20.0)
        assert answer, "no answer to POST /v1/check"
        return answer[0]

    return wait


def test_sync_check_queued_at_shutdown_is_cancelled_not_run(
    service_factory: Callable[..., RunningService],
    hanging_server: RawServer,
    closing_server: RawServer,
) -> None:
    # The one worker is held by a hanging job check; the synchronous check waits behind it.
    service = service_factory(workers=1, shutdown_grace_s=1.0)
    service.client.post(
        "/v1/jobs", json={"urls": [f"{hanging_server.url}/a"], "options": {"timeout_s": 30}}
    )
    assert wait_until(lambda: hanging_server.connections >= 1, 10.0)
    answer = _check_in_background(service, [f"{closing_server.url}/never"])
    assert wait_until(lambda: service.services.dispatcher.counters()[1] >= 1, 10.0)

    service.services.coordinator.begin()

    response = answer()
    assert response.status_code == 200
    [result] = response.json()["results"]
    assert result["error"] is not None, result
    assert result["error"]["kind"] == "cancelled", result["error"]
    assert closing_server.connections == 0  # no connection is opened once shutdown began


def test_sync_check_still_running_when_grace_ends_is_interrupted(
    service_factory: Callable[..., RunningService], hanging_server: RawServer
) -> None:
    service = service_factory(workers=1, shutdown_grace_s=1.0)
    answer = _check_in_background(service, [f"{hanging_server.url}/s"])
    assert wait_until(lambda: hanging_server.connections >= 1, 10.0)

    service.services.coordinator.begin()

    response = answer()
    assert response.status_code == 200
    [result] = response.json()["results"]
    assert result["error"] is not None, result
    assert result["error"]["kind"] == "interrupted", result["error"]


def test_hurry_ends_the_grace_period_at_once_and_the_drain_still_ends_every_check(
    build: ServicesFactory, hanging_server: RawServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="urlhealth.lifecycle")
    services = build(workers=1, shutdown_grace_s=60.0)
    running, queued = f"{hanging_server.url}/running", f"{hanging_server.url}/queued"
    job = submit(services, [running, queued], timeout_s=30)
    assert wait_until(lambda: hanging_server.connections >= 1, 10.0)

    services.coordinator.begin()
    assert wait_until(lambda: len(kinds(services, job.id)) == 1, 5.0)
    assert not services.coordinator.wait(0.3)  # within its long grace period

    services.coordinator.hurry()

    assert services.coordinator.wait(5.0)
    assert services.coordinator.clean
    assert kinds(services, job.id) == {running: "interrupted", queued: "cancelled"}
    assert services.store.header(job.id).status is JobStatus.INTERRUPTED
    assert any("grace period cut short" in r.getMessage() for r in caplog.records)


def test_hurry_before_the_drain_begins_skips_the_grace_period(
    build: ServicesFactory, hanging_server: RawServer
) -> None:
    services = build(workers=1, shutdown_grace_s=60.0)
    job = submit(services, [f"{hanging_server.url}/running"], timeout_s=30)
    assert wait_until(lambda: hanging_server.connections >= 1, 10.0)

    services.coordinator.hurry()
    services.coordinator.begin()

    assert services.coordinator.wait(5.0)
    assert services.store.header(job.id).status is JobStatus.INTERRUPTED


def test_a_drain_that_fails_is_not_clean(
    build: ServicesFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No real part of the drain fails on demand; this stands in for a bug in one.
    services = build()

    def broken() -> None:
        raise RuntimeError("a bug in the drain")

    monkeypatch.setattr(services.dispatcher, "cancel_all_queued", broken)
    assert not services.coordinator.clean  # not drained yet
    services.coordinator.begin()
    assert services.coordinator.wait(5.0)  # it still finishes, so shutdown cannot hang
    assert not services.coordinator.clean


def test_a_drain_that_finishes_is_clean(build: ServicesFactory) -> None:
    coordinator = build().coordinator
    coordinator.begin()
    assert coordinator.wait(5.0)
    assert coordinator.clean
