"""The HTTP layer: the one module the engine fetches through.

Client layout, from measurements on a 2-core machine (httpx 0.28 / httpcore 1.0): one shared
``httpx.Client`` serialises hundreds of threads on httpcore's pool, which rescans every pooled
connection per request. So lanes (httpx's transport over connections they own) are leased, one
check at a time, from a pool keyed by host: a lane is never shared, and its keep-alive
connection to a host is reused by the next check of that host. Because the dispatcher runs at
most K checks of a host at once, at most K lanes (and so K connections) exist per host. Building
a context loads the CA bundle (~37 ms of CPU), so all lanes share two ``SSLContext`` objects
built once. Connections are made by the network backend (see network.py) and owned by lanes
(see connections.py); a reaper thread closes those of idle lanes when they expire.
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
import httpx

from app.engine.connections import OwnedConnections
from app.engine.network import CheckBackend
from app.engine.policy import DestinationPolicy
from app.engine.resolver import Resolver


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
        self._owned = OwnedConnections(ssl_context, backend, keepalive_expiry)
        self._pool = self._owned  # type: ignore[assignment]
        self.closed = False
        # When its first connection expires, noted as it goes idle (read under the layer's lock).
        self.expires_at: float | None = None

    def note_idle(self) -> None:
        """Called by its last user as the lane goes back to the pool."""
        self.expires_at = self._owned.earliest_expiry()

    def close_expired(self, now: float) -> bool:
        """Close its connections expired at `now`; whether any are left."""
        return self._owned.close_expired(now)

    def send(self, request: httpx.Request) -> httpx.Response:
        """The response with its body unread (read it with ``iter_raw``, then close it)."""
        response = self.handle_request(request)
        response.request = request
        return response

    def close(self) -> None:
        self.closed = True
        super().close()


LeaseKey = tuple[str, bool]
# The reaper closes every connection expiring within this of the first due, in one wake, so
# that a steady stream of checks does not wake it once per connection.
REAP_SLACK_S = 0.25


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
        # Idle connections are closed as they expire, not left open until the next check of
        # their host reuses (and then replaces) them: file descriptors are shared with checks.
        self._reap_at: float | None = None  # when the reaper wakes next; None: nothing idle
        self._wake = threading.Event()
        self._reaper = threading.Thread(target=self._reap, name="keepalive-reaper", daemon=True)
        self._reaper.start()

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
        lane.note_idle()
        wake = False
        with self._lock:
            if self._closed:
                evicted.append(lane)
            else:
                if lane.expires_at is not None and (
                    self._reap_at is None or lane.expires_at + REAP_SLACK_S < self._reap_at
                ):
                    self._reap_at = lane.expires_at + REAP_SLACK_S
                    wake = True
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
        if wake:
            self._wake.set()

    def _reap(self) -> None:
        """The reaper thread: takes idle lanes with expired connections out of the pool under
        the lock, closes those connections outside it, puts back lanes with any left, and
        sleeps until the next expiry (or until a lane goes idle with nothing else to wait for).
        """
        while True:
            self._wake.clear()  # before the scan: a lane given back after it wakes us again
            now = time.monotonic()
            with self._lock:
                if self._closed:
                    return
                due = self._take_expired(now)
            for key, lane in due:
                if lane.close_expired(now):
                    self._give_back(key, lane)
                else:
                    lane.close()
            with self._lock:
                first = min(
                    (
                        lane.expires_at
                        for group in self._idle.values()
                        for lane in group
                        if lane.expires_at is not None
                    ),
                    default=None,
                )
                self._reap_at = None if first is None else first + REAP_SLACK_S
                wake_at = self._reap_at
            self._wake.wait(None if wake_at is None else max(0.0, wake_at - time.monotonic()))

    def _take_expired(self, now: float) -> list[tuple[LeaseKey, Lane]]:
        """Idle lanes with a connection expired at `now`, out of the pool (lock held)."""
        taken: list[tuple[LeaseKey, Lane]] = []
        for key, lanes in list(self._idle.items()):
            keep: list[Lane] = []
            for lane in lanes:
                if lane.expires_at is not None and lane.expires_at <= now:
                    taken.append((key, lane))
                else:
                    keep.append(lane)
            if not keep:
                del self._idle[key]
            elif len(keep) < len(lanes):
                self._idle[key] = keep  # in place: the key keeps its age
        self._idle_count -= len(taken)
        return taken

    def tls_context(self, verify: bool) -> ssl.SSLContext:
        """The shared client context (with the configured CA bundle when verifying), for
        connections made outside lanes, such as alert e-mail over SMTP."""
        return self._contexts[verify]

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
        self._wake.set()
        for lane in lanes:
            lane.close()
        if self._reaper is not threading.current_thread():
            self._reaper.join(timeout=5)


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
