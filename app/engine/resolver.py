"""Name resolution with a hard deadline, behind a small injectable interface.

The resolver only turns names into addresses; whether an address may be connected to is the
destination policy's job, applied to every answer. Odd IPv4 spellings that getaddrinfo accepts
("2130706433", "0x7f.1", "127.1") are therefore fine: they come back as 127.0.0.1 and the
policy judges that.
"""

from __future__ import annotations

import socket
import threading
import time
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Protocol, TypeAlias

__all__ = [
    "ResolveError",
    "ResolveTimeout",
    "Resolver",
    "ResolverError",
    "StaticResolver",
    "SystemResolver",
]

IPAddress: TypeAlias = IPv4Address | IPv6Address


class ResolverError(Exception):
    """The name could not be turned into addresses."""


class ResolveError(ResolverError):
    """The lookup failed: no such name, no addresses, or a malformed name."""


class ResolveTimeout(ResolverError):
    """The lookup did not finish within the caller's timeout."""


class Resolver(Protocol):
    def resolve(self, host: str, port: int, timeout: float) -> list[IPAddress]:
        """Addresses for ``host`` (a name or bare IP literal), deduplicated, in answer order.

        Raises ResolverError. Callers must still treat an empty list as a failure.
        """
        ...


def _literal(host: str) -> IPAddress | None:
    try:
        return ip_address(host)
    except ValueError:
        return None


class _Lookup:
    __slots__ = ("addresses", "done", "error")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.addresses: list[str] = []
        self.error: Exception | None = None


class SystemResolver:
    """getaddrinfo with a deadline.

    getaddrinfo cannot be interrupted, so each lookup runs in its own daemon thread (a stuck one
    must not hold up process exit, which rules out ThreadPoolExecutor's non-daemon workers) and
    the caller waits at most ``timeout``. A slot is held until the lookup really finishes, not
    until its caller gives up, so a hung DNS server cannot make threads pile up beyond
    ``max_in_flight``; callers past that bound wait for a slot within their own timeout.
    """

    def __init__(self, max_in_flight: int = 32) -> None:
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        self.max_in_flight = max_in_flight
        self._slots = threading.BoundedSemaphore(max_in_flight)

    def resolve(self, host: str, port: int, timeout: float) -> list[IPAddress]:
        literal = _literal(host)
        if literal is not None:
            return [literal]
        if not host or "\x00" in host:
            # getaddrinfo would see "" as "any", and a NUL would silently cut the name short.
            raise ResolveError(f"cannot resolve {host!r}: not a host name")
        deadline = time.monotonic() + timeout
        if timeout <= 0 or not self._slots.acquire(timeout=timeout):
            raise ResolveTimeout(f"resolving {host!r}: no lookup slot free within {timeout:g}s")
        lookup = _Lookup()
        try:
            threading.Thread(
                target=self._run, args=(lookup, host, port), name="urlhealth-dns", daemon=True
            ).start()
        except BaseException:
            self._slots.release()
            raise
        if not lookup.done.wait(max(0.0, deadline - time.monotonic())):
            raise ResolveTimeout(f"resolving {host!r} took longer than {timeout:g}s")
        # gaierror is an OSError; UnicodeError (IDNA: empty or over-long label) and ValueError
        # (embedded NUL) are how malformed names fail before any query is sent.
        if isinstance(lookup.error, OSError | UnicodeError | ValueError):
            raise ResolveError(f"cannot resolve {host!r}: {lookup.error}") from lookup.error
        if lookup.error is not None:
            raise lookup.error  # a bug, not a DNS answer: keep its type
        answers = [ip_address(addr) for addr in lookup.addresses]
        if not answers:
            raise ResolveError(f"cannot resolve {host!r}: no IPv4 or IPv6 addresses")
        return list(dict.fromkeys(answers))

    def _run(self, lookup: _Lookup, host: str, port: int) -> None:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            lookup.addresses = [
                str(sockaddr[0])
                for family, _type, _proto, _canon, sockaddr in infos
                if family in (socket.AF_INET, socket.AF_INET6)
            ]
        except Exception as exc:
            lookup.error = exc
        finally:
            self._slots.release()
            lookup.done.set()


class StaticResolver:
    """Fixed answers for tests: {"host": ["127.0.0.1", "93.184.216.34"]}; literals pass through.

    Names match case-insensitively and ignore a trailing dot, as DNS does. An empty list is
    returned as is, so callers' handling of an empty answer can be exercised.
    """

    def __init__(self, mapping: dict[str, list[str]]) -> None:
        self._answers = {
            _key(host): [ip_address(addr) for addr in addrs] for host, addrs in mapping.items()
        }
        self.calls: list[str] = []

    def resolve(self, host: str, port: int, timeout: float) -> list[IPAddress]:
        self.calls.append(host)
        answers = self._answers.get(_key(host))
        if answers is not None:
            return list(dict.fromkeys(answers))
        literal = _literal(host)
        if literal is not None:
            return [literal]
        raise ResolveError(f"cannot resolve {host!r}: not in the static table")


def _key(host: str) -> str:
    return host.lower().removesuffix(".")
