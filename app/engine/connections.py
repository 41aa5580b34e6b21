"""The connections a lane owns: httpcore's, one per origin, kept alive for the next check of
the host, closed when they expire, and refusing answers with endless interim (1xx) answers.

The two subclasses below use httpcore 1.0's internals (``_connect``, ``_connection``,
``_receive_event``): pyproject.toml pins httpcore to <1.1 for this."""

from __future__ import annotations

import ssl
import time

import h11
import httpcore

from app.engine.network import CheckBackend

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


class OwnedConnections(httpcore.ConnectionInterface):
    """Stands in for httpcore's ConnectionPool inside a lane.

    A lane is used by one check at a time, so this needs none of the pool's locks, events
    and queue scans (a third of a check's CPU in profiles): one httpcore connection per
    origin, kept alive for the next check of the host. A connection idle longer than the
    keep-alive expiry is replaced (and closed while its lane is idle: see
    ``HttpLayer``'s reaper); one the server closed sooner is not probed with poll()
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

    def earliest_expiry(self) -> float | None:
        """When the first of these connections expires (monotonic); None if there are none."""
        if not self._last_used:
            return None
        return min(self._last_used.values()) + self._keepalive_expiry

    def close_expired(self, now: float) -> bool:
        """Close the connections expired at `now`, as reuse would; whether any are left."""
        for key, used in list(self._last_used.items()):
            if now - used >= self._keepalive_expiry:
                del self._last_used[key]
                self._connections.pop(key).close()
        return bool(self._connections)

    def close(self) -> None:
        connections, self._connections = list(self._connections.values()), {}
        self._last_used = {}
        for connection in connections:
            connection.close()
