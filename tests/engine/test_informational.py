"""Interim (1xx) answers: a few before the final answer are skipped, as HTTP allows; a target
that sends them without end is an invalid answer, not a reason to parse until the deadline."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from app.engine.checker import Checker
from app.engine.options import CheckOptions
from app.engine.transport import HttpLayer
from app.schemas.results import ErrorKind
from tests.support.servers import RawServer

CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"


def flood(stop: threading.Event) -> Callable[[socket.socket], None]:
    """Reads the request, then sends `100 Continue` without end (until the client leaves, the
    test ends, or 60 s pass)."""

    def handler(conn: socket.socket) -> None:
        conn.recv(65536)
        conn.settimeout(1.0)
        burst = CONTINUE * 1000
        deadline = time.monotonic() + 60
        while not stop.is_set() and time.monotonic() < deadline:
            try:
                conn.sendall(burst)
            except TimeoutError:  # the client stopped reading but is still there
                continue
            except OSError:  # the client closed the connection
                return

    return handler


@pytest.fixture
def flooding_server() -> Iterator[RawServer]:
    stop = threading.Event()
    server = RawServer(flood(stop))
    yield server
    stop.set()
    server.stop()


def test_a_flood_of_100_continue_ends_the_check_fast_as_invalid_response(
    http: HttpLayer, flooding_server: RawServer
) -> None:
    started = time.monotonic()
    result = Checker(http).check(f"{flooding_server.url}/", CheckOptions(timeout_s=30))
    elapsed = time.monotonic() - started

    assert result.error is not None
    assert result.error.kind is ErrorKind.INVALID_RESPONSE, result.error
    assert "1xx" in result.error.message
    assert elapsed < 10, f"the check parsed 100s for {elapsed:.1f} s"


@pytest.mark.parametrize("interim", [1, 2, 5])
def test_a_few_interim_answers_then_200_is_up(http: HttpLayer, interim: int) -> None:
    def handler(conn: socket.socket) -> None:
        conn.recv(65536)
        conn.sendall(CONTINUE * (interim - 1) + b"HTTP/1.1 103 Early Hints\r\n\r\n" + OK)
        conn.close()

    server = RawServer(handler)
    try:
        result = Checker(http).check(f"{server.url}/", CheckOptions(timeout_s=10))
    finally:
        server.stop()

    assert result.error is None, result.error
    assert (result.ok, result.status_code, result.bytes_read) == (True, 200, 2)


def test_one_interim_answer_too_many_is_invalid_response(http: HttpLayer) -> None:
    def handler(conn: socket.socket) -> None:
        conn.recv(65536)
        conn.sendall(CONTINUE * 6 + OK)
        conn.close()

    server = RawServer(handler)
    try:
        result = Checker(http).check(f"{server.url}/", CheckOptions(timeout_s=10))
    finally:
        server.stop()

    assert result.error is not None
    assert result.error.kind is ErrorKind.INVALID_RESPONSE
