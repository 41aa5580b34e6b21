"""Fixtures of the engine's tests: an HTTP layer, engines wired as the service wires them, and
a server that reads a request and never answers."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator

import pytest

from app.engine.checker import Checker
from app.engine.dispatcher import Dispatcher
from app.engine.options import CheckOptions
from app.engine.transport import HttpLayer
from app.store.memory import MemoryStore
from tests.support.engine import Engine, make_http
from tests.support.servers import RawServer


@pytest.fixture
def http() -> Iterator[HttpLayer]:
    """An HTTP layer of its own for one test (loopback allowed, real DNS)."""
    layer = make_http()
    yield layer
    layer.abort_in_flight()
    layer.close()


@pytest.fixture
def engine_factory() -> Iterator[Callable[..., Engine]]:
    built: list[Engine] = []

    def build(
        workers: int = 4,
        max_queued: int = 1000,
        max_per_host: int = 8,
        min_host_interval_s: float = 0.0,
        monitor_workers: int = 0,
        monitor_slots_per_host: int = 0,
    ) -> Engine:
        store = MemoryStore(max_jobs=100, max_age_s=3600)
        http = make_http()
        dispatcher = Dispatcher(
            store,
            Checker(http),
            workers=workers,
            max_queued=max_queued,
            max_per_host=max_per_host,
            min_host_interval_s=min_host_interval_s,
            monitor_workers=monitor_workers,
            monitor_slots_per_host=monitor_slots_per_host,
        )
        engine = Engine(store, http, dispatcher, CheckOptions(timeout_s=30))
        built.append(engine)
        return engine

    yield build
    for engine in built:
        engine.close()


@pytest.fixture
def hang_after_request() -> Iterator[tuple[RawServer, threading.Event]]:
    """Reads the request, says so, and never answers (until the test ends)."""
    stop = threading.Event()
    got_request = threading.Event()

    def handler(conn: socket.socket) -> None:
        if conn.recv(65536):
            got_request.set()
        stop.wait(60)

    server = RawServer(handler)
    yield server, got_request
    stop.set()
    server.stop()
