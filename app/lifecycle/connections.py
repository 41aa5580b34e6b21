"""uvicorn's h11 protocol with the limits a public listener needs: a deadline for request heads,
a configurable keep-alive time, a cap on connections, and JSON for malformed heads.

uvicorn itself never times out a request head: its keep-alive timer is armed only after a
response and cancelled by any byte, so a client that sends half a head, or one byte at a time,
holds a connection (and a file descriptor, shared with the checks) for ever. Here a head must
arrive whole within `request_head_timeout_s`, counted from the connection's accept, or from
the first byte of a later request on a kept-alive connection (the idle time before that byte is
`keepalive_timeout_s`'s). A late head is answered 408; a connection that sent nothing is closed.

Past `max_connections`, a new connection is closed at once, unread. uvicorn's own
`limit_concurrency` answers 503 instead, but it has to read a request head for that, which a
slow client never completes, so it would hold the descriptor the cap is meant to save. The
close is immediate and cheap, clients see a reset and may retry, and the connections that
hold the service up end within the head or keep-alive timeout.

uvicorn answers a head it cannot parse, or one larger than h11's 16 KiB buffer, with a
plain-text 400; every error of this service is JSON, so these are too (431 for the size). After
such an answer the connection drains what the client still sends for a moment before closing:
closing with unread input makes the kernel send a reset, which can destroy the answer before
the client reads it.

`urlhealth serve` uses `protocol_for(settings)`; plain uvicorn gets the same behaviour with
`--http app.lifecycle.connections:GuardedH11Protocol`, which reads the settings on first use.
"""

from __future__ import annotations

import asyncio
import http
import json
import logging
import time
from dataclasses import dataclass
from typing import Any, ClassVar

import h11
from h11._connection import DEFAULT_MAX_INCOMPLETE_EVENT_SIZE
from uvicorn.config import Config
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState

from app.config import Settings, load_settings

log = logging.getLogger("urlhealth.connections")

# How long a connection reads and drops input after an error answer, before it closes.
LINGER_S = 2.0
# Under a flood of connections past the cap, say so at most this often.
REFUSAL_LOG_INTERVAL_S = 10.0


@dataclass(frozen=True)
class ConnectionLimits:
    request_head_timeout_s: float
    keepalive_timeout_s: float
    max_connections: int

    @classmethod
    def of(cls, settings: Settings) -> ConnectionLimits:
        return cls(
            request_head_timeout_s=settings.request_head_timeout_s,
            keepalive_timeout_s=settings.keepalive_timeout_s,
            max_connections=settings.max_connections,
        )


class _Connection(h11.Connection):
    """h11's server connection, keeping why it refused the client's data: uvicorn catches the
    exception and passes on only a fixed message."""

    refusal: h11.RemoteProtocolError | None = None

    def next_event(self) -> Any:
        try:
            return super().next_event()
        except h11.RemoteProtocolError as exc:
            self.refusal = exc
            raise


class GuardedH11Protocol(H11Protocol):
    # None: read from the settings (environment, config file) by the first connection.
    limits: ClassVar[ConnectionLimits | None] = None
    _last_refusal_log: ClassVar[float] = float("-inf")

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._limits = self._current_limits()
        # uvicorn types it as int (its CLI option is); its timer takes any float.
        self.timeout_keep_alive = self._limits.keepalive_timeout_s  # type: ignore[assignment]
        self._max_head_bytes = (
            config.h11_max_incomplete_event_size or DEFAULT_MAX_INCOMPLETE_EVENT_SIZE
        )
        self._h11 = _Connection(h11.SERVER, self._max_head_bytes)
        self.conn = self._h11
        self._head_timer: asyncio.TimerHandle | None = None
        self._lingering = False

    @classmethod
    def _current_limits(cls) -> ConnectionLimits:
        if cls.limits is None:
            cls.limits = ConnectionLimits.of(load_settings())
        return cls.limits

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self._limits.max_connections:
            self._refuse()
            return
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._lingering:
            return  # answered and closing: the rest of the request is dropped unread
        if self._head_timer is None and self.conn.their_state is h11.IDLE:
            self._arm_head_timer()  # the first bytes of the next request on this connection
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:
            self._cancel_head_timer()  # the head is complete (or refused)

    def send_400_response(self, msg: str) -> None:
        refusal = self._h11.refusal
        if refusal is not None and refusal.error_status_hint == 431:
            limit = self._max_head_bytes
            self._answer(431, f"request head too large: more than {limit} bytes")
        else:
            reason = str(refusal) if refusal is not None else msg
            self._answer(400, f"malformed request head: {reason}")

    def _refuse(self) -> None:
        now = time.monotonic()
        cls = type(self)
        if now - cls._last_refusal_log >= REFUSAL_LOG_INTERVAL_S:
            cls._last_refusal_log = now
            log.warning(
                "closing new connections: %d open, max_connections is %d",
                len(self.connections) - 1,
                self._limits.max_connections,
            )
        self.transport.close()

    def _arm_head_timer(self) -> None:
        self._cancel_head_timer()
        self._head_timer = self.loop.call_later(
            self._limits.request_head_timeout_s, self._head_timed_out
        )

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
            return
        received, _ = self.conn.trailing_data
        if received:
            timeout = self._limits.request_head_timeout_s
            self._answer(408, f"request head not complete within {timeout:g} s")
        else:
            # Nothing was asked (a client's spare connection, say): a close is the answer.
            self.transport.close()

    def _answer(self, status: int, detail: str) -> None:
        """Send a JSON error outside h11 (its state may be broken), then drain and close."""
        body = json.dumps({"detail": detail}).encode()
        head = (
            f"HTTP/1.1 {status} {http.HTTPStatus(status).phrase}\r\n"
            "content-type: application/json\r\n"
            f"content-length: {len(body)}\r\n"
            "connection: close\r\n\r\n"
        ).encode("ascii")
        self._cancel_head_timer()
        self._unset_keepalive_if_required()
        self._lingering = True
        self.transport.write(head + body)
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.flow.resume_reading()
        self.loop.call_later(LINGER_S, self.transport.close)


def protocol_for(settings: Settings) -> type[GuardedH11Protocol]:
    """The protocol class for uvicorn's `http=`, bound to these settings."""
    limits = ConnectionLimits.of(settings)
    return type("GuardedH11Protocol", (GuardedH11Protocol,), {"limits": limits})
