"""SIGTERM to a real service process: every accepted check ends in a final state, every open
stream ends with its job's status, and the process exits within the grace period.

Under `urlhealth serve` the drain starts the moment uvicorn begins shutting down, so a stream
held open ends within the grace period. Under plain `uvicorn app.main:app` the drain starts in
the lifespan shutdown, which uvicorn runs only once open connections have closed.

`urlhealth serve` exits 0 after a clean drain. Plain uvicorn captures SIGTERM, shuts down,
restores the default handler and raises the signal again, so a process it stopped cleanly ends
*by* SIGTERM: its return code is -SIGTERM.
"""

from __future__ import annotations

import json
import signal
import socket
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

# A process exits some time after its drain ends; this much more than the grace is generous.
EXIT_MARGIN_S = 8.0
# Checks that would outlive any grace period used here.
HANGING_OPTIONS: dict[str, Any] = {"timeout_s": 30}
CLEAN_EXIT = 0
UVICORN_CLEAN_EXIT = -signal.SIGTERM


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


def terminate(svc: ServiceProcess) -> float:
    """Send SIGTERM; returns when it was sent (monotonic)."""
    sent = time.monotonic()
    svc.proc.send_signal(signal.SIGTERM)
    return sent


def assert_in_order(log: str, *fragments: str) -> None:
    positions = [log.find(fragment) for fragment in fragments]
    missing = [f for f, at in zip(fragments, positions, strict=True) if at < 0]
    assert not missing, f"missing from the log: {missing}\n{log}"
    assert positions == sorted(positions), f"out of order: {fragments}\n{log}"


def test_sigterm_mid_job_ends_every_check_and_the_held_stream_within_the_grace_period(
    target: ThreadedUvicorn, hanging_server: RawServer
) -> None:
    grace_s = 2.0
    fast = [f"{target.url}/status/200?n={n}" for n in range(2)]
    # Two workers: the fast checks run first, then two hanging ones take both workers and the
    # other six stay queued.
    running = [f"{hanging_server.url}/running/{n}" for n in range(2)]
    queued = [f"{hanging_server.url}/queued/{n}" for n in range(6)]
    urls = fast + running + queued

    with running_service(grace_s=grace_s, workers=2) as svc:
        job_id = submit(svc, urls, **HANGING_OPTIONS)
        stream = StreamFollower(svc.url, job_id).start()
        assert wait_until(
            lambda: len(stream.results) >= 2 and hanging_server.connections >= 2, 10.0
        ), f"the fast checks did not finish or the hanging ones did not start: {stream.lines}"

        sent = terminate(svc)
        returncode = svc.wait_exit(grace_s + EXIT_MARGIN_S)
        exited = time.monotonic()
        assert stream.wait_finished(5.0)
        log = svc.log()

    assert returncode == CLEAN_EXIT, f"exit {returncode} after {exited - sent:.1f} s\n{log}"
    assert stream.error is None, repr(stream.error)

    # Every URL got exactly one result line, in the final state its fate calls for.
    kinds = stream.kinds_by_url()
    assert sorted(kinds) == sorted(urls)
    assert {url: kinds[url] for url in fast} == {url: ["ok"] for url in fast}
    assert {url: kinds[url] for url in running} == {url: ["interrupted"] for url in running}
    assert {url: kinds[url] for url in queued} == {url: ["cancelled"] for url in queued}

    # Queued checks are cancelled at once; running ones get the whole grace period first.
    last_cancelled = max(stream.arrival(url) for url in queued)
    first_interrupted = min(stream.arrival(url) for url in running)
    assert last_cancelled <= first_interrupted
    assert first_interrupted - sent >= grace_s - 0.05

    # The stream ends with the job's final status.
    end = stream.end
    assert end is not None, f"the stream ended without an end line: {stream.lines[-1:]}"
    assert end["job"]["id"] == job_id
    assert end["job"]["status"] == "interrupted"
    assert end["job"]["completed"] == end["job"]["total"] == len(urls)
    # Cancelled and interrupted checks say nothing about their targets: not counted as down.
    assert end["job"]["summary"] == {
        "up": 2,
        "degraded": 0,
        "down": 0,  # no target was seen down: shutdown ended these checks
        "cancelled": 6,
        "interrupted": 2,
        "errors": {"cancelled": 6, "interrupted": 2},
    }

    assert_in_order(
        log,
        "Shutting down",
        f"grace period of {grace_s:.1f} s over: checks still running were interrupted",
        "Application shutdown complete",
    )


def _start_post(port: int, body: bytes, sent_first: int) -> socket.socket:
    """Open a connection and send a job submission's headers and the start of its body."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10.0)
    head = (
        "POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    sock.sendall(head + body[:sent_first])
    return sock


def _read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 response with a Content-Length body (what JSONResponse sends)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before a response: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers["content-length"])
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "connection closed mid-body"
        body += chunk
    return int(status_line.split()[1]), headers, body


def test_job_submitted_while_shutting_down_gets_503_with_a_reason(
    hanging_server: RawServer,
) -> None:
    # Once uvicorn starts shutting down it closes its listener and every idle connection, so
    # the only request that can still be answered is one already in progress: here, a
    # submission whose body is still being uploaded when the signal arrives.
    grace_s = 1.0
    with running_service(grace_s=grace_s, workers=1) as svc:
        running, queued = f"{hanging_server.url}/a", f"{hanging_server.url}/b"
        job_id = submit(svc, [running, queued], **HANGING_OPTIONS)
        stream = StreamFollower(svc.url, job_id).start()
        body = json.dumps({"urls": [f"{hanging_server.url}/late"]}).encode()
        upload = _start_post(svc.port, body, sent_first=10)
        with upload:
            # A round trip on another connection: by its end the upload's headers are parsed
            # and the request is in progress.
            with httpx.Client(timeout=10.0, trust_env=False) as client:
                assert client.get(f"{svc.url}/readyz").status_code == 200
            assert wait_until(lambda: hanging_server.connections >= 1, 10.0)

            sent = terminate(svc)
            # The queued check's `cancelled` line shows the drain has begun.
            assert wait_until(lambda: queued in stream.kinds_by_url(), 10.0), svc.log()
            upload.sendall(body[10:])
            status, headers, answer = _read_response(upload)

        returncode = svc.wait_exit(grace_s + EXIT_MARGIN_S)
        assert stream.wait_finished(5.0)
        log = svc.log()

    assert status == 503, answer
    assert json.loads(answer) == {"detail": "the service is shutting down"}
    assert headers["content-type"] == "application/json"
    assert headers["retry-after"] == "5"
    assert '"POST /v1/jobs HTTP/1.1" 503' in log
    # The refused submission created no job: the held stream's job is the only one, and it
    # still ends in its final state.
    end = stream.end
    assert end is not None
    assert end["job"]["status"] == "interrupted"
    assert stream.kinds_by_url() == {queued: ["cancelled"], running: ["interrupted"]}
    assert returncode == CLEAN_EXIT, f"exit {returncode} {time.monotonic() - sent:.1f} s\n{log}"


def test_running_check_that_finishes_within_the_grace_period_keeps_its_real_result(
    target: ThreadedUvicorn,
) -> None:
    grace_s = 10.0
    slow = f"{target.url}/delay/1500"
    queued = f"{target.url}/status/200"
    with running_service(grace_s=grace_s, workers=1) as svc:
        job_id = submit(svc, [slow, queued])
        stream = StreamFollower(svc.url, job_id).start()
        # One worker: "running" means the slow check started and the other one waits.
        assert wait_until(lambda: job_status(svc, job_id) == "running", 10.0)

        sent = terminate(svc)
        returncode = svc.wait_exit(grace_s + EXIT_MARGIN_S)
        exited = time.monotonic()
        assert stream.wait_finished(5.0)
        log = svc.log()

    assert returncode == CLEAN_EXIT, log
    assert stream.kinds_by_url() == {queued: ["cancelled"], slow: ["ok"]}
    real = next(r for r in stream.results if r["url"] == slow)
    assert real["status_code"] == 200
    assert real["elapsed_ms"] >= 1500
    # Its queued check was cancelled by the shutdown, so the job ends `interrupted`, though
    # its running check finished for real.
    end = stream.end
    assert end is not None
    assert end["job"]["status"] == "interrupted"
    assert end["job"]["summary"] == {
        "up": 1,
        "degraded": 0,
        "down": 0,
        "cancelled": 1,
        "interrupted": 0,
        "errors": {"cancelled": 1},
    }
    # The drain ended when the check did, not when the grace period did.
    assert exited - sent < grace_s, f"exited {exited - sent:.1f} s after SIGTERM\n{log}"
    assert "grace period" not in log
    assert "Application shutdown complete" in log


def test_serve_logs_startup_and_the_drain_at_the_configured_level() -> None:
    # URLHEALTH_LOG_LEVEL=info: the service's own info lines belong in the log next to
    # uvicorn's ("urlhealth <version> starting", "ready on <address>", "drained in <s> s").
    with running_service(grace_s=1.0, workers=1) as svc:
        terminate(svc)
        returncode = svc.wait_exit(1.0 + EXIT_MARGIN_S)
        log = svc.log()

    assert returncode == CLEAN_EXIT, log
    # The drain begins before uvicorn logs "Shutting down", so only these are in a fixed order.
    assert_in_order(
        log, "starting: 1 workers", "ready on", "drained in", "Application shutdown complete"
    )


def test_plain_uvicorn_drains_through_the_lifespan_within_the_grace_period(
    target: ThreadedUvicorn, hanging_server: RawServer
) -> None:
    grace_s = 1.0
    with running_service(uvicorn_command, grace_s=grace_s, workers=2) as svc:
        submit(svc, [f"{target.url}/delay/500", f"{hanging_server.url}/x"], **HANGING_OPTIONS)
        assert wait_until(lambda: hanging_server.connections >= 1, 10.0)

        sent = terminate(svc)
        returncode = svc.wait_exit(grace_s + EXIT_MARGIN_S)
        exited = time.monotonic()
        log = svc.log()

    assert returncode == UVICORN_CLEAN_EXIT, f"exit {returncode} after {exited - sent:.1f} s\n{log}"
    assert_in_order(
        log,
        "Waiting for application shutdown",
        f"grace period of {grace_s:.1f} s over",
        "Application shutdown complete",
    )


def test_plain_uvicorn_lets_a_held_stream_finish_its_job_before_shutting_down(
    target: ThreadedUvicorn,
) -> None:
    # Without `urlhealth serve` the drain begins only after open connections have closed, so
    # a streamed job runs to its natural end: `done`, with its real result.
    grace_s = 2.0
    slow = f"{target.url}/delay/800"
    with running_service(uvicorn_command, grace_s=grace_s, workers=1) as svc:
        job_id = submit(svc, [slow])
        stream = StreamFollower(svc.url, job_id).start()
        assert wait_until(lambda: job_status(svc, job_id) == "running", 10.0)

        terminate(svc)
        returncode = svc.wait_exit(grace_s + EXIT_MARGIN_S)
        assert stream.wait_finished(5.0)
        log = svc.log()

    assert returncode == UVICORN_CLEAN_EXIT, log
    assert stream.error is None, repr(stream.error)
    assert stream.kinds_by_url() == {slow: ["ok"]}
    end = stream.end
    assert end is not None
    assert end["job"]["status"] == "done"
    assert_in_order(log, "Waiting for connections to close", "Application shutdown complete")
