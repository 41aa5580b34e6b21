"""When keys are required, and whose address a call is counted under."""

from __future__ import annotations

import pytest

from app.auth.keys import Scope
from app.auth.policy import ClientAddress, keys_required


@pytest.mark.parametrize(
    ("mode", "host", "required"),
    [
        ("auto", "127.0.0.1", False),
        ("auto", "::1", False),
        ("auto", "localhost", False),
        ("auto", "0.0.0.0", True),
        ("auto", "192.0.2.7", True),
        ("auto", "example.internal", True),
        ("required", "127.0.0.1", True),
        ("off", "0.0.0.0", False),
    ],
)
def test_keys_required_by_mode_and_listen_address(mode: str, host: str, required: bool) -> None:
    assert keys_required(mode, host) is required


def test_forwarded_for_is_believed_only_from_a_trusted_proxy() -> None:
    clients = ClientAddress(("127.0.0.1/32", "10.0.0.0/8"))
    assert clients.of("192.0.2.9", "203.0.113.5") == "192.0.2.9"
    assert clients.of("127.0.0.1", "203.0.113.5") == "203.0.113.5"
    # The nearest untrusted hop: what came before it could be made up by the client.
    assert clients.of("127.0.0.1", "198.51.100.1, 203.0.113.5, 10.1.2.3") == "203.0.113.5"
    assert clients.of("127.0.0.1", None) == "127.0.0.1"


def test_no_trusted_proxies_means_the_peer_address() -> None:
    assert ClientAddress(()).of("127.0.0.1", "203.0.113.5") == "127.0.0.1"


def test_scopes_nest() -> None:
    assert Scope.admin.allows(Scope.check)
    assert Scope.check.allows(Scope.read)
    assert not Scope.check.allows(Scope.admin)
    assert not Scope.read.allows(Scope.check)
