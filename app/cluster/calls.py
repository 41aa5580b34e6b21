"""A call run on a worker replica and waited for by an API-only replica: `/v1/check`,
`/probe` and a monitor's check-now, answered as one process answers them.

The API replica inserts the call's row, listens for its key on `urlhealth_calls` (before
deferring, so the answer cannot come unheard), defers one `urlhealth.call` task and waits,
bounded. The worker that takes the task marks the row taken (a row gone means the caller gave
up: nothing runs), runs the kind's handler on its own engine, and writes the reply into the
row with the wake-up in the same transaction; the caller reads the reply and deletes the row.
A caller that gives up deletes its row and cancels its task; rows of callers that died are
deleted when a later reply is written.

A handler returns a `Reply` (status, media type, bytes) or raises `Refused` (status, detail,
headers): the API replica raises that as its own HTTP error, so it renders as one process's.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, insert, select, update

from app.cluster.queue import TaskSpec
from app.cluster.replica import Replica
from app.cluster.wakeups import notify
from app.db.engine import Database
from app.db.schema import cluster_calls

log = logging.getLogger("urlhealth.cluster")

CHANNEL = "urlhealth_calls"
TASK = "urlhealth.call"
# Above job chunks: a call is waited for by a client, a chunk by nobody in particular.
PRIORITY = 10
# Beyond the handler's own bound: time for a worker to take the task and the reply to come.
MARGIN_S = 5.0
# Rows older than this are callers that died; deleted when a reply is written.
STALE_S = 600.0
# A wake-up lost anyway (none should be: the listener wakes everyone on reconnecting): the
# caller looks at its row again this often.
_RECHECK_S = 5.0


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    body: bytes = b""
    media_type: str = "application/json"
    headers: Mapping[str, str] = field(default_factory=dict)
    # An error: the API replica answers {"detail": detail} as it answers its own errors.
    detail: Any = None

    @property
    def refused(self) -> bool:
        return self.detail is not None


class Refused(Exception):
    """Raised by a handler: answer with this HTTP error."""

    def __init__(self, status: int, detail: Any, headers: Mapping[str, str] | None = None):
        super().__init__(f"{status}: {detail}")
        self.reply = Reply(status, detail=detail, headers=dict(headers or {}))


class NoAnswer(Exception):
    """No worker replica answered in time (503); the message says why."""


Handler = Callable[[dict[str, Any]], Reply]


class Calls:
    def __init__(self, database: Database, replica: Replica) -> None:
        self._database = database
        self._replica = replica
        self._handlers: dict[str, Handler] = {}

    @property
    def elsewhere(self) -> bool:
        """This replica runs no checks: its calls run on a worker."""
        return not self._replica.runs_checks

    # --- the worker's side ---------------------------------------------------------------
    def handle(self, kind: str, handler: Handler) -> None:
        self._handlers[kind] = handler

    def spec(self) -> TaskSpec:
        return TaskSpec(TASK, self._run, hand_backs=1, priority=PRIORITY)

    def _run(self, call_id: str, kind: str, arguments: str) -> None:
        with self._database.write_engine.begin() as connection:
            taken = connection.execute(
                update(cluster_calls)
                .where(cluster_calls.c.id == call_id, cluster_calls.c.taken_by.is_(None))
                .values(taken_by=self._replica.name)
                .returning(cluster_calls.c.id)
            ).first()
        if taken is None:
            return  # its caller gave up (or another worker has it)
        reply = self._answer(kind, arguments)
        with self._database.write_engine.begin() as connection:
            connection.execute(
                update(cluster_calls)
                .where(cluster_calls.c.id == call_id)
                .values(
                    status=reply.status,
                    media_type=reply.media_type,
                    headers=dict(reply.headers),
                    body=reply.body,
                    detail=reply.detail,
                )
            )
            notify(connection, CHANNEL, call_id)
            stale = datetime.now(UTC) - timedelta(seconds=STALE_S)
            connection.execute(delete(cluster_calls).where(cluster_calls.c.created_at < stale))

    def _answer(self, kind: str, arguments: str) -> Reply:
        handler = self._handlers.get(kind)
        if handler is None:
            return Reply(500, detail=f"internal error: no handler for calls of kind {kind!r}")
        try:
            return handler(json.loads(arguments))
        except Refused as refused:
            return refused.reply
        except Exception as exc:  # as the API's handler of bugs answers
            log.exception("a call of kind %s failed", kind)
            return Reply(500, detail=f"internal error: {type(exc).__name__}")

    # --- the API replica's side ----------------------------------------------------------
    def call(self, kind: str, arguments: dict[str, Any], wait_s: float) -> Reply:
        """Run a call on a worker and wait for its reply, `wait_s` plus a margin at most.
        Blocks: call it from a thread. Raises NoAnswer."""
        call_id = uuid.uuid4().hex
        bound = wait_s + MARGIN_S
        woken = threading.Event()
        unsubscribe = self._replica.wakeups.subscribe(CHANNEL, call_id, woken.set)
        try:
            queue_ids = self._send(call_id, kind, arguments)
            deadline = time.monotonic() + bound
            while True:
                woken.clear()  # before reading: a reply from now on wakes the wait below
                reply = self._take(call_id)
                if reply is not None:
                    return reply
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                woken.wait(min(left, _RECHECK_S))
        finally:
            unsubscribe()
        return self._give_up(call_id, queue_ids, bound)

    def _send(self, call_id: str, kind: str, arguments: dict[str, Any]) -> list[int]:
        """The row first: a worker taking a task whose row is missing takes it as given up."""
        try:
            with self._database.write_engine.begin() as connection:
                connection.execute(
                    insert(cluster_calls).values(
                        id=call_id, kind=kind, created_at=datetime.now(UTC)
                    )
                )
            task = {"call_id": call_id, "kind": kind, "arguments": json.dumps(arguments)}
            return self._replica.queue.defer(TASK, [task])
        except Exception as exc:
            log.warning("a call could not be handed to the workers: %s", exc)
            # Failing too, the row goes with the next reply's clean-up.
            with (
                contextlib.suppress(Exception),
                self._database.write_engine.begin() as connection,
            ):
                connection.execute(delete(cluster_calls).where(cluster_calls.c.id == call_id))
            raise NoAnswer(f"the call could not be handed to a worker replica: {exc}") from exc

    def _take(self, call_id: str) -> Reply | None:
        with self._database.write_engine.begin() as connection:
            row = connection.execute(
                select(cluster_calls).where(
                    cluster_calls.c.id == call_id, cluster_calls.c.status.is_not(None)
                )
            ).first()
            if row is None:
                return None
            connection.execute(delete(cluster_calls).where(cluster_calls.c.id == call_id))
        return Reply(
            row.status,
            row.body or b"",
            row.media_type or "application/json",
            dict(row.headers or {}),
            row.detail,
        )

    def _give_up(self, call_id: str, queue_ids: list[int], bound: float) -> Reply:
        try:
            self._replica.queue.cancel(queue_ids)
            reply = self._take(call_id)  # answered just now
            if reply is not None:
                return reply
            with self._database.write_engine.begin() as connection:
                taken_by = connection.execute(
                    delete(cluster_calls)
                    .where(cluster_calls.c.id == call_id)
                    .returning(cluster_calls.c.taken_by)
                ).scalar()
        except Exception as exc:  # the database away: the reason below still holds
            log.warning("an unanswered call could not be withdrawn: %s", exc)
            taken_by = None
        if taken_by is None:
            raise NoAnswer(f"no worker replica took the call within {bound:g} s")
        raise NoAnswer(
            f"worker replica {taken_by} took the call but did not answer within {bound:g} s"
        )
