"""Recording a monitor's check: one writer transaction that keeps the result, decides the state
where it is stored, and keeps incidents and rollups current.

The transaction (`write_check`, run by the writer thread):
1. reads the monitor's row; a monitor deleted meanwhile → nothing is written;
2. applies app/monitors/states.py and writes the state with a CONDITIONAL UPDATE (same id,
   generation, state and streak as read), so that a second writer (a replica, later) can never
   apply one streak twice: when it updates no row, the row is read again and the step retried
   once; if that loses too, the result is kept without a state change. A result of an older
   generation counts toward no streak (only the result and the rollups are written);
3. inserts the compact result row (epoch ms, µs; the full result JSON in `detail` only for
   non-up results and the result that confirmed a change);
4. on a confirmed change: away from up opens an incident, between degraded and down appends an
   event (worst state kept), back to up closes it. The incident starts at the FIRST result of
   the confirming streak (when the outage began, not when it was confirmed) and keeps that
   result as `first_result`; it ends at the first up of the recovering streak. A new
   monitor's first up (unknown → up) is no recovery: there is no incident to close;
5. upserts the hourly and daily rollups (app/monitors/rollups.py);
6. calls `on_transition(connection, transition)` inside the same transaction, if given: the
   hook for the alerts issue's outbox row.

Results of one monitor reach the writer in the order they were recorded (no self-overlap), so
a streak is the last `streak` result rows of the monitor.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Row, bindparam, insert, select, update

from app.db.schema import incidents, monitor_results, monitors
from app.db.writer import Writer, WriterClosed, WriterFull
from app.monitors import rollups
from app.monitors.states import UP, Columns, Step, advance
from app.schemas.monitoring import OUTCOME_CODE, SEVERITY
from app.schemas.results import CheckResult

log = logging.getLogger("urlhealth.monitors")


@dataclass(frozen=True, slots=True)
class Transition:
    """A confirmed state change. `since`: the first result of the confirming streak;
    `at`: the result that confirmed it."""

    monitor_id: int
    from_state: str
    to_state: str
    since: datetime
    at: datetime
    incident_id: int | None


OnTransition = Callable[[Connection, Transition], None]


class Recorder:
    """Queues each check's transaction on the writer. `record` is fire-and-forget (the
    scheduler's callback); `submit` returns the Future of the Transition (or None)."""

    def __init__(self, writer: Writer, on_transition: OnTransition | None = None) -> None:
        self._writer = writer
        self._on_transition = on_transition
        self.dropped = 0  # results the writer refused (full or stopped)

    def record(
        self, monitor_id: int, generation: int, started_at: datetime, result: CheckResult
    ) -> None:
        try:
            self._writer.put(self._write(monitor_id, generation, started_at, result))
        except (WriterFull, WriterClosed) as exc:
            # The scheduler must go on: a result the database cannot take is counted, and
            # logged once a thousand (10,000 monitors behind a full queue would flood the log).
            self.dropped += 1
            if self.dropped % 1000 == 1:
                log.warning("%d monitor results not recorded so far: %s", self.dropped, exc)

    def submit(
        self, monitor_id: int, generation: int, started_at: datetime, result: CheckResult
    ) -> Future[Transition | None]:
        return self._writer.submit(self._write(monitor_id, generation, started_at, result))

    def _write(
        self, monitor_id: int, generation: int, started_at: datetime, result: CheckResult
    ) -> Callable[[Connection], Transition | None]:
        hook = self._on_transition
        return lambda c: write_check(c, monitor_id, generation, started_at, result, hook)


def write_check(
    connection: Connection,
    monitor_id: int,
    generation: int,
    started_at: datetime,
    result: CheckResult,
    on_transition: OnTransition | None = None,
) -> Transition | None:
    """The whole transaction's work, inside the caller's transaction (tests call it directly)."""
    row = _read(connection, monitor_id)
    if row is None:
        return None  # deleted: its history went with it
    at = started_at.astimezone(UTC)
    applied: _Applied | None = None
    if row.generation == generation:
        applied = _apply(connection, row, result, at)
        if applied is None:  # someone else changed the row since it was read: once more
            row = _read(connection, monitor_id)
            if row is None:
                return None
            if row.generation == generation:
                applied = _apply(connection, row, result, at)
    changed = applied.step.changed if applied is not None else None
    detail = _insert_result(connection, monitor_id, at, result, changed is not None)
    rollups.add(connection, monitor_id, at, result)
    if applied is None or changed is None:
        return None
    since = applied.step.columns.state_since or at
    first = applied.first_detail if applied.step.streak > 1 else detail
    incident_id = _incident(connection, row, changed, since, first)
    transition = Transition(monitor_id, changed[0], changed[1], since, at, incident_id)
    if on_transition is not None:
        on_transition(connection, transition)
    return transition


_STATE = (
    monitors.c.id,
    monitors.c.generation,
    monitors.c.state,
    monitors.c.state_since,
    monitors.c.pending_outcome,
    monitors.c.pending_count,
    monitors.c.incident_id,
    monitors.c.failure_threshold,
    monitors.c.success_threshold,
)


@dataclass(frozen=True, slots=True)
class _Applied:
    step: Step
    first_detail: bytes | None  # the confirming streak's first result, if not this one


# Statements built once, run with parameters: building one per result cost more CPU than
# the database's work (~10x, measured on SQLite).
_READ = select(*_STATE).where(monitors.c.id == bindparam("m_id"))
_UPDATE = (
    update(monitors)
    .where(
        monitors.c.id == bindparam("m_id"),
        monitors.c.generation == bindparam("m_generation"),
        monitors.c.state == bindparam("m_state"),
        monitors.c.pending_outcome.is_not_distinct_from(bindparam("m_pending_outcome")),
        monitors.c.pending_count == bindparam("m_pending_count"),
    )
    .values(
        {
            column: bindparam(column)
            for column in (
                "state",
                "state_since",
                "pending_outcome",
                "pending_count",
                "incident_id",
                "last_checked_at",
                "last_result",
            )
        }
    )
)
_INSERT_RESULT = insert(monitor_results)


def _read(connection: Connection, monitor_id: int) -> Row[Any] | None:
    return connection.execute(_READ, {"m_id": monitor_id}).first()


def _apply(
    connection: Connection, row: Row[Any], result: CheckResult, at: datetime
) -> _Applied | None:
    """Advance the state and write it if the row is still as read; None if it was not."""
    current = Columns(row.state, row.state_since, row.pending_outcome, row.pending_count)
    step = advance(current, result.outcome, at, row.failure_threshold, row.success_threshold)
    first_detail = None
    if step.changed is not None and step.streak > 1:
        first = _streak_first(connection, row.id, step.streak)
        if first is not None:
            since = datetime.fromtimestamp(first.at_ms / 1000, UTC)
            step = Step(Columns(step.columns.state, since), step.changed, step.streak)
            first_detail = first.detail
    columns = step.columns
    recovered = step.changed is not None and step.changed[1] == UP
    updated = connection.execute(
        _UPDATE,
        {
            "m_id": row.id,
            "m_generation": row.generation,
            "m_state": row.state,
            "m_pending_outcome": row.pending_outcome,
            "m_pending_count": row.pending_count,
            "state": columns.state,
            "state_since": columns.state_since,
            "pending_outcome": columns.pending_outcome,
            "pending_count": columns.pending_count,
            "incident_id": None if recovered else row.incident_id,
            "last_checked_at": at,
            "last_result": result.model_dump_json().encode(),
        },
    ).rowcount
    return _Applied(step, first_detail) if updated == 1 else None


def _streak_first(connection: Connection, monitor_id: int, streak: int) -> Row[Any] | None:
    """The first result of a streak of `streak` that ends with the one being recorded (not
    yet inserted): `streak - 1` rows back. None if retention took it already."""
    r = monitor_results.c
    return connection.execute(
        select(r.at_ms, r.detail)
        .where(r.monitor_id == monitor_id)
        .order_by(r.at_ms.desc(), r.id.desc())
        .offset(streak - 2)
        .limit(1)
    ).first()


def _insert_result(
    connection: Connection, monitor_id: int, at: datetime, result: CheckResult, changed: bool
) -> bytes | None:
    """Insert the compact row; the full JSON (returned) only for non-up results and changes."""
    timings = result.timings_ms
    detail = result.model_dump_json().encode() if changed or result.outcome != UP else None
    connection.execute(
        _INSERT_RESULT,
        {
            "monitor_id": monitor_id,
            "at_ms": to_ms(at),
            "outcome": OUTCOME_CODE[result.outcome],
            "status": result.status_code,
            "latency_us": _us(result.elapsed_ms),
            "dns_us": _us(timings.dns) if timings else None,
            "connect_us": _us(timings.connect) if timings else None,
            "tls_us": _us(timings.tls) if timings else None,
            "ttfb_us": _us(timings.ttfb) if timings else None,
            "transfer_us": _us(timings.transfer) if timings else None,
            "error_kind": result.error.kind.value if result.error else None,
            "detail": detail,
        },
    )
    return detail


def _incident(
    connection: Connection,
    row: Row[Any],
    changed: tuple[str, str],
    since: datetime,
    first_result: bytes | None,
) -> int | None:
    """Open, extend or close the monitor's incident for a confirmed change; its id."""
    old, new = changed
    event = {"at": since.isoformat(), "from": old, "to": new}
    if row.incident_id is None:
        if new == UP:
            return None  # unknown -> up: a new monitor's first up is no recovery
        incident_id = connection.execute(
            insert(incidents)
            .values(
                monitor_id=row.id,
                started_at=since,
                worst_state=new,
                first_result=first_result,
                events=[event],
            )
            .returning(incidents.c.id)
        ).scalar_one()
        connection.execute(
            update(monitors).where(monitors.c.id == row.id).values(incident_id=incident_id)
        )
        return int(incident_id)
    found = connection.execute(
        select(incidents.c.worst_state, incidents.c.events).where(incidents.c.id == row.incident_id)
    ).first()
    if found is None:  # pruned or deleted by hand: nothing to extend
        return None
    values: dict[str, Any] = {"events": [*found.events, event]}
    if new == UP:
        values["ended_at"] = since
    elif SEVERITY[new] > SEVERITY[found.worst_state]:
        values["worst_state"] = new
    connection.execute(update(incidents).where(incidents.c.id == row.incident_id).values(**values))
    return int(row.incident_id)


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_ms(at: datetime) -> int:
    """Epoch milliseconds, exactly (no float on the way)."""
    return (at - EPOCH) // timedelta(milliseconds=1)


def _us(ms: float | None) -> int | None:
    return None if ms is None else max(0, round(ms * 1000))
