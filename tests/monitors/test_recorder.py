"""Recording checks through the writer: states decided in the row, incidents, compact rows,
rollups, and the conditional update."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Connection, func, select, update

from app.db.schema import incidents, monitor_results, monitor_rollups, monitors
from app.monitors.recorder import Recorder, Transition, write_check
from app.schemas.monitoring import Outcome
from tests.support.monitors import T0, HistoryStore, add_monitor, bump_generation, check


def record_all(
    store: HistoryStore, monitor_id: int, outcomes: list[Outcome], start: int = 0
) -> list[Transition | None]:
    """Record `outcomes` a minute apart from T0 + `start` minutes; the transitions."""
    recorder = Recorder(store.writer)
    done = []
    for n, outcome in enumerate(outcomes, start):
        at = T0 + timedelta(minutes=n)
        done.append(recorder.submit(monitor_id, 1, at, check(outcome, at=at)).result(10))
    return done


def monitor(store: HistoryStore, monitor_id: int) -> Any:
    with store.database.engine.connect() as connection:
        return connection.execute(select(monitors).where(monitors.c.id == monitor_id)).one()


def incident_rows(store: HistoryStore, monitor_id: int) -> list[Any]:
    with store.database.engine.connect() as connection:
        query = select(incidents).where(incidents.c.monitor_id == monitor_id)
        return list(connection.execute(query.order_by(incidents.c.id)))


def changes(transitions: list[Transition | None]) -> list[tuple[str, str]]:
    return [(t.from_state, t.to_state) for t in transitions if t is not None]


def test_the_first_up_of_a_new_monitor_is_no_recovery(store: HistoryStore) -> None:
    m = add_monitor(store.database, "new")
    assert changes(record_all(store, m, ["up", "up"])) == [("unknown", "up")]
    assert incident_rows(store, m) == []
    row = monitor(store, m)
    assert (row.state, row.state_since, row.incident_id) == ("up", T0, None)


def test_one_blip_changes_nothing_but_shows_pending(store: HistoryStore) -> None:
    m = add_monitor(store.database, "blip")
    assert changes(record_all(store, m, ["up", "up", "down"])) == [("unknown", "up")]
    row = monitor(store, m)
    assert (row.state, row.pending_outcome, row.pending_count) == ("up", "down", 1)
    assert json.loads(row.last_result)["outcome"] == "down"
    assert incident_rows(store, m) == []


def test_three_failures_open_exactly_one_incident_from_the_streaks_first(
    store: HistoryStore,
) -> None:
    m = add_monitor(store.database, "fails")
    transitions = record_all(store, m, ["up", "up", "down", "down", "down", "down", "down"])
    assert changes(transitions) == [("unknown", "up"), ("up", "down")]
    (incident,) = incident_rows(store, m)
    assert incident.started_at == T0 + timedelta(minutes=2)  # the streak's first result
    assert incident.ended_at is None
    assert incident.worst_state == "down"
    assert json.loads(incident.first_result)["outcome"] == "down"
    assert [(e["from"], e["to"]) for e in incident.events] == [("up", "down")]
    row = monitor(store, m)
    assert (row.state, row.state_since, row.incident_id) == (
        "down",
        incident.started_at,
        incident.id,
    )
    opened = transitions[4]
    assert opened is not None
    assert (opened.since, opened.at, opened.incident_id) == (
        T0 + timedelta(minutes=2),
        T0 + timedelta(minutes=4),
        incident.id,
    )


def test_degraded_then_down_is_one_incident_and_recovery_ends_it(store: HistoryStore) -> None:
    m = add_monitor(store.database, "worse")
    worse: list[Outcome] = ["degraded", "degraded", "degraded", "down", "down", "down"]
    outcomes: list[Outcome] = ["up", "up", *worse, "up", "up"]
    transitions = record_all(store, m, outcomes)
    assert changes(transitions) == [
        ("unknown", "up"),
        ("up", "degraded"),
        ("degraded", "down"),
        ("down", "up"),
    ]
    (incident,) = incident_rows(store, m)
    assert incident.worst_state == "down"
    assert [(e["from"], e["to"]) for e in incident.events] == [
        ("up", "degraded"),
        ("degraded", "down"),
        ("down", "up"),
    ]
    assert incident.started_at == T0 + timedelta(minutes=2)
    assert incident.ended_at == T0 + timedelta(minutes=8)  # the first up of the recovery
    assert monitor(store, m).incident_id is None
    # The next outage is a new incident.
    record_all(store, m, ["down"] * 3, start=10)
    assert len(incident_rows(store, m)) == 2


def test_a_generation_change_restarts_the_streak(store: HistoryStore) -> None:
    m = add_monitor(store.database, "edited")
    record_all(store, m, ["up", "up", "down", "down"])
    bump_generation(store.database, m)
    recorder = Recorder(store.writer)
    late = T0 + timedelta(minutes=4)
    # A result of the old definition landing late counts toward no streak...
    assert recorder.submit(m, 1, late, check("down", at=late)).result(10) is None
    # ...and the new definition needs its own three.
    for n in range(2):
        at = T0 + timedelta(minutes=5 + n)
        assert recorder.submit(m, 2, at, check("down", at=at)).result(10) is None
    at = T0 + timedelta(minutes=7)
    confirmed = recorder.submit(m, 2, at, check("down", at=at)).result(10)
    assert confirmed is not None
    assert (confirmed.from_state, confirmed.to_state) == ("up", "down")


def test_a_deleted_monitor_gets_nothing_written(store: HistoryStore) -> None:
    recorder = Recorder(store.writer)
    assert recorder.submit(9999, 1, T0, check("down")).result(10) is None
    with store.database.engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(monitor_results)).scalar() == 0


def test_results_are_compact_with_detail_only_for_failures_and_changes(
    store: HistoryStore,
) -> None:
    m = add_monitor(store.database, "compact")
    record_all(store, m, ["up", "up", "up", "degraded"])
    with store.database.engine.connect() as connection:
        rows = list(connection.execute(select(monitor_results).order_by(monitor_results.c.id)))
    assert [r.detail is not None for r in rows] == [False, True, False, True]
    first = rows[0]
    assert (first.at_ms, first.outcome, first.status) == (int(T0.timestamp() * 1000), 0, 200)
    assert (first.latency_us, first.dns_us, first.ttfb_us) == (20_000, 500, 18_000)
    assert rows[3].outcome == 1


def test_a_row_changed_since_it_was_read_is_not_stepped_twice(store: HistoryStore) -> None:
    """The conditional update: a second writer that read the row before the first wrote
    it finds the row changed, reads it again and steps from there."""
    m = add_monitor(store.database, "racing")
    record_all(store, m, ["up", "up", "down", "down"])

    def other_writer_first(connection: Connection) -> Transition | None:
        # Another replica confirms the outage between our read and our update: simulated by
        # changing the row as that replica's commit would, then recording ours.
        connection.execute(
            update(monitors)
            .where(monitors.c.id == m)
            .values(state="down", pending_outcome=None, pending_count=0)
        )
        at = T0 + timedelta(minutes=5)
        return write_check(connection, m, 1, at, check("down", at=at))

    assert store.writer.submit(other_writer_first).result(10) is None  # no second change
    assert monitor(store, m).state == "down"


def test_rollups_count_every_result_per_hour_and_day(store: HistoryStore) -> None:
    m = add_monitor(store.database, "rolled")
    record_all(store, m, ["up", "degraded", "down"] * 30)  # 90 minutes from T0
    with store.database.engine.connect() as connection:
        rows = {
            (r.period, r.start_ms): r
            for r in connection.execute(
                select(monitor_rollups).where(monitor_rollups.c.monitor_id == m)
            )
        }
    t0_ms = int(T0.timestamp() * 1000)
    assert sorted(rows) == [("d", t0_ms), ("h", t0_ms), ("h", t0_ms + 3_600_000)]
    day = rows[("d", t0_ms)]
    assert (day.checks, day.up, day.degraded, day.down) == (90, 30, 30, 30)
    assert day.latency_count == 60  # up and degraded: the answers' times
    assert rows[("h", t0_ms)].checks == 60
    assert sum(day.histogram.values()) == 60


@pytest.mark.parametrize("threshold", [1])
def test_a_threshold_of_one_confirms_on_the_first_result(
    store: HistoryStore, threshold: int
) -> None:
    m = add_monitor(store.database, "eager", failure_threshold=threshold, success_threshold=1)
    assert changes(record_all(store, m, ["up", "down", "up"])) == [
        ("unknown", "up"),
        ("up", "down"),
        ("down", "up"),
    ]
    (incident,) = incident_rows(store, m)
    assert json.loads(incident.first_result)["outcome"] == "down"
    assert (incident.started_at, incident.ended_at) == (
        T0 + timedelta(minutes=1),
        T0 + timedelta(minutes=2),
    )


def test_a_result_the_writer_refuses_is_counted_not_raised(store: HistoryStore) -> None:
    m = add_monitor(store.database, "refused")
    recorder = Recorder(store.writer)
    store.writer.stop(10.0)
    recorder.record(m, 1, T0, check("up"))  # the scheduler's callback must not raise
    assert recorder.dropped == 1


def test_the_transition_hook_runs_inside_the_recording_transaction(store: HistoryStore) -> None:
    """Where the alerts issue adds its outbox row: same transaction as the state change."""
    m = add_monitor(store.database, "hooked")
    seen: list[tuple[str, str, int]] = []

    def hook(connection: Connection, transition: Transition) -> None:
        # Inside the transaction: the monitor's row already shows the change.
        state = connection.execute(select(monitors.c.state).where(monitors.c.id == m)).scalar()
        seen.append((transition.from_state, transition.to_state, len(state or "")))

    recorder = Recorder(store.writer, on_transition=hook)
    outcomes: list[Outcome] = ["up", "up", "down", "down", "down"]
    for n, outcome in enumerate(outcomes):
        at = T0 + timedelta(minutes=n)
        recorder.submit(m, 1, at, check(outcome, at=at)).result(10)
    assert seen == [("unknown", "up", 2), ("up", "down", 4)]
