"""What the monitor history API answers: results, incidents, uptime, the dashboard summary."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Window = Literal["1h", "24h", "7d", "30d", "90d", "365d"]
WINDOWS: tuple[str, ...] = ("1h", "24h", "7d", "30d", "90d", "365d")


class PhasesMs(BaseModel):
    model_config = ConfigDict(frozen=True)

    dns: float | None = Field(None, description="Resolving the host name.")
    connect: float | None = Field(None, description="TCP connect.")
    tls: float | None = Field(None, description="TLS handshake.")
    ttfb: float | None = Field(None, description="Request sent to first response byte.")
    transfer: float | None = Field(None, description="Reading the body.")


class MonitorResultPublic(BaseModel):
    """One check of a monitor, as kept: compact, with the full result only for failures and
    the results that confirmed a state change (URLs there without credentials or query)."""

    model_config = ConfigDict(frozen=True)

    at: datetime = Field(description="When the check started (UTC, millisecond precision).")
    outcome: Literal["up", "degraded", "down"]
    status_code: int | None = Field(None, description="Final HTTP status, if any answer came.")
    latency_ms: float | None = Field(None, description="The check's elapsed time.")
    timings_ms: PhasesMs = Field(description="Phases of the final hop.")
    error_kind: str | None = Field(None, description="Why it was not ok, if it was not.")
    detail: dict[str, Any] | None = Field(
        None, description="The full result, for failures and state changes only."
    )


class MonitorResultsPublic(BaseModel):
    results: list[MonitorResultPublic] = Field(description="Newest first.")
    next_cursor: str | None = Field(
        None, description="Pass as `cursor` for the next (older) page; null on the last page."
    )


class IncidentEvent(BaseModel):
    model_config = ConfigDict(frozen=True)

    at: datetime = Field(description="When the change began (its streak's first result).")
    from_state: str
    to_state: str


class IncidentPublic(BaseModel):
    """One confirmed stretch away from `up`: from the first result of the streak that
    confirmed it to the first up of the streak that ended it."""

    model_config = ConfigDict(frozen=True)

    id: int
    monitor_id: int
    started_at: datetime
    ended_at: datetime | None = Field(None, description="Null while it lasts.")
    duration_s: float | None = Field(None, description="Null while it lasts.")
    worst_state: Literal["degraded", "down"]
    first_result: dict[str, Any] | None = Field(None, description="The result that began it.")
    events: list[IncidentEvent] = Field(description="Its state changes, oldest first.")


class IncidentsPublic(BaseModel):
    incidents: list[IncidentPublic] = Field(description="Newest first (an open one is newest).")
    offset: int
    limit: int


class LatencyPublic(BaseModel):
    """Over the window's up and degraded checks (a down check's time is mostly its
    timeout). Percentiles come from the rollups' histograms: each lies in the same bucket as
    the exact value (buckets ~19 % wide)."""

    model_config = ConfigDict(frozen=True)

    count: int
    mean_ms: float | None = None
    min_ms: float | None = None
    max_ms: float | None = None
    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None


class UptimePublic(BaseModel):
    """A window: the last N whole hours (1h, 24h) or UTC days (7d…365d) before the current
    one, plus the current one so far. Paused time has no checks, so it does not count."""

    model_config = ConfigDict(frozen=True)

    monitor_id: int
    window: str
    start: datetime
    end: datetime
    checks: int
    up: int
    degraded: int
    down: int
    uptime_pct: float | None = Field(
        None, description="Checks up or degraded (it answered correctly), in %; null: none."
    )
    degraded_pct: float | None = None
    down_pct: float | None = None
    latency: LatencyPublic
    incidents: int = Field(description="Incidents overlapping the window.")
    mttr_s: float | None = Field(
        None, description="Mean time to recovery of the incidents that ended in the window."
    )


class OpenIncidentPublic(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: int
    started_at: datetime
    worst_state: str


class MonitorSummaryPublic(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: int
    slug: str
    name: str
    group: str | None
    state: str = Field(
        description="unknown, up, degraded or down (the confirmed state); `maintenance` inside "
        "a maintenance window (the confirmed state goes on underneath)."
    )
    paused: bool
    pending_outcome: str | None = Field(None, description="An unconfirmed outcome, if any.")
    pending_count: int
    uptime_24h_pct: float | None = Field(None, description="As in `uptime?window=24h`.")
    last_checked_at: datetime | None
    incident: OpenIncidentPublic | None


class MonitorsSummaryPublic(BaseModel):
    monitors: list[MonitorSummaryPublic]
