"""The pure state machine: thresholds, streaks, worst-of-streak, restarts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from app.monitors.states import Columns, Step, advance, restart
from app.schemas.monitoring import Outcome

T0 = datetime(2026, 12, 1, tzinfo=UTC)


def run(outcomes: list[Outcome], start: Columns | None = None) -> list[Step]:
    columns = start or Columns()
    steps = []
    for n, outcome in enumerate(outcomes):
        step = advance(columns, outcome, T0 + timedelta(minutes=n), 3, 2)
        steps.append(step)
        columns = step.columns
    return steps


def changes(steps: list[Step]) -> list[tuple[str, str]]:
    return [s.changed for s in steps if s.changed is not None]


def test_a_new_monitor_is_unknown_until_its_first_confirmed_up() -> None:
    steps = run(["up", "up"])
    assert steps[0].columns.state == "unknown"
    assert (steps[0].columns.pending_outcome, steps[0].columns.pending_count) == ("up", 1)
    assert steps[1].changed == ("unknown", "up")
    assert steps[1].columns == Columns("up", T0 + timedelta(minutes=1), None, 0)


def test_one_blip_changes_nothing_and_shows_as_pending() -> None:
    up = run(["up", "up"])[-1].columns
    steps = run(["down", "up", "up"], up)
    assert changes(steps) == []
    assert (steps[0].columns.state, steps[0].columns.pending_outcome) == ("up", "down")
    assert steps[0].columns.pending_count == 1
    assert steps[1].columns.pending_count == 0  # an up ends the failure streak


def test_three_failures_in_a_row_confirm_down_once() -> None:
    up = run(["up", "up"])[-1].columns
    steps = run(["down", "down", "down", "down"], up)
    assert changes(steps) == [("up", "down")]
    assert steps[2].streak == 3


def test_a_mixed_failure_streak_confirms_its_worst_outcome() -> None:
    up = run(["up", "up"])[-1].columns
    steps = run(["down", "degraded", "degraded"], up)
    assert changes(steps) == [("up", "down")]
    steps = run(["degraded", "degraded", "degraded"], up)
    assert changes(steps) == [("up", "degraded")]


def test_degraded_to_down_needs_its_own_streak() -> None:
    degraded = run(["degraded"] * 3)[-1].columns
    assert degraded.state == "degraded"
    assert changes(run(["down", "down", "degraded", "down"], degraded)) == []
    assert changes(run(["down", "down", "down"], degraded)) == [("degraded", "down")]


def test_recovery_needs_success_threshold_ups_in_a_row() -> None:
    down = run(["down"] * 3)[-1].columns
    assert changes(run(["up", "down", "up"], down)) == []
    assert changes(run(["up", "up"], down)) == [("down", "up")]


def test_a_restart_keeps_the_state_and_drops_the_streak() -> None:
    up = run(["up", "up"])[-1].columns
    pending = run(["down", "down"], up)[-1].columns
    restarted = restart(pending)
    assert (restarted.state, restarted.pending_count, restarted.pending_outcome) == ("up", 0, None)
    assert changes(run(["down", "down"], restarted)) == []
