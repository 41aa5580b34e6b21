"""Fixtures start real servers on loopback; nothing leaves this machine."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from app.config import Settings, load_settings
from app.engine.resolver import Resolver
from app.main import create_app
from app.services import Services
from tests.support.destination import Canaries
from tests.support.postgres import PostgresServer, own_server
from tests.support.servers import (
    RawServer,
    ThreadedUvicorn,
    answer_garbage,
    close_without_answer,
    free_port,
    hang_until,
    target_app,
)


@pytest.fixture(scope="session")
def target() -> Iterator[ThreadedUvicorn]:
    """A well-behaved HTTP target: /delay/{ms}, /status/{code}, /redirect/{n}, /loop/a, ..."""
    server = ThreadedUvicorn(target_app()).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A real PostgreSQL server for the session; skipped when none can be started here,
    except in CI (CI=true), where that fails the run."""
    server = own_server(ci=os.environ.get("CI") == "true")
    yield server
    server.remove()


@pytest.fixture
def pg_url(postgres: PostgresServer) -> Iterator[str]:
    """A fresh, empty database on the session's server, as users write its URL."""
    name = postgres.create_database()
    yield postgres.url(name)
    postgres.drop_database(name)


@pytest.fixture(scope="module")
def module_canaries() -> Iterator[Canaries]:
    started = Canaries.start()
    yield started
    started.stop()


@pytest.fixture
def canaries(module_canaries: Canaries) -> Canaries:
    """Listeners that must never be reached (destination tests), counts from zero."""
    module_canaries.reset()
    return module_canaries


@pytest.fixture
def hanging_server() -> Iterator[RawServer]:
    stop = threading.Event()
    server = RawServer(hang_until(stop))
    yield server
    stop.set()
    server.stop()


@pytest.fixture
def garbage_server() -> Iterator[RawServer]:
    server = RawServer(answer_garbage)
    yield server
    server.stop()


@pytest.fixture
def closing_server() -> Iterator[RawServer]:
    server = RawServer(close_without_answer)
    yield server
    server.stop()


def make_settings(**overrides: Any) -> Settings:
    base: dict[str, Any] = {
        "workers": 16,
        "log_level": "warning",
        "shutdown_grace_s": 2.0,
        "allowed_networks": ("127.0.0.0/8", "::1/128"),
        # Never the default 8000: the tests must run beside a service started by hand.
        "port": free_port(),
        # In-process services never touch ./data; tests of persistence pass their own URL.
        "database_url": "memory://",
    }
    base.update(overrides)
    return load_settings(None, **base)


class RunningService:
    """The urlhealth app served by a real uvicorn on loopback, and a client for it."""

    def __init__(self, settings: Settings, resolver: Resolver | None = None) -> None:
        self.app = create_app(settings, resolver)
        self.services: Services = self.app.state.services
        self.server = ThreadedUvicorn(self.app, port=settings.port).start()
        self.url = self.server.url
        self.client = httpx.Client(base_url=self.url, timeout=30.0, trust_env=False)

    def close(self) -> None:
        self.client.close()
        self.server.stop()


@pytest.fixture
def service_factory() -> Iterator[Callable[..., RunningService]]:
    started: list[RunningService] = []

    def start(resolver: Resolver | None = None, **overrides: Any) -> RunningService:
        # The service knows its real port, so the destination policy can refuse itself.
        overrides.setdefault("port", free_port())
        svc = RunningService(make_settings(**overrides), resolver)
        started.append(svc)
        return svc

    yield start
    for svc in started:
        svc.close()


@pytest.fixture
def service(service_factory: Callable[..., RunningService]) -> RunningService:
    return service_factory()
