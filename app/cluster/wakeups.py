"""Wake-ups from other replicas, through PostgreSQL's LISTEN/NOTIFY: one connection and one
thread per process, whatever the number of streams and waiters.

A writer calls `notify(connection, channel, key)` inside its transaction: PostgreSQL delivers
it at commit, so a woken reader always finds what woke it. Subscribers are called by
(channel, key) on this module's thread and must only set a flag or an event. Notifications
sent while the connection was down are lost: on reconnecting, every subscriber is called
once, so each re-reads what it waits for rather than waiting for a wake-up that will not come.
A channel-wide subscriber (`subscribe_channel`) hears every key of its channel, and "" (the
key of nothing in particular: re-read everything) on reconnecting.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy import Connection, text

log = logging.getLogger("urlhealth.cluster")

Callback = Callable[[], None]
KeyCallback = Callable[[str], None]
Unsubscribe = Callable[[], None]

# Longest wait for a notification before the stop flag is looked at again.
_POLL_S = 0.5
_RECONNECT_MAX_S = 5.0


def notify(connection: Connection, channel: str, key: str) -> None:
    """Wake the subscribers of (channel, key) on every replica once this transaction
    commits. PostgreSQL folds identical notifications of one transaction into one."""
    connection.execute(text("SELECT pg_notify(:channel, :key)"), {"channel": channel, "key": key})


class Wakeups:
    def __init__(self, conninfo: str, channels: tuple[str, ...]) -> None:
        self._conninfo = conninfo
        self._channels = channels
        self._lock = threading.Lock()
        self._subscribers: dict[tuple[str, str], set[Callback]] = {}
        self._channel_subscribers: dict[str, set[KeyCallback]] = {}
        self._stopping = threading.Event()
        self._connected = threading.Event()
        self._thread: threading.Thread | None = None

    def subscribe(self, channel: str, key: str, callback: Callback) -> Unsubscribe:
        with self._lock:
            self._subscribers.setdefault((channel, key), set()).add(callback)

        def unsubscribe() -> None:
            with self._lock:
                callbacks = self._subscribers.get((channel, key))
                if callbacks is not None:
                    callbacks.discard(callback)
                    if not callbacks:
                        del self._subscribers[(channel, key)]

        return unsubscribe

    def subscribe_channel(self, channel: str, callback: KeyCallback) -> Unsubscribe:
        """Every key of `channel` (and "" after a reconnect): callback(key)."""
        with self._lock:
            self._channel_subscribers.setdefault(channel, set()).add(callback)

        def unsubscribe() -> None:
            with self._lock:
                self._channel_subscribers.get(channel, set()).discard(callback)

        return unsubscribe

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def start(self, wait_s: float = 10.0) -> Wakeups:
        """Start listening; returns once listening (or after `wait_s`, still trying)."""
        self._thread = threading.Thread(target=self._run, name="wakeups", daemon=True)
        self._thread.start()
        self._connected.wait(wait_s)
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def _run(self) -> None:
        delay = 0.1
        while not self._stopping.is_set():
            try:
                with psycopg.connect(self._conninfo, autocommit=True) as connection:
                    for channel in self._channels:
                        connection.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
                    self._connected.set()
                    delay = 0.1
                    self._wake_all()  # what was sent while away is lost: everyone re-reads
                    self._listen(connection)
            except psycopg.Error as exc:
                if self._connected.is_set():
                    log.warning("wake-ups from other replicas lost, reconnecting: %s", exc)
                self._connected.clear()
            if self._stopping.wait(delay):
                break
            delay = min(_RECONNECT_MAX_S, delay * 2)
        self._connected.clear()

    def _listen(self, connection: psycopg.Connection[Any]) -> None:
        while not self._stopping.is_set():
            for note in connection.notifies(timeout=_POLL_S):
                self._wake(note.channel, note.payload)

    def _wake(self, channel: str, key: str) -> None:
        with self._lock:
            callbacks = list(self._subscribers.get((channel, key), ()))
            everything = list(self._channel_subscribers.get(channel, ()))
        for callback in callbacks:
            _call(callback)
        for wide in everything:
            _call(functools.partial(wide, key))

    def _wake_all(self) -> None:
        with self._lock:
            callbacks = [c for group in self._subscribers.values() for c in group]
            wide = [c for group in self._channel_subscribers.values() for c in group]
        for callback in callbacks:
            _call(callback)
        for each in wide:
            _call(functools.partial(each, ""))


def _call(callback: Callback) -> None:
    try:
        callback()
    except Exception:  # one subscriber's bug must not stop the others' wake-ups
        log.exception("a wake-up subscriber failed")
