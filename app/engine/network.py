"""The network backend: how every connection of a check is made and read.

:class:`CheckBackend` is an httpcore network backend, so it is where per-check policy lives at
connection time: one DNS lookup per connection (bounded by the deadline), the destination policy
against every resolved address (fail closed), the connection made to the IP literal (TLS SNI,
certificate checks and the Host header stay on the name), the phase timers, and each socket read
and write clipped to the current check's deadline, so a server trickling bytes cannot hold a
worker past it. Open sockets are registered so shutdown can abort reads in flight.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import struct
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpcore

from app.engine.failures import CheckFailure
from app.engine.policy import DestinationPolicy
from app.engine.resolver import Resolver, ResolverError, ResolveTimeout
from app.schemas.results import ErrorKind

_local = threading.local()


@dataclass(slots=True)
class Phases:
    """What the connection layer saw of one request: setup durations (seconds), and when
    the request was sent and its first and last answer bytes arrived (monotonic seconds).

    Arrival times come from the kernel's receive timestamps where it gives them (plain
    TCP on Linux), not from when a worker thread got round to reading: with hundreds of
    threads sharing the GIL, a reader can wait many milliseconds for its turn, and a
    checker that counted that wait would report latencies the target never had.
    """

    dns: float = 0.0
    connect: float = 0.0
    tls: float = 0.0
    sent: float | None = None
    first_byte: float | None = None
    last_byte: float | None = None

    def arrived(self, at: float) -> None:
        if self.first_byte is None:
            self.first_byte = at
        self.last_byte = at


@contextmanager
def check_scope(deadline: float, phases: Phases) -> Iterator[None]:
    """Bound every socket operation of this thread by `deadline` (monotonic), and have the
    backend record connection phases into `phases`, for the duration of the block."""
    previous = getattr(_local, "deadline", None), getattr(_local, "phases", None)
    _local.deadline, _local.phases = deadline, phases
    try:
        yield
    finally:
        _local.deadline, _local.phases = previous


def _phases() -> Phases:
    phases: Phases | None = getattr(_local, "phases", None)
    return phases if phases is not None else Phases()


def _remaining(exc_type: type[Exception], timeout: float | None = None) -> float | None:
    at: float | None = getattr(_local, "deadline", None)
    if at is None:
        return timeout
    remaining = at - time.monotonic()
    if remaining <= 0:
        raise exc_type("the check's deadline passed")
    return remaining if timeout is None else min(timeout, remaining)


class _Sockets:
    """Open sockets, so shutdown can abort blocking reads from another thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._aborted = False

    def add(self, sock: socket.socket) -> None:
        with self._lock:
            aborted = self._aborted
            if not aborted:
                self._open.add(sock)
        if aborted:
            _shutdown(sock)

    def discard(self, sock: socket.socket) -> None:
        with self._lock:
            self._open.discard(sock)

    def abort_all(self) -> int:
        with self._lock:
            self._aborted = True
            victims = list(self._open)
        for sock in victims:
            _shutdown(sock)
        return len(victims)


# Linux's SO_TIMESTAMPNS (not exported by Python's socket module): each recvmsg() carries
# the arrival time of the data it returns, as a struct timespec of CLOCK_REALTIME.
_SO_TIMESTAMPNS = 35
_STAMP_SPACE = socket.CMSG_SPACE(16)


def _enable_timestamps(sock: socket.socket) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
    except OSError:
        return False
    return True


def _arrival(ancillary: list[tuple[int, int, bytes]]) -> float:
    """The data's arrival as a monotonic time (now, if the kernel gave no timestamp)."""
    now = time.monotonic()
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS and len(data) >= 16:
            seconds, nanoseconds = struct.unpack("qq", data[:16])
            # Realtime to monotonic; a clock step between the two reads is not worth guarding.
            at: float = seconds + nanoseconds / 1e9 - (time.time() - time.monotonic())
            return min(at, now)
    return now


def _shutdown(sock: socket.socket) -> None:
    # shutdown(), unlike close(), wakes a thread blocked in recv() on the same socket.
    with contextlib.suppress(OSError):  # already closed
        sock.shutdown(socket.SHUT_RDWR)


class CheckStream(httpcore.NetworkStream):
    """A connection whose every operation respects the current check's deadline."""

    def __init__(
        self,
        inner: httpcore.NetworkStream,
        sock: socket.socket,
        sockets: _Sockets,
        peer: tuple[str, int],
        stamped: bool = False,
    ) -> None:
        self._inner = inner
        self._sock = sock
        self._sockets = sockets
        self._peer = peer  # known at connect: no getpeername() per check
        # Plain TCP reads go through recvmsg() for their kernel timestamp; TLS reads must go
        # through the SSL object, so they are timed when the worker gets to them.
        self._stamped = stamped

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        limit = _remaining(httpcore.ReadTimeout, timeout)
        if not self._stamped:
            data = self._inner.read(max_bytes, limit)
            if data:
                _phases().arrived(time.monotonic())
            return data
        try:
            self._sock.settimeout(limit)
            data, ancillary, _, _ = self._sock.recvmsg(max_bytes, _STAMP_SPACE)
        except TimeoutError as exc:
            raise httpcore.ReadTimeout(exc) from exc
        except OSError as exc:
            raise httpcore.ReadError(exc) from exc
        if data:
            _phases().arrived(_arrival(ancillary))
        return data

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        limit = _remaining(httpcore.WriteTimeout, timeout)
        phases = _phases()
        if phases.sent is None:
            phases.sent = time.monotonic()
            if self._stamped and buffer:
                # A send on a socket with a timeout polls first, releasing the GIL, and may
                # wait for it again before the data leaves: the request would go out later
                # than `sent` says. A non-blocking send goes out now; any rest is sent below.
                buffer = buffer[self._send_now(buffer) :]
        if buffer:
            self._inner.write(buffer, limit)

    def _send_now(self, buffer: bytes) -> int:
        try:
            self._sock.settimeout(0.0)
            return self._sock.send(buffer)
        except BlockingIOError:
            return 0
        except OSError as exc:
            raise httpcore.WriteError(exc) from exc

    def close(self) -> None:
        self._sockets.discard(self._sock)
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        started = time.monotonic()
        try:
            limit = _remaining(httpcore.ConnectTimeout, timeout)
            inner = self._inner.start_tls(ssl_context, server_hostname, limit)
        finally:
            _phases().tls += time.monotonic() - started
        return CheckStream(inner, self._sock, self._sockets, self._peer)

    def get_extra_info(self, info: str) -> Any:
        if info == "server_addr":
            return self._peer
        return self._inner.get_extra_info(info)


class CheckBackend(httpcore.NetworkBackend):
    """Resolves once per connection, applies the destination policy, connects to the IP."""

    def __init__(self, policy: DestinationPolicy, resolver: Resolver) -> None:
        self._sync = httpcore.SyncBackend()
        self._policy = policy
        self._resolver = resolver
        self.sockets = _Sockets()

    @property
    def policy(self) -> DestinationPolicy:
        """The policy every connection is judged by (alert senders outside HTTP use it too)."""
        return self._policy

    @property
    def resolver(self) -> Resolver:
        return self._resolver

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        phases = _phases()
        verdict = self._policy.check_port(port)
        if not verdict.allowed:
            raise CheckFailure(ErrorKind.BLOCKED, f"port {port} denied: {verdict.rule}")
        started = time.monotonic()
        try:
            budget = _remaining(httpcore.ConnectTimeout, timeout)
            addresses = self._resolver.resolve(host, port, 3600.0 if budget is None else budget)
        except ResolveTimeout as exc:
            raise CheckFailure(ErrorKind.TIMEOUT, f"timed out resolving {host}") from exc
        except ResolverError as exc:
            raise CheckFailure(ErrorKind.DNS, f"cannot resolve {host}: {exc}") from exc
        finally:
            phases.dns += time.monotonic() - started
        verdict = self._policy.check_addresses(addresses, port)
        if not verdict.allowed:
            raise CheckFailure(ErrorKind.BLOCKED, f"{host} is denied: {verdict.explain()}")
        started = time.monotonic()
        try:
            inner, address = self._connect_first(
                addresses, port, timeout, local_address, socket_options
            )
        finally:
            phases.connect += time.monotonic() - started
        sock: socket.socket = inner.get_extra_info("socket")
        self.sockets.add(sock)
        stamped = _enable_timestamps(sock)
        return CheckStream(inner, sock, self.sockets, (str(address), port), stamped)

    def _connect_first(
        self,
        addresses: list[Any],
        port: int,
        timeout: float | None,
        local_address: str | None,
        socket_options: Iterable[Any] | None,
    ) -> tuple[httpcore.NetworkStream, Any]:
        # Every answer passed the policy; try them in order, each within the deadline.
        error: Exception | None = None
        for address in addresses:
            limit = _remaining(httpcore.ConnectTimeout, timeout)
            try:
                stream = self._sync.connect_tcp(
                    str(address), port, limit, local_address, socket_options
                )
            except httpcore.ConnectError as exc:
                error = exc
            else:
                return stream, address
        assert error is not None  # check_addresses denies an empty answer
        raise error

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        raise CheckFailure(ErrorKind.BLOCKED, "unix sockets are not a check destination")

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)  # httpcore's connect retries, which are off (retries=0)
