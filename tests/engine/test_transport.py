"""The HTTP layer: the per-check deadline clips every socket operation, shutdown can abort
reads in flight, and each thread gets its own client."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from app.engine.checker import Checker
from app.engine.options import CheckOptions
from app.engine.transport import HttpLayer
from app.schemas.results import CheckResult, ErrorKind
from tests.support.engine import make_http
from tests.support.servers import RawServer, ThreadedUvicorn

TRICKLE_INTERVAL_S = 0.2


def trickler(stop: threading.Event, head: bytes, then: bytes) -> Callable[[socket.socket], None]:
    """Send `head` at once, then `then` one byte every 200 ms, forever (until `stop`)."""

    def handler(conn: socket.socket) -> None:
        conn.recv(65536)
        conn.sendall(head)
        for index in range(1500):  # bounded: 5 minutes at most
            if stop.wait(TRICKLE_INTERVAL_S):
                return
            conn.sendall(then[index % len(then) : index % len(then) + 1])

    return handler


@pytest.fixture
def trickle_body_server() -> Iterator[RawServer]:
    """Answers 200 at once, then drips a 1 MB body one byte every 200 ms."""
    stop = threading.Event()
    server = RawServer(trickler(stop, b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n", b"x"))
    yield server
    stop.set()
    server.stop()


@pytest.fixture
def trickle_headers_server() -> Iterator[RawServer]:
    """Drips an endless header block one byte every 200 ms: the status line never completes
    a response."""
    stop = threading.Event()
    server = RawServer(trickler(stop, b"HTTP/1.1 200 OK\r\n", b"X-Drip: aaaaaaaaaaaaaaaa\r\n"))
    yield server
    stop.set()
    server.stop()


@pytest.mark.parametrize("server_fixture", ["trickle_body_server", "trickle_headers_server"])
def test_deadline_clips_reads_from_a_server_that_trickles_forever(
    http: HttpLayer, request: pytest.FixtureRequest, server_fixture: str
) -> None:
    # Each read returns within 200 ms, so no per-read timeout would ever fire: only the
    # check's deadline can end this.
    server: RawServer = request.getfixturevalue(server_fixture)
    started = time.monotonic()
    result = Checker(http).check(f"{server.url}/", CheckOptions(timeout_s=1.5))
    elapsed = time.monotonic() - started
    assert result.error is not None
    assert result.error.kind is ErrorKind.TIMEOUT
    assert elapsed < 1.5 + 1.5
    assert elapsed >= 1.4  # it did wait for the deadline, not fail early


def run_in_thread(fn: Callable[[], CheckResult]) -> tuple[threading.Thread, list[CheckResult]]:
    out: list[CheckResult] = []
    thread = threading.Thread(target=lambda: out.append(fn()), daemon=True)
    thread.start()
    return thread, out


def test_abort_in_flight_from_another_thread_ends_a_blocked_check_promptly(
    http: HttpLayer, hang_after_request: tuple[RawServer, threading.Event]
) -> None:
    server, got_request = hang_after_request
    checker = Checker(http)
    thread, out = run_in_thread(lambda: checker.check(f"{server.url}/", CheckOptions(timeout_s=60)))
    # The request has been sent, so the check's socket is open and blocked reading.
    assert got_request.wait(10)
    aborted_at = time.monotonic()
    assert http.abort_in_flight() >= 1
    thread.join(10)
    assert not thread.is_alive(), "the aborted check is still blocked"
    assert time.monotonic() - aborted_at < 5
    [result] = out
    assert result.ok is False
    assert result.error is not None
    assert result.error.kind is not ErrorKind.TIMEOUT


def test_after_abort_new_connections_are_cut_too(http: HttpLayer, target: ThreadedUvicorn) -> None:
    # Shutdown aborts in-flight reads once; a check racing it must not get a live socket.
    checker = Checker(http)
    assert checker.check(f"{target.url}/status/200", CheckOptions(timeout_s=5)).ok is True
    http.abort_in_flight()
    result = checker.check(f"{target.url}/status/200?after=abort", CheckOptions(timeout_s=5))
    assert result.ok is False


def test_abort_in_flight_with_nothing_open_returns_zero(http: HttpLayer) -> None:
    assert http.abort_in_flight() == 0


def test_concurrent_leases_of_one_host_get_different_clients(http: HttpLayer) -> None:
    with http.lease("a.test", True) as first, http.lease("a.test", True) as second:
        assert first is not second


def test_a_returned_client_is_reused_by_the_next_check_of_that_host(http: HttpLayer) -> None:
    with http.lease("a.test", True) as first:
        pass
    with http.lease("a.test", True) as again:
        assert again is first


def test_other_hosts_and_other_verify_modes_never_share_a_client(http: HttpLayer) -> None:
    with http.lease("a.test", True) as first:
        pass
    with http.lease("b.test", True) as other_host, http.lease("a.test", False) as other_mode:
        assert other_host is not first
        assert other_mode is not first


def test_idle_clients_are_bounded_and_the_least_recent_is_closed() -> None:
    http = make_http(max_idle_clients=2)
    with (
        http.lease("a.test", True) as a,
        http.lease("b.test", True) as b,
        http.lease("c.test", True) as c,
    ):
        pass
    # Returned in the order c, b, a: the least recently returned (c) is evicted.
    assert http.idle_clients() == 2
    assert c.closed
    assert not a.closed
    assert not b.closed
    http.close()


def test_close_closes_idle_clients_and_any_returned_later(http: HttpLayer) -> None:
    with http.lease("a.test", True) as idle:
        pass
    with http.lease("b.test", True) as busy:
        http.close()
        assert idle.closed
        assert not busy.closed
    assert busy.closed
    assert http.idle_clients() == 0
