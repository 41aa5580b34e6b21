"""Helpers for the destination-policy tests: a connect guard that keeps every connection on
loopback, canary listeners that count what reached them, a resolver that never asks real DNS,
and a redirector.

The guard is the safety net of these tests: they point the engine at private, metadata and
public addresses to prove it refuses them. If the policy had a bug, the engine would really
connect to 10.0.0.1 or 93.184.216.34. With the guard installed, such a connect is refused on
this machine (and recorded), so a bug fails the test instead of sending traffic.
"""

from __future__ import annotations

import re
import socket
import threading
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import IPv6Address, ip_address
from typing import Any

import httpcore

from app.engine.resolver import IPAddress, ResolveError, StaticResolver, SystemResolver
from app.engine.transport import HttpLayer
from tests.support.servers import RawServer

__all__ = [
    "Canaries",
    "Canary",
    "ConnectGuard",
    "LocalResolver",
    "OffMachineConnect",
    "guard",
    "ipv6_loopback",
    "redirect_url",
    "redirector",
]


class OffMachineConnect(Exception):
    """The engine tried to connect somewhere other than loopback; the guard refused."""


def _stays_on_machine(ip: IPAddress) -> bool:
    # Loopback, or unspecified (0.0.0.0, ::), which the kernel turns into loopback.
    if isinstance(ip, IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback or ip.is_unspecified


class ConnectGuard(httpcore.SyncBackend):
    """httpcore's socket backend, refusing (and recording) any address off this machine.

    Installed as the HttpLayer backend's `_sync`, it sees every TCP connect the engine makes,
    after the destination policy has approved it: a test can assert that nothing was attempted
    at all (`connects == []`), and a policy bug can never put a packet on the wire.
    """

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self.connects: list[tuple[str, int]] = []
        self.refused: list[tuple[str, int]] = []

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        try:
            ip: IPAddress | None = ip_address(host)
        except ValueError:  # the backend always connects to an IP literal; a name is a bug
            ip = None
        with self._lock:
            self.connects.append((host, port))
            if ip is None or not _stays_on_machine(ip):
                self.refused.append((host, port))
                raise OffMachineConnect(f"test guard: refused to connect to {host} port {port}")
        return super().connect_tcp(host, port, timeout, local_address, socket_options)


def guard(http: HttpLayer) -> ConnectGuard:
    """Install a ConnectGuard under `http`'s backend (before any check runs) and return it."""
    installed = ConnectGuard()
    http.backend._sync = installed
    return installed


# Spellings getaddrinfo parses without a query: dotted/partial decimal, octal, hex.
_NUMERIC = re.compile(r"(0x[0-9a-f]+|[0-9]+)(\.(0x[0-9a-f]+|[0-9]+)){0,3}")


class LocalResolver:
    """A fixed table first (as StaticResolver); otherwise only "localhost" and numeric IPv4
    spellings ("2130706433", "0x7f.1", "127.1") go to getaddrinfo, which answers those from
    /etc/hosts or by parsing. Any other name fails: no lookup ever leaves the machine."""

    def __init__(self, mapping: dict[str, list[str]] | None = None) -> None:
        self._table = {
            name.lower().removesuffix("."): addrs for name, addrs in (mapping or {}).items()
        }
        self._static = StaticResolver(self._table)
        self._system = SystemResolver()
        self.calls: list[str] = []

    def resolve(self, host: str, port: int, timeout: float) -> list[IPAddress]:
        self.calls.append(host)
        if host.lower().removesuffix(".") in self._table or _literal(host):
            return self._static.resolve(host, port, timeout)
        # Exact spellings only: "localhost." could make getaddrinfo ask a DNS server.
        if host.lower() == "localhost" or _NUMERIC.fullmatch(host.lower()):
            return self._system.resolve(host, port, timeout)
        raise ResolveError(f"cannot resolve {host!r}: not in this test's table")


def _literal(host: str) -> bool:
    try:
        ip_address(host)
    except ValueError:
        return False
    return True


# --- canaries -------------------------------------------------------------------------------

_OK = b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\nConnection: close\r\n\r\ncanary"


def _answer_ok(conn: socket.socket) -> None:
    conn.recv(65536)
    conn.sendall(_OK)
    conn.close()


def ipv6_loopback() -> bool:
    """Whether this machine can listen on ::1."""
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


class Canary:
    """A loopback listener that answers 200 and counts connections; `hits()` counts those
    since the last `reset()`, so one listener can serve many tests."""

    def __init__(self, host: str) -> None:
        self.host = host
        self._server = RawServer(_answer_ok, host=host)
        self.port = self._server.port
        self._baseline = 0

    def reset(self) -> None:
        self._baseline = self._server.connections

    def hits(self) -> int:
        return self._server.connections - self._baseline

    def stop(self) -> None:
        self._server.stop()


@dataclass
class Canaries:
    """Canaries on 127.0.0.1, 127.0.0.2 and (when the machine has it) ::1."""

    v4: Canary
    v4b: Canary
    v6: Canary | None

    @classmethod
    def start(cls) -> Canaries:
        return cls(
            Canary("127.0.0.1"), Canary("127.0.0.2"), Canary("::1") if ipv6_loopback() else None
        )

    def all(self) -> list[Canary]:
        return [c for c in (self.v4, self.v4b, self.v6) if c is not None]

    def reset(self) -> None:
        for canary in self.all():
            canary.reset()

    def hits(self) -> dict[str, int]:
        """Connections per canary since the last reset; {} when nothing reached any."""
        return {f"{c.host}:{c.port}": c.hits() for c in self.all() if c.hits()}

    def ports(self) -> dict[str, int]:
        """Template fields for URLs: {v4}, {v4b} and {v6} (0 without IPv6 loopback)."""
        return {
            "v4": self.v4.port,
            "v4b": self.v4b.port,
            "v6": self.v6.port if self.v6 is not None else 0,
        }

    def stop(self) -> None:
        for canary in self.all():
            canary.stop()


# --- a redirector ---------------------------------------------------------------------------


def _redirect(conn: socket.socket) -> None:
    # "GET /to?u=<quoted URL> HTTP/1.1" -> 302 to that URL, whatever it is.
    request_line = conn.recv(65536).split(b"\r\n", 1)[0].decode("latin-1")
    path = request_line.split(" ")[1]
    location = urllib.parse.unquote(path.partition("?u=")[2])
    conn.sendall(
        f"HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\n"
        "Connection: close\r\n\r\n".encode("latin-1")
    )
    conn.close()


def redirector(host: str = "127.0.0.1") -> RawServer:
    """A server answering `/to?u=<URL>` with a 302 to <URL>."""
    return RawServer(_redirect, host=host)


def redirect_url(server: RawServer, location: str) -> str:
    return f"{server.url}/to?u={urllib.parse.quote(location, safe='')}"
