"""Real service processes on one SQLite file: what a restart keeps after SIGTERM and after
SIGKILL, a second process on the same file refused, and a database that cannot be opened
stopping startup with a message, not a traceback."""

from __future__ import annotations

import signal
import sqlite3
from pathlib import Path

import httpx
import pytest

from tests.support.process import (
    ServiceProcess,
    running_service,
    serve_command,
    service_env,
    uvicorn_command,
    wait_until,
)
from tests.support.servers import ThreadedUvicorn, free_port, refused_port

pytestmark = pytest.mark.slow

EXIT_TIMEOUT_S = 20.0


def sqlite_env(path: Path) -> dict[str, str]:
    return {"URLHEALTH_DATABASE_URL": f"sqlite:///{path}"}


def client(svc: ServiceProcess) -> httpx.Client:
    return httpx.Client(base_url=svc.url, timeout=10.0, trust_env=False)


def submit(svc: ServiceProcess, urls: list[str]) -> str:
    with client(svc) as c:
        response = c.post("/v1/jobs", json={"urls": urls})
    assert response.status_code == 202, response.text
    job_id: str = response.json()["id"]
    return job_id


def page(svc: ServiceProcess, job_id: str) -> httpx.Response:
    with client(svc) as c:
        response = c.get(f"/v1/jobs/{job_id}", params={"limit": 1000})
    assert response.status_code == 200, response.text
    return response


def results_on_disk(path: Path, job_id: str) -> int:
    """Rows committed for the job, read as another process would (WAL: never blocks)."""
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5.0)
    try:
        query = "SELECT count(*) FROM results WHERE job_id = ?"
        return int(connection.execute(query, (job_id,)).fetchone()[0])
    finally:
        connection.close()


def test_a_finished_job_is_there_byte_for_byte_after_sigterm_and_restart(
    target: ThreadedUvicorn, tmp_path: Path
) -> None:
    env = sqlite_env(tmp_path / "urlhealth.db")
    urls = [f"{target.url}/status/{code}" for code in (200, 201, 404, 500, 503)]
    with running_service(env=env) as svc:
        job_id = submit(svc, urls)
        assert wait_until(lambda: page(svc, job_id).json()["status"] == "done", 20.0)
        before = page(svc, job_id).content
        listed = client(svc).get("/v1/jobs").content
        svc.proc.send_signal(signal.SIGTERM)
        assert svc.wait_exit(EXIT_TIMEOUT_S) == 0, svc.log()

    with running_service(env=env) as again:
        assert page(again, job_id).content == before
        with client(again) as c:
            assert c.get("/v1/jobs").content == listed
            stream = c.get(f"/v1/jobs/{job_id}/stream").text.splitlines()
    assert len(stream) == len(urls) + 1
    assert '"status":"done"' in stream[-1]


def test_sigterm_mid_job_flushes_the_drains_results_before_exit(
    target: ThreadedUvicorn, tmp_path: Path
) -> None:
    # The drain interrupts the running checks, then the writer flushes: on restart the job
    # is as the drain left it, not finalised by crash recovery.
    path = tmp_path / "urlhealth.db"
    fast = f"{target.url}/status/200"
    slow = [f"{target.url}/delay/20000?{i}" for i in range(2)]
    # A flush window longer than the shutdown: only the flush at exit can write the rest.
    env = {**sqlite_env(path), "URLHEALTH_DB_FLUSH_INTERVAL_S": "30"}
    with running_service(env=env, grace_s=0.5, workers=4) as svc:
        job_id = submit(svc, [fast, *slow])
        assert wait_until(lambda: page(svc, job_id).json()["completed"] == 1, 20.0)
        svc.proc.send_signal(signal.SIGTERM)
        assert svc.wait_exit(EXIT_TIMEOUT_S) == 0, svc.log()
        log = svc.log()

    assert results_on_disk(path, job_id) == 3
    with running_service(env=sqlite_env(path)) as again:
        job = page(again, job_id).json()
        assert "ended interrupted" not in again.log()
    assert job["status"] == "interrupted"
    assert job["completed"] == 3
    messages = {r["error"]["message"] for r in job["results"] if not r["ok"]}
    assert messages == {"still running when the service shut down"}
    assert log.index("drained in") < log.index("Application shutdown complete")


def test_a_running_job_ends_interrupted_after_sigkill_and_restart(
    target: ThreadedUvicorn, tmp_path: Path
) -> None:
    path = tmp_path / "urlhealth.db"
    fast = [f"{target.url}/status/20{i}" for i in range(3)]
    slow = [f"{target.url}/delay/20000?{i}" for i in range(2)]
    with running_service(env=sqlite_env(path), workers=4) as svc:
        job_id = submit(svc, [*fast, *slow])
        # The fast results are committed (the writer is at most a flush window behind).
        assert wait_until(lambda: results_on_disk(path, job_id) == len(fast), 20.0)
        svc.proc.send_signal(signal.SIGKILL)
        assert svc.wait_exit(EXIT_TIMEOUT_S) == -signal.SIGKILL

    with running_service(env=sqlite_env(path)) as again:
        job = page(again, job_id).json()
        log = again.log()
    assert job["status"] == "interrupted"
    assert job["completed"] == job["total"] == 5
    assert job["finished_at"] is not None
    kinds = {r["url"]: "ok" if r["ok"] else r["error"]["kind"] for r in job["results"]}
    assert kinds == {**dict.fromkeys(fast, "ok"), **dict.fromkeys(slow, "interrupted")}
    messages = {r["error"]["message"] for r in job["results"] if not r["ok"]}
    assert messages == {"the service stopped before this check finished"}
    assert job["summary"]["up"] == 3
    assert job["summary"]["interrupted"] == 2
    assert "ended interrupted" in log


def test_a_second_process_on_the_same_sqlite_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "urlhealth.db"
    with running_service(env=sqlite_env(path)) as first:
        port = free_port()
        second = ServiceProcess(serve_command(port), port, service_env(2.0, 1, **sqlite_env(path)))
        try:
            returncode = second.wait_exit(EXIT_TIMEOUT_S)
            log = second.log()
        finally:
            second.stop()
        assert first.proc.poll() is None  # the first one is left alone
    assert returncode == 2, log
    assert "in use by another process" in log
    assert str(path) in log
    assert "Traceback" not in log


@pytest.mark.parametrize("command", [serve_command, uvicorn_command])
def test_a_database_that_cannot_be_opened_stops_startup_naming_it(command: object) -> None:
    url = f"postgresql://someone:s3cret@127.0.0.1:{refused_port()}/urlhealth"
    port = free_port()
    env = service_env(2.0, 1, URLHEALTH_DATABASE_URL=url)
    proc = ServiceProcess(command(port), port, env)  # type: ignore[operator]
    try:
        returncode = proc.wait_exit(EXIT_TIMEOUT_S)
        log = proc.log()
    finally:
        proc.stop()
    assert returncode == 2, log
    assert "cannot open the database postgresql+psycopg://someone:***@127.0.0.1" in log
    assert "s3cret" not in log
    assert "Traceback" not in log


def test_by_default_jobs_are_kept_in_the_data_directory(
    target: ThreadedUvicorn, tmp_path: Path
) -> None:
    # No database URL: the SQLite file urlhealth.db in data_dir (./data unless set), created.
    data = tmp_path / "data"
    env = service_env(2.0, 1, URLHEALTH_DATA_DIR=str(data))
    del env["URLHEALTH_DATABASE_URL"]
    port = free_port()
    svc = ServiceProcess(serve_command(port), port, env)
    try:
        svc.wait_ready()
        job_id = submit(svc, [f"{target.url}/status/200"])
        assert wait_until(lambda: results_on_disk(data / "urlhealth.db", job_id) == 1, 20.0)
    finally:
        svc.stop()
