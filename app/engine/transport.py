"""The HTTP layer: the one module the engine fetches through.

Client layout, from measurements on a 2-core machine (httpx 0.28 / httpcore 1.0): one shared
``httpx.Client`` serialises hundreds of threads on httpcore's pool, which rescans every pooled
connection per request. So lanes (httpx's transport over connections they own) are leased, one
check at a time, from a pool keyed by host: a lane is never shared, and its keep-alive
connection to a host is reused by the next check of that host. Because the dispatcher runs at
most K checks of a host at once, at most K lanes (and so K connections) exist per host. Building
a context loads the CA bundle (~37 ms of CPU), so all lanes share two ``SSLContext`` objects
built once. Connections are made by the network backend (see network.py).
"""

from __future__ import annotations

import ssl
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import certifi
import h11
import httpcore
import httpx

from app.engine.network import CheckBackend
from app.engine.policy import DestinationPolicy
from app.engine.resolver import Resolver


# HTTP allows any number of interim (1xx) answers before the final one, and httpcore skips
# them in a loop, so a target sending `100 Continue` without end would keep a worker parsing
# until the check's deadline. Real servers send one or two (100 Continue, 103 Early Hints);
# more than this many is an invalid answer.
MAX_INTERIM_ANSWERS = 5


class _BoundedHTTP11(httpcore.HTTP11Connection):
    """httpcore's HTTP/1.1 connection, refusing an answer with too many interim answers.
    Counted where httpcore receives each parsed event: the one place that sees them all."""

    _interim = 0

    def handle_request(self, request: httpcore.Request) -> httpcore.Response:
        self._interim = 0
        return super().handle_request(request)

    def _receive_event(self, timeout: float | None = None) -> h11.Event | type[h11.PAUSED]:
        event = super()._receive_event(timeout)
        # 101 Switching Protocols is final for httpcore; no check asks for an upgrade.
        if isinstance(event, h11.InformationalResponse) and event.status_code != 101:
            self._interim += 1
            if self._interim > MAX_INTERIM_ANSWERS:
                # Becomes httpx.RemoteProtocolError, classified as invalid_response.
                raise httpcore.RemoteProtocolError(
                    f"more than {MAX_INTERIM_ANSWERS} interim (1xx) answers before the final one"
                )
        return event


class _Connection(httpcore.HTTPConnection):
    """httpcore's connection (connect through the backend, TLS) speaking HTTP/1.1 through
    :class:`_BoundedHTTP11`. HTTP/2 is never negotiated: ALPN offers http/1.1 only."""

    def handle_request(self, request: httpcore.Request) -> httpcore.Response:
        # Unlocked: a lane, and so its connections, serve one check at a time.
        if self._connection is None:
            try:
                stream = self._connect(request)
            except BaseException:
                self._connect_failed = True
                raise
            self._connection = _BoundedHTTP11(
                origin=self._origin, stream=stream, keepalive_expiry=self._keepalive_expiry
            )
        return super().handle_request(request)


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
        self._connections: dict[tuple[bytes, bytes, int], _Connection] = {}
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
            connection = _Connection(
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
        keepalive_expiry_s: float = 5.0,
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
        self._keepalive_expiry = keepalive_expiry_s
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
