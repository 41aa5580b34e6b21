"""The HTTP layer: the one module the engine fetches through.

Client layout, from measurements on a 2-core machine (httpx 0.28 / httpcore 1.0): one shared
``httpx.Client`` serialises hundreds of threads on httpcore's pool, which rescans every pooled
connection per request. So clients are leased, one check at a time, from a pool keyed by host:
a leased client is never shared, its connection pool stays tiny, and keep-alive connections to
a host are reused by the next check of that host. Because the dispatcher runs at most K checks
of a host at once, at most K leased clients (and so K connections) exist per host. Building a
client loads the CA bundle (~37 ms of CPU) unless given a context, so all clients share two
``SSLContext`` objects built once.

Every connection is made by :class:`CheckBackend`, an httpcore network backend, which is where
per-check policy lives at connection time: one DNS lookup per connection, the destination
policy against every resolved address (fail closed), the connection made to the IP literal
(TLS SNI, certificate checks and the Host header stay on the name), the phase timers, and each
socket read and write clipped to the current check's deadline, so a server trickling bytes
cannot hold a worker past it. Open sockets are registered so shutdown can abort reads in flight.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import struct
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import certifi
import httpcore
import httpx

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
            raise CheckFailure(ErrorKind.BLOCKED, f"{host} is denied: {verdict.rule}")
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


class _OwnedConnections(httpcore.ConnectionInterface):
    """Stands in for httpcore's ConnectionPool inside a lane.

    A lane is used by one check at a time, so this needs none of the pool's locks, events
    and queue scans (a third of a check's CPU in profiles): one httpcore connection per
    origin, kept alive for the next check of the host. A connection idle longer than the
    keep-alive expiry is replaced; one the server closed sooner is not probed with poll()
    before each request (one syscall, and one GIL hand-off, per check with hundreds of
    threads): the request fails at once instead and is sent again on a fresh connection
    (see checker._send). A check's redirects may add origins; the oldest beyond a few is
    closed.
    """

    MAX_ORIGINS = 4

    def __init__(
        self, ssl_context: ssl.SSLContext, backend: CheckBackend, keepalive_expiry: float
    ) -> None:
        self._ssl_context = ssl_context
        self._backend = backend
        self._keepalive_expiry = keepalive_expiry
        self._connections: dict[tuple[bytes, bytes, int], httpcore.HTTPConnection] = {}
        self._last_used: dict[tuple[bytes, bytes, int], float] = {}

    def handle_request(self, request: httpcore.Request) -> httpcore.Response:
        origin = request.url.origin
        key = (origin.scheme, origin.host, origin.port)  # Origin itself is not hashable
        now = time.monotonic()
        connection = self._connections.pop(key, None)
        if connection is not None and not (
            connection.is_available() and now - self._last_used[key] < self._keepalive_expiry
        ):
            connection.close()
            connection = None
        if connection is None:
            connection = httpcore.HTTPConnection(
                origin=origin,
                ssl_context=self._ssl_context,
                keepalive_expiry=self._keepalive_expiry,
                network_backend=self._backend,
            )
        self._connections[key] = connection  # most recent last
        self._last_used[key] = now
        if len(self._connections) > self.MAX_ORIGINS:
            oldest = next(iter(self._connections))
            self._connections.pop(oldest).close()
            del self._last_used[oldest]
        return connection.handle_request(request)

    def close(self) -> None:
        connections, self._connections = list(self._connections.values()), {}
        self._last_used = {}
        for connection in connections:
            connection.close()


class Lane(httpx.HTTPTransport):
    """A leased path to one host: httpx's transport (its request conversion and exception
    mapping) over connections this lane owns. Checks send through it directly, without
    ``httpx.Client``, whose redirect, auth and cookie layers the checker does not use (it
    follows redirects itself and keeps no cookies). httpx 0.28 takes no network backend, so
    its pool is replaced (httpx is pinned to <0.29 for this)."""

    def __init__(
        self, ssl_context: ssl.SSLContext, backend: CheckBackend, keepalive_expiry: float
    ) -> None:
        super().__init__(verify=ssl_context, trust_env=False)
        self._pool = _OwnedConnections(ssl_context, backend, keepalive_expiry)  # type: ignore[assignment]
        self.closed = False

    def send(self, request: httpx.Request) -> httpx.Response:
        """The response with its body unread (read it with ``iter_raw``, then close it)."""
        response = self.handle_request(request)
        response.request = request
        return response

    def close(self) -> None:
        self.closed = True
        super().close()


LeaseKey = tuple[str, bool]


class HttpLayer:
    """Leases lanes, one check at a time, keyed by (host, verify_tls)."""

    def __init__(
        self,
        user_agent: str,
        policy: DestinationPolicy,
        resolver: Resolver,
        ca_bundle: Path | None = None,
        max_idle_clients: int = 256,
    ) -> None:
        self._contexts = {True: _verifying_context(ca_bundle), False: _non_verifying_context()}
        self.backend = CheckBackend(policy, resolver)
        # Identity encoding: bodies are read raw up to a cap, so a server that obeys sends
        # nothing a body assertion would first have to inflate.
        self.default_headers: dict[str, str] = {
            "Accept": "*/*",
            "Accept-Encoding": "identity",
            "Connection": "keep-alive",
            "User-Agent": user_agent,
        }
        # Shorter than common server keep-alive timeouts (nginx 75 s); a connection the
        # server closed anyway is detected, or retried once (see checker).
        self._keepalive_expiry = 5.0
        self._max_idle = max_idle_clients
        self._lock = threading.Lock()
        self._idle: OrderedDict[LeaseKey, list[Lane]] = OrderedDict()
        self._idle_count = 0
        self._closed = False

    @contextmanager
    def lease(self, host: str, verify_tls: bool) -> Iterator[Lane]:
        """A lane for one check of `host`; nobody else uses it until the block ends."""
        key = (host, verify_tls)
        with self._lock:
            lanes = self._idle.get(key)
            lane = lanes.pop() if lanes else None
            if lane is not None:
                self._idle_count -= 1
                if not lanes:
                    del self._idle[key]
        if lane is None:
            lane = Lane(self._contexts[verify_tls], self.backend, self._keepalive_expiry)
        try:
            yield lane
        finally:
            self._give_back(key, lane)

    def _give_back(self, key: LeaseKey, lane: Lane) -> None:
        evicted: list[Lane] = []
        with self._lock:
            if self._closed:
                evicted.append(lane)
            else:
                self._idle.setdefault(key, []).append(lane)
                self._idle.move_to_end(key)
                self._idle_count += 1
                while self._idle_count > self._max_idle:
                    oldest_key, oldest = next(iter(self._idle.items()))
                    evicted.append(oldest.pop(0))
                    self._idle_count -= 1
                    if not oldest:
                        del self._idle[oldest_key]
        for stale in evicted:  # closing sockets is I/O: never under the lock
            stale.close()

    def idle_clients(self) -> int:
        with self._lock:
            return self._idle_count

    def abort_in_flight(self) -> int:
        """Break the connections of checks still running; returns how many were open."""
        return self.backend.sockets.abort_all()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            lanes = [lane for group in self._idle.values() for lane in group]
            self._idle.clear()
            self._idle_count = 0
        for lane in lanes:
            lane.close()


def _verifying_context(extra_ca: Path | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=certifi.where())
    if extra_ca is not None:  # a private CA, trusted besides the public ones
        context.load_verify_locations(cafile=str(extra_ca))
    return context


def _non_verifying_context() -> ssl.SSLContext:
    # Verification off still completes the handshake, so the certificate can be reported.
    context = ssl.create_default_context(cafile=certifi.where())
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context
