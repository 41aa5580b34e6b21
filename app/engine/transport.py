"""The HTTP layer: the one module the engine fetches through.

Layout, from measurements on a 2-core machine (httpx 0.28 / httpcore 1.0): one shared
``httpx.Client`` serialises hundreds of threads on httpcore's pool, which rescans every pooled
connection per request, so each worker thread gets its own client. Building a client loads the
CA bundle (~37 ms of CPU), so all clients share two ``SSLContext`` objects built once.

Every connection is made by :class:`CheckBackend`, an httpcore network backend. It is where
per-check policy lives at connection time: each socket read and write is clipped to the
current check's deadline (so a server trickling bytes cannot hold a worker past it), and open
sockets are registered so that shutdown can abort reads still in flight.
"""

from __future__ import annotations

import contextlib
import http.cookiejar
import socket
import ssl
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import certifi
import httpcore
import httpx

_local = threading.local()


@contextmanager
def deadline(at: float) -> Iterator[None]:
    """Run the block with every socket operation of this thread bounded by `at` (monotonic)."""
    previous = getattr(_local, "deadline", None)
    _local.deadline = at
    try:
        yield
    finally:
        _local.deadline = previous


def _clip(timeout: float | None, exc_type: type[Exception]) -> float | None:
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
    with contextlib.suppress(OSError):  # already closed or never connected
        sock.shutdown(socket.SHUT_RDWR)


class CheckStream(httpcore.NetworkStream):
    """A connection whose every operation respects the current check's deadline."""

    def __init__(self, inner: httpcore.NetworkStream, sock: socket.socket, sockets: _Sockets):
        self._inner = inner
        self._sock = sock
        self._sockets = sockets

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _clip(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _clip(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._sockets.discard(self._sock)
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        clipped = _clip(timeout, httpcore.ConnectTimeout)
        inner = self._inner.start_tls(ssl_context, server_hostname, clipped)
        return CheckStream(inner, self._sock, self._sockets)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class CheckBackend(httpcore.NetworkBackend):
    def __init__(self) -> None:
        self._sync = httpcore.SyncBackend()
        self.sockets = _Sockets()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        clipped = _clip(timeout, httpcore.ConnectTimeout)
        inner = self._sync.connect_tcp(host, port, clipped, local_address, socket_options)
        sock: socket.socket = inner.get_extra_info("socket")
        self.sockets.add(sock)
        return CheckStream(inner, sock, self.sockets)

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        raise httpcore.ConnectError("unix sockets are not a check destination")

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


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


class HttpLayer:
    """Per-thread httpx clients over shared TLS contexts and one network backend."""

    def __init__(self, user_agent: str) -> None:
        self._user_agent = user_agent
        self._contexts = {True: _verifying_context(), False: _non_verifying_context()}
        self.backend = CheckBackend()
        # Each thread does one check at a time: a handful of keep-alive connections suffices.
        self._limits = httpx.Limits(
            max_connections=None, max_keepalive_connections=16, keepalive_expiry=5.0
        )
        self._lock = threading.Lock()
        self._clients: list[httpx.Client] = []
        self._closed = False
        self._local = threading.local()

    def client(self, verify_tls: bool) -> httpx.Client:
        clients: dict[bool, httpx.Client] | None = getattr(self._local, "clients", None)
        if clients is None:
            clients = self._local.clients = {}
        client = clients.get(verify_tls)
        if client is None:
            client = clients[verify_tls] = self._new_client(verify_tls)
        return client

    def _new_client(self, verify_tls: bool) -> httpx.Client:
        context = self._contexts[verify_tls]
        client = httpx.Client(
            transport=_CheckTransport(context, self.backend, self._limits),
            headers={"User-Agent": self._user_agent},
            cookies=http.cookiejar.CookieJar(policy=_RefuseCookies()),
            follow_redirects=False,
            trust_env=False,
            timeout=httpx.Timeout(None),  # the per-check deadline bounds every operation
        )
        with self._lock:
            closed = self._closed
            if not closed:
                self._clients.append(client)
        if closed:
            client.close()
            raise httpx.ConnectError("the HTTP layer is closed")
        return client

    def abort_in_flight(self) -> int:
        """Break the connections of checks still running; returns how many were open."""
        return self.backend.sockets.abort_all()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            clients, self._clients = self._clients, []
        for client in clients:
            client.close()


def _verifying_context() -> ssl.SSLContext:
    return ssl.create_default_context(cafile=certifi.where())


def _non_verifying_context() -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=certifi.where())
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context
