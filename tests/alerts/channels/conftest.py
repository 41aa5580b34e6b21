"""Fixtures of the senders' tests: a recording receiver, and an HTTP layer that allows
loopback, resolves only a fixed table of names and refuses (and records) any connect off
this machine."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from ipaddress import ip_address

import pytest

from app.alerts.channels import mail
from app.engine.policy import DestinationPolicy
from app.engine.transport import HttpLayer
from tests.alerts.receivers import Receiver, start_receiver
from tests.support.destination import ConnectGuard, LocalResolver, guard
from tests.support.engine import loopback_policy, make_http

# Fake DNS answers: never looked up for real.
NAMES: dict[str, list[str]] = {
    "hooks.test": ["127.0.0.1"],
    "metadata.test": ["169.254.169.254"],
    "private.test": ["10.0.0.1"],
    "smtp.test": ["127.0.0.1"],
}


class OffMachineSmtp(Exception):
    """The SMTP sender tried to connect somewhere other than loopback; the guard refused."""


@pytest.fixture(autouse=True)
def smtp_guard(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """The ConnectGuard's counterpart for e-mail, which opens its own sockets: every connect
    is recorded, and one off this machine is refused, so a policy bug fails the test
    instead of sending traffic."""
    connects: list[tuple[str, int]] = []

    def create_connection(address: tuple[str, int], timeout: float) -> socket.socket:
        connects.append(address)
        if not ip_address(address[0]).is_loopback:
            raise OffMachineSmtp(f"test guard: refused to connect to {address}")
        return socket.create_connection(address, timeout)

    monkeypatch.setattr(mail, "create_connection", create_connection)
    return connects


@pytest.fixture(scope="module")
def module_receiver() -> Iterator[Receiver]:
    receiver = start_receiver()
    yield receiver
    receiver.server.stop()


@pytest.fixture
def receiver(module_receiver: Receiver) -> Receiver:
    module_receiver.reset()
    return module_receiver


def guarded_http(policy: DestinationPolicy | None = None) -> tuple[HttpLayer, ConnectGuard]:
    http = make_http(resolver=LocalResolver(NAMES), policy=policy or loopback_policy())
    return http, guard(http)


@pytest.fixture
def http_and_guard() -> Iterator[tuple[HttpLayer, ConnectGuard]]:
    http, installed = guarded_http()
    yield http, installed
    http.abort_in_flight()
    http.close()


@pytest.fixture
def http(http_and_guard: tuple[HttpLayer, ConnectGuard]) -> HttpLayer:
    return http_and_guard[0]
