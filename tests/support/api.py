"""Helpers for the API tests: a target the test holds and releases, bounded waits, job calls."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import httpx

from tests.support.servers import RawServer

T = TypeVar("T")

FINAL_STATUSES = frozenset({"done", "cancelled", "interrupted"})


class GatedServer:
    """Answers `200 OK` to every request, but only once the test calls `release()`.

    A check of its URL stays running exactly as long as the test wants, so ordering and
    in-progress states can be asserted without relying on timing.
    """

    def __init__(self) -> None:
        self._gate = threading.Event()
        self._server = RawServer(self._handle)

    def _handle(self, conn: Any) -> None:
        conn.recv(65536)
        self._gate.wait(30)  # bounded: a forgotten release cannot hang a test run
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        conn.close()

    @property
    def url(self) -> str:
        return self._server.url

    @property
    def connections(self) -> int:
        return self._server.connections

    def release(self) -> None:
        self._gate.set()

    def close(self) -> None:
        self._gate.set()
        self._server.stop()


@contextmanager
def gated_server() -> Iterator[GatedServer]:
    server = GatedServer()
    try:
        yield server
    finally:
        server.close()


def wait_for(probe: Callable[[], T | None], timeout: float = 15.0, what: str = "condition") -> T:
    """Call `probe` until it returns something other than None/False; bounded by `timeout`."""
    pause = threading.Event()
    deadline_rounds = max(1, int(timeout / 0.05))
    for _ in range(deadline_rounds):
        value = probe()
        if value is not None and value is not False:
            return value
        pause.wait(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def submit(client: httpx.Client, urls: list[str], **options: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"urls": urls}
    if options:
        body["options"] = options
    response = client.post("/v1/jobs", json=body)
    assert response.status_code == 202, response.text
    job: dict[str, Any] = response.json()
    return job


def get_job(client: httpx.Client, job_id: str, **params: Any) -> dict[str, Any]:
    response = client.get(f"/v1/jobs/{job_id}", params=params)
    assert response.status_code == 200, response.text
    job: dict[str, Any] = response.json()
    return job


def wait_final(client: httpx.Client, job_id: str, timeout: float = 20.0) -> dict[str, Any]:
    """Poll the job until it reaches a final status; returns it with up to 1000 results."""

    def probe() -> dict[str, Any] | None:
        job = get_job(client, job_id, limit=1000)
        return job if job["status"] in FINAL_STATUSES else None

    return wait_for(probe, timeout, f"job {job_id} to finish")


def status(client: httpx.Client) -> dict[str, Any]:
    response = client.get("/v1/status")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body
