"""GET /v1/status: what the service is doing now."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import fastapi.dependencies.utils as fastapi_dependencies
import pytest
from sqlalchemy import event

from app import __version__
from tests.conftest import RunningService
from tests.support.api import gated_server, get_job, status, submit, wait_final, wait_for
from tests.support.servers import ThreadedUvicorn

ServiceFactory = Callable[..., RunningService]

STATUSES = {"queued", "running", "done", "cancelled", "interrupted"}


def test_idle_service_reports_version_workers_and_zero_counters(
    service_factory: ServiceFactory,
) -> None:
    svc = service_factory(workers=3, max_queued_checks=50, max_urls_per_job=50)

    body = status(svc.client)

    assert body["version"] == __version__
    assert body["workers"] == 3
    assert body["max_queued_checks"] == 50
    assert (body["checks_running"], body["checks_queued"], body["checked_total"]) == (0, 0, 0)
    assert body["jobs"] == dict.fromkeys(STATUSES, 0)
    assert body["shutting_down"] is False
    assert body["uptime_s"] >= 0


def test_status_counts_running_and_queued_checks_and_jobs_by_status(
    service_factory: ServiceFactory,
) -> None:
    svc = service_factory(workers=2)
    with gated_server() as gate:
        job_id = submit(svc.client, [f"{gate.url}/{n}" for n in range(4)], timeout_s=20)["id"]

        busy = wait_for(
            lambda: (s := status(svc.client))["checks_running"] == 2 and s,
            what="both workers to be busy",
        )
        assert busy["checks_queued"] == 2
        assert busy["jobs"]["running"] == 1
        assert busy["checked_total"] == 0
        assert busy["shutting_down"] is False

        gate.release()
        assert wait_final(svc.client, job_id)["status"] == "done"

    # Capacity is released just after the job is reported done: wait for the counters.
    idle = wait_for(
        lambda: (s := status(svc.client))["checked_total"] == 4 and s,
        what="the counters to catch up",
    )
    assert (idle["checks_running"], idle["checks_queued"]) == (0, 0)
    assert idle["jobs"]["done"] == 1
    assert idle["jobs"]["running"] == 0


def test_checked_total_increases_with_every_finished_check(
    service: RunningService, target: ThreadedUvicorn
) -> None:
    before = status(service.client)["checked_total"]
    first = submit(service.client, [f"{target.url}/status/200", f"{target.url}/status/500"])
    wait_final(service.client, first["id"])
    wait_for(lambda: status(service.client)["checked_total"] == before + 2, what="2 checks")

    second = submit(service.client, [f"{target.url}/status/201"])
    wait_final(service.client, second["id"])

    wait_for(lambda: status(service.client)["checked_total"] == before + 3, what="3 checks")
    assert status(service.client)["jobs"]["done"] == 2


def test_status_reports_the_memory_running_jobs_take_and_finished_jobs_leave_it(
    service_factory: ServiceFactory, target: ThreadedUvicorn
) -> None:
    budget = 1_048_576
    svc = service_factory(retention_max_bytes=budget)
    idle = status(svc.client)
    assert idle["retention_max_bytes"] == budget
    assert 0 <= idle["retained_bytes"] < budget

    # Results with large error messages: a URL of ~1,900 characters that is refused comes
    # back in `url` and in the message. One check is held, so the job stays running.
    long_path = "x" * 1900
    with gated_server() as gate:
        urls = [f"{target.url}/status/500?{n}={long_path}" for n in range(99)]
        job = submit(svc.client, [*urls, gate.url])
        wait_for(
            lambda: get_job(svc.client, job["id"])["completed"] == 99 or None, what="99 checks"
        )
        running = status(svc.client)["retained_bytes"] - idle["retained_bytes"]
        assert running > 99 * 1900  # at least the URLs in the results' JSON
        gate.release()
        wait_final(svc.client, job["id"])
    # Once on disk, the job leaves memory, and is still there to read.
    wait_for(
        lambda: status(svc.client)["retained_bytes"] == idle["retained_bytes"] or None,
        what="the finished job to leave memory",
    )
    assert len(get_job(svc.client, job["id"], limit=1000)["results"]) == 100


def test_status_shows_the_database_writer(
    service_factory: ServiceFactory, target: ThreadedUvicorn
) -> None:
    svc = service_factory()
    idle = status(svc.client)["database"]
    assert idle["backend"] == "sqlite"  # memory:// is SQLite in this process
    assert (idle["queued"], idle["failed"], idle["lost"]) == (0, 0, 0)
    job = submit(svc.client, [f"{target.url}/status/200", f"{target.url}/status/201"])
    wait_final(svc.client, job["id"])
    # The job's row, its two results and its final row, at least.
    wait_for(lambda: status(svc.client)["database"]["written"] >= idle["written"] + 4 or None)


def test_status_reads_job_counts_without_a_query_per_request(
    service_factory: ServiceFactory, target: ThreadedUvicorn, tmp_path: Path
) -> None:
    # A real SQLite file, its engine watched: every statement any thread sends is seen.
    svc = service_factory(database_url=f"sqlite:///{tmp_path / 'urlhealth.db'}")
    job_id = submit(svc.client, [f"{target.url}/status/200", f"{target.url}/status/500"])["id"]
    wait_final(svc.client, job_id)
    wait_for(lambda: status(svc.client)["jobs"]["done"] == 1, what="the job counted done")
    engine = svc.services.storage.database.engine
    statements: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", seen)
    try:
        bodies = [status(svc.client) for _ in range(20)]
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert all(body["jobs"]["done"] == 1 for body in bodies)
    counts = [s for s in statements if "count(" in s.lower() or "from jobs" in s.lower()]
    assert counts == []


def test_status_and_the_reads_it_needs_run_on_the_event_loop_with_no_thread_hop(
    service_factory: ServiceFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A plain-function dependency (ServicesDep was one) is run in FastAPI's thread pool: a
    # hop per request, which under load was most of the status API's p99 beyond /healthz's.
    svc = service_factory()
    hops: list[str] = []
    real = fastapi_dependencies.run_in_threadpool  # type: ignore[attr-defined]

    async def counting(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        hops.append(getattr(func, "__name__", repr(func)))
        return await real(func, *args, **kwargs)

    monkeypatch.setattr(fastapi_dependencies, "run_in_threadpool", counting)
    for path in ("/v1/status", "/readyz", "/v1/monitors"):
        assert svc.client.get(path).status_code == 200, path
    assert hops == []
