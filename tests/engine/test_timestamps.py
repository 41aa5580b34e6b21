"""Answer times come from the kernel's receive timestamps, so a worker that is slow to read
(hundreds of threads share the GIL) does not make the target look slow."""

from __future__ import annotations

import socket
import sys
import threading
import time
from collections.abc import Iterator

import pytest

from app.engine import network
from tests.support.engine import make_http
from tests.support.servers import RawServer

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="SO_TIMESTAMPNS is Linux's"
)


def _answer_at_once(conn: socket.socket) -> None:
    conn.recv(1024)
    conn.sendall(b"hello")
    threading.Event().wait(5)


@pytest.fixture
def server() -> Iterator[RawServer]:
    raw = RawServer(_answer_at_once)
    yield raw
    raw.stop()


def test_answer_time_is_when_the_bytes_arrived_not_when_the_worker_read_them(
    server: RawServer,
) -> None:
    http = make_http()
    phases = network.Phases()
    with network.check_scope(time.monotonic() + 10, phases):
        stream = http.backend.connect_tcp("127.0.0.1", server.port, timeout=5)
        try:
            stream.write(b"ping")
            threading.Event().wait(0.4)  # the worker gets to the answer late
            data = stream.read(1024)
            read_at = time.monotonic()
        finally:
            stream.close()
    assert data == b"hello"
    assert phases.sent is not None
    assert phases.first_byte is not None
    assert phases.last_byte == phases.first_byte
    # The answer arrived right after the request, long before it was read.
    assert read_at - phases.first_byte >= 0.3
    assert phases.first_byte - phases.sent < 0.3
    assert phases.first_byte >= phases.sent


def test_without_a_kernel_timestamp_the_read_time_is_used() -> None:
    before = time.monotonic()
    at = network._arrival([])
    assert before <= at <= time.monotonic()
