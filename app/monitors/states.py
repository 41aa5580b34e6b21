"""The state machine: a monitor's confirmed state from the outcomes of its checks, pure.

A monitor shows `unknown` until its first confirmed outcome, then `up`, `degraded` or `down`.
An outcome different from the state starts (or extends) the *pending* streak; the state
changes only when the streak is long enough: `failure_threshold` non-up outcomes in a row to
leave `up` (or `unknown`), `success_threshold` ups in a row to come back. One blip changes
nothing; until confirmed, the monitor shows its previous state plus the pending outcome and
count. An outcome equal to the state ends any streak.

How degraded and down count inside a failure streak:
- Leaving `up`/`unknown`: every non-up outcome extends one streak, and the streak confirms its
  *worst* outcome (down if any was down). The state never understates what the confirming
  streak saw: a target failing and answering slowly by turns is `down`, not `degraded`, and an
  alert for it says so. It needs one column: `pending_outcome` holds the worst so far.
- Between `degraded` and `down`: the other non-up outcome must itself repeat
  `failure_threshold` times in a row (an outcome equal to the state ends the streak), so a
  `down` monitor that answers slowly three times becomes `degraded` (an improvement is
  confirmed like any change), and a `degraded` one that fails three times becomes `down`.

A generation change (the monitor's url or options edited) restarts the streak: whoever bumps
`generation` writes `RESTART` in the same UPDATE (the row has no column saying which
definition a streak belongs to), and results of an older generation count toward no streak.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Final

from app.schemas.monitoring import SEVERITY, MonitorState, Outcome

UP, UNKNOWN = MonitorState.UP.value, MonitorState.UNKNOWN.value

# The columns to write beside `generation = generation + 1`: the streak starts again.
RESTART: Final[dict[str, object]] = {"pending_outcome": None, "pending_count": 0}


@dataclass(frozen=True, slots=True)
class Columns:
    """The state columns of a monitor's row."""

    state: str = UNKNOWN
    state_since: datetime | None = None
    pending_outcome: str | None = None
    pending_count: int = 0


@dataclass(frozen=True, slots=True)
class Step:
    """What one outcome does: the new columns, and the change it confirmed, if any.
    `streak` is how many results (this one included) the confirming streak had: the change
    began with the first of them."""

    columns: Columns
    changed: tuple[str, str] | None = None
    streak: int = 0


def advance(
    current: Columns,
    outcome: Outcome,
    at: datetime,
    failure_threshold: int,
    success_threshold: int,
) -> Step:
    """The columns after `outcome`, seen at `at`; `state_since` of a confirmed change is `at`
    (the caller may set it to the streak's first result, which it can look up)."""
    state = current.state
    if outcome == state:  # confirmed already: any streak away from it is over
        return Step(replace(current, pending_outcome=None, pending_count=0))
    pending, count = current.pending_outcome, current.pending_count
    if outcome == UP:
        count = count + 1 if pending == UP else 1
        pending, threshold = UP, success_threshold
    elif state in (UP, UNKNOWN):
        # Leaving up: one streak of non-up outcomes, confirming its worst.
        if pending is not None and pending != UP:
            count += 1
            pending = outcome if SEVERITY[outcome] > SEVERITY[pending] else pending
        else:
            pending, count = outcome, 1
        threshold = failure_threshold
    else:
        # degraded <-> down: the other one, in a row.
        count = count + 1 if pending == outcome else 1
        pending, threshold = outcome, failure_threshold
    if count < max(1, threshold):
        return Step(replace(current, pending_outcome=pending, pending_count=count))
    return Step(Columns(pending, at, None, 0), (state, pending), count)


def restart(current: Columns) -> Columns:
    """The columns after a generation change: same state, no streak."""
    return replace(current, pending_outcome=None, pending_count=0)
