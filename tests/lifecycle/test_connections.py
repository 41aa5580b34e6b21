"""Client connections against a real `urlhealth serve` process, through raw loopback sockets:
request heads that never finish and idle keep-alive connections are closed, the number of
connections is capped, and a malformed or oversized request head is answered in JSON.

Sockets are bounded in count (a few dozen); every wait is bounded and generous, because the
machine running the tests may be loaded.
"""

from __future__ import annotations

import contextlib
import json
import selectors
import socket
import time
from collections.abc import Iterator, Sequence

import httpx
import pytest

from tests.support.process import ServiceProcess, running_service, uvicorn_command, wait_until

pytestmark = pytest.mark.slow

HEAD_TIMEOUT_S = 1.5
KEEPALIVE_S = 0.5
# The server checks its timers on its own event loop, which a loaded machine may delay.
MARGIN_S = 12.0
HALF_HEAD = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "


@pytest.fixture(scope="module")
def svc() -> Iterator[ServiceProcess]:
    env = {
        "URLHEALTH_REQUEST_HEAD_TIMEOUT_S": str(HEAD_TIMEOUT_S),
        "URLHEALTH_KEEPALIVE_TIMEOUT_S": str(KEEPALIVE_S),
        "URLHEALTH_MAX_CONNECTIONS": "100",
    }
    with running_service(env=env) as proc:
        yield proc


def connect(svc: ServiceProcess, first: bytes = b"") -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", svc.port), timeout=5.0)
    if first:
        sock.sendall(first)
    return sock


def read_until_closed(socks: Sequence[socket.socket], timeout_s: float) -> dict[int, bytes]:
    """Read every socket until the server closes it or `timeout_s` passes.

    Returns what each closed socket received, by its index; sockets still open are absent.
    """
    received: dict[int, bytearray] = {i: bytearray() for i in range(len(socks))}
    closed: dict[int, bytes] = {}
    with selectors.DefaultSelector() as selector:
        for i, sock in enumerate(socks):
            sock.setblocking(False)
            selector.register(sock, selectors.EVENT_READ, i)
        deadline = time.monotonic() + timeout_s
        while len(closed) < len(socks) and time.monotonic() < deadline:
            for key, _ in selector.select(timeout=max(0.0, deadline - time.monotonic())):
                i = key.data
                try:
                    chunk = socks[i].recv(65536)
                except BlockingIOError:
                    continue
                except ConnectionResetError:
                    chunk = b""
                if chunk:
                    received[i] += chunk
                else:
                    closed[i] = bytes(received[i])
                    selector.unregister(socks[i])
    return closed


@contextlib.contextmanager
def sockets(count: int, svc: ServiceProcess, first: bytes) -> Iterator[list[socket.socket]]:
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            socks.append(connect(svc, first))
        yield socks
    finally:
        for sock in socks:
            sock.close()


def healthz(svc: ServiceProcess) -> int:
    with httpx.Client(timeout=10.0, trust_env=False) as client:
        return client.get(f"{svc.url}/healthz").status_code


def test_half_sent_request_heads_are_closed_while_requests_still_work(
    svc: ServiceProcess,
) -> None:
    with sockets(50, svc, HALF_HEAD) as socks:
        # While they hang, the service still answers.
        assert healthz(svc) == 200

        closed = read_until_closed(socks, HEAD_TIMEOUT_S + MARGIN_S)

        assert len(closed) == 50, f"{50 - len(closed)} half-open connections still open"
    # Each was told why, in JSON, before the close.
    for answer in closed.values():
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408 "), answer[:200]
        assert b"content-type: application/json" in head.lower()
        assert "request head" in json.loads(body)["detail"]
    assert healthz(svc) == 200


def test_a_connection_that_sends_nothing_is_closed(svc: ServiceProcess) -> None:
    with sockets(5, svc, b"") as socks:
        closed = read_until_closed(socks, HEAD_TIMEOUT_S + MARGIN_S)

    assert len(closed) == 5
    assert set(closed.values()) == {b""}  # nothing was asked, so nothing is answered


def test_a_head_trickling_in_byte_by_byte_is_cut_off_by_the_head_timeout(
    svc: ServiceProcess,
) -> None:
    # Each byte arrives well within the keep-alive time; only a deadline for the whole head
    # ends this (uvicorn's keep-alive timer restarts on every byte).
    with sockets(1, svc, HALF_HEAD) as (sock,):
        deadline = time.monotonic() + HEAD_TIMEOUT_S + MARGIN_S
        cut_off = False
        while time.monotonic() < deadline:
            try:
                sock.sendall(b"a")
            except OSError:  # reset: the server closed it
                cut_off = True
                break
            if read_until_closed([sock], KEEPALIVE_S / 2):
                cut_off = True
                break
            sock.setblocking(True)

    assert cut_off, "a trickling request head was never cut off"


def test_an_idle_keepalive_connection_is_closed_after_the_keepalive_timeout(
    svc: ServiceProcess,
) -> None:
    request = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    with sockets(1, svc, request) as (sock,):
        started = time.monotonic()
        closed = read_until_closed([sock], 4.0)  # uvicorn's own default would be 5 s
        elapsed = time.monotonic() - started

    assert 0 in closed, f"still open after {elapsed:.1f} s"
    assert closed[0].startswith(b"HTTP/1.1 200 ")


def test_a_half_sent_second_request_on_a_kept_alive_connection_is_timed_out(
    svc: ServiceProcess,
) -> None:
    request = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    with sockets(1, svc, request) as (sock,):
        first = read_answer(sock)  # the connection is kept alive
        sock.sendall(HALF_HEAD)
        closed = read_until_closed([sock], HEAD_TIMEOUT_S + MARGIN_S)

    assert first.startswith(b"HTTP/1.1 200 ")
    assert closed[0].startswith(b"HTTP/1.1 408 ")


def test_a_request_head_too_large_is_answered_431_in_json(svc: ServiceProcess) -> None:
    with httpx.Client(timeout=10.0, trust_env=False) as client:
        response = client.get(f"{svc.url}/healthz", headers={"X-Big": "a" * 1_000_000})

    assert response.status_code == 431
    assert response.headers["content-type"] == "application/json"
    assert "request head" in response.json()["detail"]
    assert healthz(svc) == 200


def test_a_malformed_request_head_is_answered_400_in_json(svc: ServiceProcess) -> None:
    with sockets(1, svc, b"GET /healthz HTTP/1.1\r\nHost 127.0.0.1\r\n\r\n") as (sock,):
        closed = read_until_closed([sock], MARGIN_S)

    head, _, body = closed[0].partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 ")
    assert b"content-type: application/json" in head.lower()
    assert "malformed request head" in json.loads(body)["detail"]


def test_connections_beyond_the_cap_are_closed_at_once_and_service_resumes() -> None:
    env = {"URLHEALTH_MAX_CONNECTIONS": "20", "URLHEALTH_KEEPALIVE_TIMEOUT_S": "120"}
    request = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    with running_service(env=env) as svc:
        with sockets(20, svc, request) as holders:
            # Each holder has its answer, so the server counts it (and not an earlier one).
            for sock in holders:
                assert read_answer(sock).startswith(b"HTTP/1.1 200 ")
            with sockets(5, svc, HALF_HEAD) as extra:
                refused = read_until_closed(extra, MARGIN_S)

                assert len(refused) == 5, "connections beyond the cap were kept open"
                assert set(refused.values()) == {b""}
            assert read_until_closed(holders, 0.5) == {}, "connections within the cap closed"

        # Once the holders go, the service takes connections again.
        assert wait_until(lambda: _succeeds(svc), timeout_s=MARGIN_S)


def read_answer(sock: socket.socket) -> bytes:
    """One small answer to a GET, its JSON body ending in `}`."""
    answer = b""
    while b"\r\n\r\n" not in answer or not answer.endswith(b"}"):
        chunk = sock.recv(65536)
        if not chunk:
            break
        answer += chunk
    return answer


def _succeeds(svc: ServiceProcess) -> bool:
    try:
        return healthz(svc) == 200
    except httpx.TransportError:
        return False


def test_plain_uvicorn_gets_the_same_limits_with_its_http_option() -> None:
    def command(port: int) -> list[str]:
        return [*uvicorn_command(port), "--http", "app.lifecycle.connections:GuardedH11Protocol"]

    env = {"URLHEALTH_REQUEST_HEAD_TIMEOUT_S": str(HEAD_TIMEOUT_S)}
    with running_service(command, env=env) as svc, sockets(3, svc, HALF_HEAD) as socks:
        closed = read_until_closed(socks, HEAD_TIMEOUT_S + MARGIN_S)

    assert len(closed) == 3
