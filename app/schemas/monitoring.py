"""The words every part of monitoring shares: states, outcomes and their stored codes. Here,
at the bottom, so the public schemas and every package above can use them."""

from __future__ import annotations

from enum import StrEnum
from typing import Final, Literal

Outcome = Literal["up", "degraded", "down"]

# monitor_results.outcome holds a small integer: a result row stays under 100 bytes.
OUTCOME_CODE: Final[dict[str, int]] = {"up": 0, "degraded": 1, "down": 2}
CODE_OUTCOME: Final[dict[int, Outcome]] = {0: "up", 1: "degraded", 2: "down"}


class MonitorState(StrEnum):
    """What a monitor shows. `unknown` until its first confirmed outcome; `paused` while
    paused (no checks run, so paused time is out of uptime) and `maintenance` inside a
    maintenance window (its checks still count toward uptime). Both are shown over the
    stored state, which the state machine goes on deciding underneath."""

    UNKNOWN = "unknown"
    UP = "up"
    DEGRADED = "degraded"
    DOWN = "down"
    PAUSED = "paused"
    MAINTENANCE = "maintenance"


class Source(StrEnum):
    """Where a monitor is defined: the API, or the monitors file (read-only over the API)."""

    API = "api"
    FILE = "file"


# Severity, to find an incident's worst state.
SEVERITY: Final[dict[str, int]] = {"up": 0, "unknown": 0, "degraded": 1, "down": 2}

# Defaults a monitor gets when it names none (the issue's; settings give the interval).
DEFAULT_FAILURE_THRESHOLD: Final = 3
DEFAULT_SUCCESS_THRESHOLD: Final = 2
