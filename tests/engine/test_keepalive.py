"""Idle keep-alive connections to targets are closed when they expire, not kept until the
next check of the host happens to reuse (and then replace) them."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from app.engine.checker import Checker
from app.engine.options import CheckOptions
from tests.support.engine import make_http, wait_until
from tests.support.servers import RawServer, ThreadedUvicorn

EXPIRY_S = 0.5
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


@dataclass
class KeepAliveServer:
    """Answers every request on a connection with a keep-alive 200, and notes when the
    client closes a connection."""

    served: threading.Event = field(default_factory=threading.Event)
    closed_by_client: threading.Event = field(default_factory=threading.Event)
    stop: threading.Event = field(default_factory=threading.Event)

    def handle(self, conn: socket.socket) -> None:
        conn.settimeout(0.2)
        for _ in range(300):  # bounded: 60 s of waiting at most
            if self.stop.is_set():
                return
            try:
                data = conn.recv(65536)
            except TimeoutError:
                continue
            if not data:
                self.closed_by_client.set()
                return
            conn.sendall(OK)
            self.served.set()


@pytest.fixture
def keepalive_server() -> Iterator[tuple[KeepAliveServer, RawServer]]:
    state = KeepAliveServer()
    server = RawServer(state.handle)
    yield state, server
    state.stop.set()
    server.stop()


def test_an_idle_connection_is_closed_soon_after_it_expires(
    keepalive_server: tuple[KeepAliveServer, RawServer],
) -> None:
    state, server = keepalive_server
    http = make_http(keepalive_expiry_s=EXPIRY_S)
    try:
        result = Checker(http).check(f"{server.url}/", CheckOptions(timeout_s=10))
        assert result.ok is True, result.error
        assert state.served.is_set()

        # Generous: expiry plus scheduling on a loaded machine. Without a reaper it stays
        # open until the layer closes.
        assert wait_until(state.closed_by_client.is_set, timeout=EXPIRY_S + 10)

        # The host is still checkable afterwards, on a new connection.
        again = Checker(http).check(f"{server.url}/", CheckOptions(timeout_s=10))
        assert again.ok is True, again.error
        assert server.connections == 2
    finally:
        http.close()


def test_a_connection_in_use_is_not_reaped_during_a_check_longer_than_the_expiry(
    target: ThreadedUvicorn,
) -> None:
    http = make_http(keepalive_expiry_s=0.2)
    try:
        result = Checker(http).check(f"{target.url}/delay/1000", CheckOptions(timeout_s=10))
        assert result.ok is True, result.error
        assert result.bytes_read == 2
    finally:
        http.close()


def test_close_stops_the_reaper(keepalive_server: tuple[KeepAliveServer, RawServer]) -> None:
    _, server = keepalive_server
    before = set(threading.enumerate())
    http = make_http(keepalive_expiry_s=60)
    assert Checker(http).check(f"{server.url}/", CheckOptions(timeout_s=10)).ok is True
    reapers = [t for t in set(threading.enumerate()) - before if "reaper" in t.name]
    assert reapers  # one is waiting for that connection to expire

    http.close()

    assert wait_until(lambda: not any(thread.is_alive() for thread in reapers), timeout=10)
