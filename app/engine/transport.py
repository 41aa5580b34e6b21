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
import http.cookiejar
import socket
import ssl
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
    """Connection-setup time of one request, written by the backend (seconds)."""

    dns: float = 0.0
    connect: float = 0.0
    tls: float = 0.0


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


def _shutdown(sock: socket.socket) -> None:
    # shutdown(), unlike close(), wakes a thread blocked in recv() on the same socket.
    with contextlib.suppress(OSError):  # already closed
        sock.shutdown(socket.SHUT_RDWR)


class CheckStream(httpcore.NetworkStream):
    """A connection whose every operation respects the current check's deadline."""

    def __init__(self, inner: httpcore.NetworkStream, sock: socket.socket, sockets: _Sockets):
        self._inner = inner
        self._sock = sock
        self._sockets = sockets

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _remaining(httpcore.ReadTimeout, timeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _remaining(httpcore.WriteTimeout, timeout))

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
        return CheckStream(inner, self._sock, self._sockets)

    def get_extra_info(self, info: str) -> Any:
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
            inner = self._connect_first(addresses, port, timeout, local_address, socket_options)
        finally:
            phases.connect += time.monotonic() - started
        sock: socket.socket = inner.get_extra_info("socket")
        self.sockets.add(sock)
        return CheckStream(inner, sock, self.sockets)

    def _connect_first(
        self,
        addresses: list[Any],
        port: int,
        timeout: float | None,
        local_address: str | None,
        socket_options: Iterable[Any] | None,
    ) -> httpcore.NetworkStream:
        # Every answer passed the policy; try them in order, each within the deadline.
        error: Exception | None = None
        for address in addresses:
            limit = _remaining(httpcore.ConnectTimeout, timeout)
            try:
                return self._sync.connect_tcp(
                    str(address), port, limit, local_address, socket_options
                )
            except httpcore.ConnectError as exc:
                error = exc
        assert error is not None  # check_addresses denies an empty answer
        raise error

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        raise CheckFailure(ErrorKind.BLOCKED, "unix sockets are not a check destination")

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)  # httpcore's connect retries, which are off (retries=0)


class _CheckTransport(httpx.HTTPTransport):
    """httpx's transport with httpcore's pool rebuilt around our network backend.

    httpx 0.28 offers no network_backend argument; its pool is replaced with one holding the
    same TLS and limit settings (httpx is pinned to <0.29 for this reason).
    """

    def __init__(
        self, ssl_context: ssl.SSLContext, backend: CheckBackend, limits: httpx.Limits
    ) -> None:
        super().__init__(verify=ssl_context, trust_env=False, limits=limits)
        self._pool = httpcore.ConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=backend,
        )


class _RefuseCookies(http.cookiejar.DefaultCookiePolicy):
    # A check must not carry state from another check to a server.
    def set_ok(self, cookie: http.cookiejar.Cookie, request: Any) -> bool:
        return False


LeaseKey = tuple[str, bool]


class HttpLayer:
    """Leases httpx clients, one check at a time, keyed by (host, verify_tls)."""

    def __init__(
        self,
        user_agent: str,
        policy: DestinationPolicy,
        resolver: Resolver,
        ca_bundle: Path | None = None,
        max_idle_clients: int = 256,
    ) -> None:
        self._user_agent = user_agent
        self._contexts = {True: _verifying_context(ca_bundle), False: _non_verifying_context()}
        self.backend = CheckBackend(policy, resolver)
        # A leased client serves one check: a handful of connections (redirect hops) suffices.
        self._limits = httpx.Limits(
            max_connections=None, max_keepalive_connections=4, keepalive_expiry=5.0
        )
        self._max_idle = max_idle_clients
        self._lock = threading.Lock()
        self._idle: OrderedDict[LeaseKey, list[httpx.Client]] = OrderedDict()
        self._idle_count = 0
        self._closed = False

    @contextmanager
    def lease(self, host: str, verify_tls: bool) -> Iterator[httpx.Client]:
        """A client for one check of `host`; nobody else uses it until the block ends."""
        key = (host, verify_tls)
        with self._lock:
            clients = self._idle.get(key)
            client = clients.pop() if clients else None
            if client is not None:
                self._idle_count -= 1
                if not clients:
                    del self._idle[key]
        if client is None:
            client = self._new_client(verify_tls)
        try:
            yield client
        finally:
            self._give_back(key, client)

    def _give_back(self, key: LeaseKey, client: httpx.Client) -> None:
        evicted: list[httpx.Client] = []
        with self._lock:
            if self._closed:
                evicted.append(client)
            else:
                self._idle.setdefault(key, []).append(client)
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

    def _new_client(self, verify_tls: bool) -> httpx.Client:
        return httpx.Client(
            transport=_CheckTransport(self._contexts[verify_tls], self.backend, self._limits),
            headers={"User-Agent": self._user_agent, "Accept-Encoding": "identity"},
            cookies=http.cookiejar.CookieJar(policy=_RefuseCookies()),
            follow_redirects=False,
            trust_env=False,
            timeout=httpx.Timeout(None),  # the per-check deadline bounds every operation
        )

    def idle_clients(self) -> int:
        with self._lock:
            return self._idle_count

    def abort_in_flight(self) -> int:
        """Break the connections of checks still running; returns how many were open."""
        return self.backend.sockets.abort_all()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            clients = [client for group in self._idle.values() for client in group]
            self._idle.clear()
            self._idle_count = 0
        for client in clients:
            client.close()


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
