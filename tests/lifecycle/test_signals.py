"""Signals to a real `urlhealth serve` process, beyond one SIGTERM: SIGINT (Ctrl-C), a second
signal that cuts the grace period short, the exit status, and when "ready" is logged.

`urlhealth serve` exits 0 after a clean drain, by SIGTERM or SIGINT, without a traceback.
A second signal ends the grace period at once, but every accepted check still gets its final
state and every held stream its `end` line before the process exits.
"""

from __future__ import annotations

import re
import signal
import threading
import time
from typing import Any

import httpx
import pytest

from tests.support.process import (
    ServiceProcess,
    StreamFollower,
    running_service,
    uvicorn_command,
    wait_until,
)
from tests.support.servers import RawServer, ThreadedUvicorn

pytestmark = pytest.mark.slow

EXIT_MARGIN_S = 8.0
HANGING_OPTIONS: dict[str, Any] = {"timeout_s": 60}


def submit(svc: ServiceProcess, urls: list[str], **options: Any) -> str:
    with httpx.Client(base_url=svc.url, timeout=10.0, trust_env=False) as client:
        response = client.post("/v1/jobs", json={"urls": urls, "options": options})
    assert response.status_code == 202, response.text
    job_id: str = response.json()["id"]
    return job_id


def job_status(svc: ServiceProcess, job_id: str) -> str:
    with httpx.Client(base_url=svc.url, timeout=10.0, trust_env=False) as client:
        status: str = client.get(f"/v1/jobs/{job_id}").json()["status"]
    return status


def assert_no_traceback(log: str) -> None:
    assert "Traceback" not in log, log
    assert "KeyboardInterrupt" not in log, log


def test_sigint_twice_cuts_the_grace_short_yet_every_check_and_the_stream_end(
    target: ThreadedUvicorn, hanging_server: RawServer
) -> None:
    # A grace period far longer than the test waits: only the second signal can end it.
    grace_s = 40.0
    fast = [f"{target.url}/status/200?n={n}" for n in range(2)]
    running = [f"{hanging_server.url}/running/{n}" for n in range(8)]
    queued = [f"{hanging_server.url}/queued/{n}" for n in range(4)]
    urls = fast + running + queued

    with running_service(grace_s=grace_s, workers=8) as svc:
        job_id = submit(svc, urls, **HANGING_OPTIONS)
        stream = StreamFollower(svc.url, job_id).start()
        assert wait_until(
            lambda: len(stream.results) >= 2 and hanging_server.connections >= 8, 10.0
        ), f"the fast checks did not finish or the hanging ones did not start: {stream.lines}"

        svc.proc.send_signal(signal.SIGINT)
        threading.Event().wait(0.2)  # Ctrl-C twice, as an impatient user does
        second = time.monotonic()
        svc.proc.send_signal(signal.SIGINT)
        returncode = svc.wait_exit(EXIT_MARGIN_S)
        exited = time.monotonic()
        assert stream.wait_finished(5.0)
        log = svc.log()

    assert returncode == 0, f"exit {returncode} {exited - second:.1f} s after the 2nd SIGINT\n{log}"
    assert_no_traceback(log)
    assert stream.error is None, repr(stream.error)
    kinds = stream.kinds_by_url()
    assert sorted(kinds) == sorted(urls)
    assert {url: kinds[url] for url in fast} == {url: ["ok"] for url in fast}
    assert {url: kinds[url] for url in running} == {url: ["interrupted"] for url in running}
    assert {url: kinds[url] for url in queued} == {url: ["cancelled"] for url in queued}
    end = stream.end
    assert end is not None, f"the stream ended without an end line: {stream.lines[-1:]}"
    assert end["job"]["status"] == "interrupted"
    assert end["job"]["completed"] == end["job"]["total"] == len(urls)
    assert "grace period cut short" in log


def test_sigint_drains_like_sigterm_and_exits_0_without_a_traceback(
    target: ThreadedUvicorn,
) -> None:
    slow = f"{target.url}/delay/800"
    with running_service(grace_s=10.0, workers=1) as svc:
        job_id = submit(svc, [slow])
        stream = StreamFollower(svc.url, job_id).start()
        assert wait_until(lambda: job_status(svc, job_id) == "running", 10.0)

        svc.proc.send_signal(signal.SIGINT)
        returncode = svc.wait_exit(10.0 + EXIT_MARGIN_S)
        assert stream.wait_finished(5.0)
        log = svc.log()

    assert returncode == 0, log
    assert_no_traceback(log)
    assert stream.kinds_by_url() == {slow: ["ok"]}
    end = stream.end
    assert end is not None
    assert end["job"]["status"] == "done"
    assert "Application shutdown complete" in log


def test_serve_logs_ready_only_once_it_listens_naming_the_address() -> None:
    with running_service(grace_s=1.0, workers=1) as svc:
        svc.proc.send_signal(signal.SIGTERM)
        returncode = svc.wait_exit(1.0 + EXIT_MARGIN_S)
        log = svc.log()

    assert returncode == 0, log
    ready = f"ready on http://127.0.0.1:{svc.port}"
    assert ready in log, log
    assert log.find("Uvicorn running on") < log.find(ready), log
    assert log.find("Application startup complete") < log.find(ready), log


def test_plain_uvicorn_never_claims_ready_it_only_logs_its_start() -> None:
    with running_service(uvicorn_command, grace_s=1.0, workers=1) as svc:
        svc.proc.send_signal(signal.SIGTERM)
        svc.wait_exit(1.0 + EXIT_MARGIN_S)
        log = svc.log()

    own_lines = [line for line in log.splitlines() if "urlhealth:" in line]
    assert any("starting: 1 workers" in line for line in own_lines), log
    # uvicorn's "running on" is the line that says it listens; ours must not claim it first.
    assert not [line for line in own_lines if re.search(r"\bready\b", line)], log
