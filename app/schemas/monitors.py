"""Monitors: what a client writes (MonitorCreate, and PATCH as a merge patch of it) and what it
reads back (MonitorPublic). Secrets are write-only: a read shows the URL with its credentials
and query values as `***`, and header values as `***`."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.monitors.model import (
    DEFAULT_FAILURE_THRESHOLD,
    DEFAULT_SUCCESS_THRESHOLD,
    MonitorState,
    Outcome,
    Source,
)
from app.schemas.alerts import MonitorAlerts
from app.schemas.jobs import JobOptions
from app.schemas.results import ErrorKind

MAX_LABELS = 32
MAX_LABEL_VALUE = 200
# Label names as Prometheus spells them, so they can become metric labels unchanged.
LABEL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
MAX_THRESHOLD = 100
MAX_INTERVAL_S = 86_400.0  # a day: longer is not monitoring


def _text(value: str, what: str) -> str:
    if value != value.strip():
        raise ValueError(f"{what} must not start or end with whitespace")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise ValueError(f"{what} must not contain control characters")
    return value


class MonitorCreate(BaseModel):
    """A monitor as written: to `POST /v1/monitors`, in the monitors file, and (as a merge
    patch of it) to `PATCH /v1/monitors/{ref}`."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "Example home page",
                    "url": "https://example.org/",
                    "interval_s": 60,
                    "group": "web",
                    "labels": {"team": "site"},
                    "options": {"timeout_s": 5, "expected_status": "200-299"},
                }
            ]
        },
    )

    name: str = Field(min_length=1, max_length=200, description="Unique name.")
    slug: str | None = Field(
        None,
        max_length=64,
        description="Stable short id for URLs, badges and metric labels: lowercase a-z, 0-9 "
        "and `-`. Derived from the name when absent (a suffix `-2`, `-3` on a clash).",
        examples=["example-home"],
    )
    url: str = Field(
        description="http or https URL to check, without credentials (send them in an "
        "`Authorization` header). Its query values are shown as `***` in every read.",
        examples=["https://example.org/health"],
    )
    options: JobOptions = Field(
        default_factory=JobOptions,
        description="Check options, as for a job. Header values are write-only.",
    )
    interval_s: float | None = Field(
        None,
        gt=0,
        le=MAX_INTERVAL_S,
        allow_inf_nan=False,
        description="Seconds between checks (start to start). Default and minimum are "
        "settings (monitor_default_interval_s, monitor_min_interval_s).",
        examples=[60],
    )
    group: str | None = Field(None, min_length=1, max_length=200, description="A group name.")
    labels: dict[str, str] = Field(
        default_factory=dict,
        description=f"At most {MAX_LABELS} labels; names as Prometheus label names.",
        examples=[{"team": "site"}],
    )
    paused: bool = Field(False, description="Not checked while paused.")
    failure_threshold: int = Field(
        DEFAULT_FAILURE_THRESHOLD,
        ge=1,
        le=MAX_THRESHOLD,
        description="Failures in a row that confirm a change away from up.",
    )
    success_threshold: int = Field(
        DEFAULT_SUCCESS_THRESHOLD,
        ge=1,
        le=MAX_THRESHOLD,
        description="Successes in a row that confirm a recovery.",
    )
    alerts: MonitorAlerts | None = Field(
        None,
        description="The monitor's own alert settings: each field given wins over its group's "
        'and labels\' alert rules (`{"channels": []}` silences it). In a PATCH, fields are '
        "merged (a null removes one: it inherits again); `alerts: null` removes them all.",
        examples=[{"channels": ["ops"], "on_degraded": True}],
    )

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _text(value, "the name")

    @field_validator("group")
    @classmethod
    def _group(cls, value: str | None) -> str | None:
        return None if value is None else _text(value, "the group")

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: dict[str, str]) -> dict[str, str]:
        if len(value) > MAX_LABELS:
            raise ValueError(f"at most {MAX_LABELS} labels")
        for name, text in value.items():
            if not LABEL_NAME.match(name):
                raise ValueError(f"label name {name!r} must match {LABEL_NAME.pattern}")
            if len(text) > MAX_LABEL_VALUE:
                raise ValueError(f"label {name!r}: at most {MAX_LABEL_VALUE} characters")
            _text(text, f"label {name!r}")
        return value


class Pending(BaseModel):
    """An outcome seen but not yet confirmed by the thresholds."""

    outcome: Outcome = Field(description="The unconfirmed outcome.")
    count: int = Field(description="Times in a row it was seen.")


class LastError(BaseModel):
    kind: ErrorKind
    message: str = Field(description="Human-readable detail, the URL's secrets masked.")


class LastResult(BaseModel):
    """The latest check, in short (the full results are in the monitor's history)."""

    outcome: Outcome
    status_code: int | None = None
    elapsed_ms: float | None = None
    error: LastError | None = None


class MonitorPublic(BaseModel):
    id: int = Field(description="Numeric id; `/v1/monitors/{id}` or `/v1/monitors/{slug}`.")
    slug: str
    name: str
    source: Source = Field(description="`api`, or `file` (read-only over the API).")
    url: str = Field(
        description="The URL with credentials and query values shown as `***`.",
        examples=["https://example.org/health?token=***"],
    )
    options: JobOptions = Field(description="Check options as written; header values `***`.")
    interval_s: float
    group: str | None
    labels: dict[str, str]
    paused: bool
    failure_threshold: int
    success_threshold: int
    alerts: dict[str, Any] | None = Field(
        None, description="The monitor's own alert settings as written (null: its rules')."
    )
    generation: int = Field(description="Bumped each time the URL or options change.")
    state: MonitorState = Field(
        description="`paused` while paused, `maintenance` inside a maintenance window, else "
        "the confirmed state."
    )
    state_since: datetime | None = None
    pending: Pending | None = None
    last_checked_at: datetime | None = None
    last_result: LastResult | None = None
    next_due_at: datetime | None = None
    created_at: datetime
    updated_at: datetime


class MonitorsPublic(BaseModel):
    monitors: list[MonitorPublic] = Field(description="By id (creation order).")
    count: int = Field(description="Monitors matching the filters.")
    offset: int
    limit: int


class ReloadReport(BaseModel):
    """What a reload of the monitors file changed, by slug."""

    created: list[str] = Field(default_factory=list)
    updated: list[str] = Field(default_factory=list)
    deleted: list[str] = Field(default_factory=list)
    unchanged: list[str] = Field(default_factory=list)


StateFilter = Literal["unknown", "up", "degraded", "down", "paused"]
