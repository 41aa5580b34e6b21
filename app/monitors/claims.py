"""Claiming due monitor checks across replicas (cluster mode only, PostgreSQL).

Every replica that runs checks keeps the same in-memory schedule (due times come from the
grid, app/monitors/timing.py, the same on every replica); before handing out the checks
that came due in one tick, the scheduler claims them here in ONE statement, and runs only
the ones it won. The claim is healthchecks.io's: a conditional UPDATE of
monitors.next_due_at to the monitor's following due time, matching only where the stored
time is more than half an interval before it. Of several replicas claiming one due check,
the first sets the time and the others no longer match (PostgreSQL re-checks the condition
against the committed row once the first's lock is released). Times are never compared for
equality: a float epoch stored as timestamptz is rounded to microseconds.

Rows are locked in id order (ORDER BY ... FOR UPDATE), so two claimers never deadlock each
other; a deadlock with another replica's batched writes (the recorder updates the same rows)
is detected by PostgreSQL and the claim is tried once more. Paused monitors never match.

The claim has its own connection (autocommit, a statement timeout), used by the scheduler's
thread alone: one round trip per tick, never queued behind the writer's batches.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

log = logging.getLogger("urlhealth.monitors")

STATEMENT_TIMEOUT_MS = 10_000
CONNECT_TIMEOUT_S = 5

CLAIM = """
WITH wanted AS (
    SELECT * FROM unnest(%(ids)s::integer[], %(following)s::timestamptz[],
                         %(before)s::timestamptz[]) AS w(id, following, before)
), won AS (
    SELECT m.id, w.following
    FROM monitors m JOIN wanted w ON w.id = m.id
    WHERE NOT m.paused AND (m.next_due_at IS NULL OR m.next_due_at < w.before)
    ORDER BY m.id
    FOR UPDATE OF m
)
UPDATE monitors m SET next_due_at = won.following
FROM won WHERE m.id = won.id
RETURNING m.id
"""


class ClaimsUnavailable(RuntimeError):
    """The database could not be asked (logged here, once per outage)."""


@dataclass(frozen=True, slots=True)
class Due:
    """A due check to claim: the monitor, its following due time (epoch s), its interval."""

    monitor_id: int
    following: float
    interval_s: float


def claim_statement(due: Sequence[Due]) -> dict[str, Any]:
    """The claim's parameters: following times, and the times the stored one must be
    before (half an interval earlier)."""
    return {
        "ids": [d.monitor_id for d in due],
        "following": [_at(d.following) for d in due],
        "before": [_at(d.following) - timedelta(seconds=d.interval_s / 2) for d in due],
    }


class DueClaims:
    """`claim(due) -> ids won`; raises ClaimsUnavailable when the database cannot be asked
    (the scheduler then runs none of them: never twice beats always)."""

    def __init__(self, conninfo: str) -> None:
        self._conninfo = conninfo
        self._lock = threading.Lock()  # one caller at a time (the scheduler's thread)
        self._connection: psycopg.Connection[Any] | None = None
        self._failing = 0  # claims failed in a row

    def __call__(self, due: Sequence[Due]) -> set[int]:
        if not due:
            return set()
        params = claim_statement(due)
        with self._lock:
            try:
                won = self._claim_twice(params)
            except psycopg.Error as exc:
                self._drop()
                self._failing += 1
                if self._failing == 1:  # a tick's warning each would flood an outage's log
                    log.warning("monitor checks not claimed (none run) until this passes: %s", exc)
                raise ClaimsUnavailable(str(exc)) from None
            if self._failing:
                log.info("monitor checks claimed again after %d failed claims", self._failing)
                self._failing = 0
            return won

    def _claim_twice(self, params: dict[str, Any]) -> set[int]:
        """A deadlock (with another replica's writes) or a lost connection: once more."""
        try:
            return self._claim(params)
        except psycopg.errors.DeadlockDetected:
            return self._claim(params)
        except psycopg.Error:
            self._drop()
            return self._claim(params)

    def _claim(self, params: dict[str, Any]) -> set[int]:
        connection = self._connect()
        rows = connection.execute(CLAIM, params, prepare=True).fetchall()
        return {int(row[0]) for row in rows}

    def _connect(self) -> psycopg.Connection[Any]:
        if self._connection is None or self._connection.closed:
            self._connection = psycopg.connect(
                self._conninfo,
                autocommit=True,
                connect_timeout=CONNECT_TIMEOUT_S,
                options=f"-c statement_timeout={STATEMENT_TIMEOUT_MS}",
            )
        return self._connection

    def _drop(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(psycopg.Error):
                self._connection.close()
            self._connection = None

    def close(self) -> None:
        with self._lock:
            self._drop()


def _at(epoch_s: float) -> datetime:
    return datetime.fromtimestamp(epoch_s, UTC)
