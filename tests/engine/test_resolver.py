"""Name resolution: literal fast path, bounded getaddrinfo, and the static test double.

Only "localhost" and numeric spellings reach the real getaddrinfo (answered from /etc/hosts
and inet_aton, no DNS traffic); everything else uses a fake getaddrinfo.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Any

import pytest

from app.engine.policy import DestinationPolicy, Verdict
from app.engine.resolver import (
    ResolveError,
    Resolver,
    ResolverError,
    ResolveTimeout,
    StaticResolver,
    SystemResolver,
)

Info = tuple[Any, ...]


def info4(addr: str, port: int = 80) -> Info:
    return (socket.AF_INET, socket.SOCK_STREAM, 6, "", (addr, port))


def info6(addr: str, port: int = 80) -> Info:
    return (socket.AF_INET6, socket.SOCK_STREAM, 6, "", (addr, port, 0, 0))


@pytest.fixture
def fake_getaddrinfo(monkeypatch: pytest.MonkeyPatch) -> Callable[..., list[tuple[str, int]]]:
    """Install a fake getaddrinfo; returns a function that sets its behaviour."""
    calls: list[tuple[str, int]] = []

    def install(answer: Callable[[str, int], list[Info]]) -> list[tuple[str, int]]:
        def fake(host: str, port: int, *args: Any, **kwargs: Any) -> list[Info]:
            calls.append((host, port))
            return answer(host, port)

        monkeypatch.setattr(socket, "getaddrinfo", fake)
        return calls

    return install


@pytest.fixture
def release() -> Iterator[threading.Event]:
    """Unblocks fake lookups at the end of a test so no helper thread outlives it for long."""
    event = threading.Event()
    yield event
    event.set()


def never_called(host: str, port: int) -> list[Info]:
    raise AssertionError(f"getaddrinfo called for {host!r}")


# -- SystemResolver -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "93.184.216.34", "::1", "2606:4700::1111", "::ffff:127.0.0.1"]
)
def test_ip_literals_are_returned_without_any_lookup(
    host: str, fake_getaddrinfo: Callable[..., list[tuple[str, int]]]
) -> None:
    calls = fake_getaddrinfo(never_called)
    assert SystemResolver().resolve(host, 80, 1.0) == [ip_address(host)]
    assert calls == []


def test_scoped_ipv6_literal_is_returned_without_any_lookup(
    fake_getaddrinfo: Callable[..., list[tuple[str, int]]],
) -> None:
    fake_getaddrinfo(never_called)
    [answer] = SystemResolver().resolve("fe80::1%lo", 80, 1.0)
    assert isinstance(answer, IPv6Address)
    assert answer.scope_id == "lo"


def test_ip_literal_is_returned_even_with_a_zero_timeout() -> None:
    assert SystemResolver().resolve("127.0.0.1", 80, 0) == [IPv4Address("127.0.0.1")]


def test_localhost_resolves_to_loopback_via_the_system_resolver() -> None:
    answers = SystemResolver().resolve("localhost", 80, 5.0)
    assert answers
    assert all(a.is_loopback for a in answers)


@pytest.mark.parametrize("spelling", ["2130706433", "0x7f.1", "127.1"])
def test_odd_ipv4_spellings_resolve_to_the_address_the_policy_then_judges(spelling: str) -> None:
    answers = SystemResolver().resolve(spelling, 80, 5.0)
    assert answers == [IPv4Address("127.0.0.1")]
    assert not DestinationPolicy().check_addresses(answers, 80).allowed


def test_answers_are_deduplicated_preserving_order(
    fake_getaddrinfo: Callable[..., list[tuple[str, int]]],
) -> None:
    fake_getaddrinfo(
        lambda host, port: [
            info6("2606:4700::1111"),
            info4("93.184.216.34"),
            info6("2606:4700::1111"),
            info4("93.184.216.34"),
            info4("8.8.8.8"),
        ]
    )
    assert SystemResolver().resolve("example.test", 443, 1.0) == [
        IPv6Address("2606:4700::1111"),
        IPv4Address("93.184.216.34"),
        IPv4Address("8.8.8.8"),
    ]


def test_gaierror_becomes_resolve_error(
    fake_getaddrinfo: Callable[..., list[tuple[str, int]]],
) -> None:
    def fail(host: str, port: int) -> list[Info]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    fake_getaddrinfo(fail)
    with pytest.raises(ResolveError, match=r"'nosuch\.test'.*Name or service not known") as exc:
        SystemResolver().resolve("nosuch.test", 80, 1.0)
    assert isinstance(exc.value, ResolverError)
    assert isinstance(exc.value.__cause__, socket.gaierror)


def test_an_answer_without_addresses_is_a_resolve_error(
    fake_getaddrinfo: Callable[..., list[tuple[str, int]]],
) -> None:
    fake_getaddrinfo(lambda host, port: [])
    with pytest.raises(ResolveError, match="no IPv4 or IPv6 addresses"):
        SystemResolver().resolve("empty.test", 80, 1.0)


def test_a_name_idna_cannot_encode_is_a_resolve_error() -> None:
    # CPython's idna codec rejects a 64-character label before any query is sent.
    with pytest.raises(ResolveError):
        SystemResolver().resolve("a" * 64 + ".test", 80, 1.0)


@pytest.mark.parametrize("host", ["", "evil.test\x00.example"])
def test_empty_or_nul_host_is_rejected_without_a_lookup(
    host: str, fake_getaddrinfo: Callable[..., list[tuple[str, int]]]
) -> None:
    calls = fake_getaddrinfo(never_called)
    with pytest.raises(ResolveError):
        SystemResolver().resolve(host, 80, 1.0)
    assert calls == []


def test_unexpected_exceptions_in_the_lookup_keep_their_type(
    fake_getaddrinfo: Callable[..., list[tuple[str, int]]],
) -> None:
    def bug(host: str, port: int) -> list[Info]:
        raise RuntimeError("bug in the lookup")

    fake_getaddrinfo(bug)
    with pytest.raises(RuntimeError, match="bug in the lookup"):
        SystemResolver().resolve("bug.test", 80, 1.0)


def test_slow_lookup_raises_resolve_timeout_after_about_the_timeout(
    fake_getaddrinfo: Callable[..., list[tuple[str, int]]], release: threading.Event
) -> None:
    daemon: list[bool] = []

    def stuck(host: str, port: int) -> list[Info]:
        daemon.append(threading.current_thread().daemon)
        release.wait(30)
        return [info4("93.184.216.34")]

    fake_getaddrinfo(stuck)
    timeout = 0.3
    start = time.monotonic()
    with pytest.raises(ResolveTimeout, match=r"took longer than 0\.3s") as exc:
        SystemResolver().resolve("slow.test", 80, timeout)
    elapsed = time.monotonic() - start
    assert timeout * 0.9 <= elapsed < timeout + 2
    assert isinstance(exc.value, ResolverError)
    assert daemon == [True], "a lookup stuck in getaddrinfo must not block process exit"


def test_non_positive_timeout_raises_resolve_timeout_without_a_lookup(
    fake_getaddrinfo: Callable[..., list[tuple[str, int]]],
) -> None:
    calls = fake_getaddrinfo(never_called)
    with pytest.raises(ResolveTimeout):
        SystemResolver().resolve("example.test", 80, 0)
    assert calls == []


def test_lookups_in_flight_are_bounded_and_slots_return_when_lookups_finish(
    fake_getaddrinfo: Callable[..., list[tuple[str, int]]], release: threading.Event
) -> None:
    def answer(host: str, port: int) -> list[Info]:
        if host == "stuck.test":
            release.wait(30)
        return [info4("93.184.216.34")]

    calls = fake_getaddrinfo(answer)
    resolver = SystemResolver(max_in_flight=1)
    with pytest.raises(ResolveTimeout):
        resolver.resolve("stuck.test", 80, 0.1)
    # The stuck lookup still holds the only slot, so this caller never gets to getaddrinfo.
    with pytest.raises(ResolveTimeout, match="no lookup slot"):
        resolver.resolve("other.test", 80, 0.2)
    assert [host for host, _ in calls] == ["stuck.test"]
    release.set()
    # The slot comes back when the stuck lookup finishes; this caller waits for it.
    assert resolver.resolve("other.test", 80, 5.0) == [IPv4Address("93.184.216.34")]


def test_max_in_flight_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_in_flight"):
        SystemResolver(max_in_flight=0)


# -- StaticResolver and the injectable contract -------------------------------------------------


def test_static_resolver_returns_configured_answers_in_order() -> None:
    resolver = StaticResolver({"mixed.test": ["93.184.216.34", "127.0.0.1", "93.184.216.34"]})
    assert resolver.resolve("mixed.test", 80, 1.0) == [
        IPv4Address("93.184.216.34"),
        IPv4Address("127.0.0.1"),
    ]
    assert resolver.calls == ["mixed.test"]


def test_static_resolver_matches_names_case_insensitively_ignoring_a_trailing_dot() -> None:
    resolver = StaticResolver({"Example.TEST": ["2606:4700::1111"]})
    assert resolver.resolve("example.test.", 80, 1.0) == [IPv6Address("2606:4700::1111")]


def test_static_resolver_falls_back_to_literals_and_rejects_unknown_names() -> None:
    resolver = StaticResolver({})
    assert resolver.resolve("::1", 80, 1.0) == [IPv6Address("::1")]
    with pytest.raises(ResolveError, match=r"unknown\.test"):
        resolver.resolve("unknown.test", 80, 1.0)


def test_static_resolver_can_return_an_empty_answer_which_the_policy_denies() -> None:
    answers = StaticResolver({"empty.test": []}).resolve("empty.test", 80, 1.0)
    assert answers == []
    assert not DestinationPolicy().check_addresses(answers, 80).allowed


def test_static_resolver_rejects_a_bad_address_at_construction() -> None:
    with pytest.raises(ValueError, match="not-an-ip"):
        StaticResolver({"bad.test": ["not-an-ip"]})


@pytest.mark.parametrize("resolver", [StaticResolver({}), SystemResolver()], ids=type)
def test_both_resolvers_satisfy_the_resolver_protocol(resolver: Resolver) -> None:
    assert resolver.resolve("127.0.0.1", 80, 1.0) == [IPv4Address("127.0.0.1")]


def test_a_name_mixing_loopback_and_public_answers_is_denied_by_the_policy() -> None:
    resolver: Resolver = StaticResolver({"rebind.test": ["93.184.216.34", "127.0.0.1"]})
    answers = resolver.resolve("rebind.test", 443, 1.0)
    assert DestinationPolicy().check_addresses(answers, 443) == Verdict(
        False, "loopback (127.0.0.0/8)"
    )
