"""What the alerts API takes and answers: channels (secrets write-only), alert rules,
maintenance windows, and the outbox's alerts with their delivery attempts."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

Name = Field(min_length=1, max_length=200)
Labels = dict[str, str]
AlertStatus = Literal["pending", "sending", "sent", "failed", "held", "silenced"]


class ChannelCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Name
    config: dict[str, Any] = Field(
        description="The channel's configuration, by `kind` (webhook, slack, discord, teams, "
        "email). Secrets in it (webhook URLs, HMAC secrets, SMTP passwords) are write-only.",
        examples=[{"kind": "webhook", "url": "https://hooks.example/urlhealth", "secret": "s3"}],
    )


class ChannelPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, min_length=1, max_length=200)
    config: dict[str, Any] | None = Field(
        None,
        description="Merged over the stored configuration (a JSON merge patch): fields not "
        "named keep their values, secrets included.",
    )


class ChannelPublic(BaseModel):
    id: int
    name: str
    slug: str
    kind: str
    source: Literal["api", "file"]
    config: dict[str, Any] = Field(description="The configuration, secrets masked.")
    created_at: datetime
    updated_at: datetime


class ChannelsPublic(BaseModel):
    channels: list[ChannelPublic]
    offset: int
    limit: int


class ChannelTestPublic(BaseModel):
    ok: bool
    status_code: int | None = None
    error: str | None = None
    key: str = Field(description="The test message's idempotency key.")


class AlertRuleCreate(BaseModel):
    """Defaults for the monitors of a group and/or carrying labels (a rule naming neither
    covers every monitor). A monitor's own `alerts` override them field by field."""

    model_config = ConfigDict(extra="forbid")

    name: str = Name
    match_group: str | None = Field(None, max_length=200)
    match_labels: Labels = Field(default_factory=dict)
    channels: list[str] = Field(description="Channel slugs.", max_length=50)
    on_down: bool = True
    on_degraded: bool = False
    send_on_resolved: bool = True
    reminder_interval_s: float | None = Field(None, ge=60, description="While down; null: none.")


class AlertRulePatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, min_length=1, max_length=200)
    match_group: str | None = Field(None, max_length=200)
    match_labels: Labels | None = None
    channels: list[str] | None = Field(None, max_length=50)
    on_down: bool | None = None
    on_degraded: bool | None = None
    send_on_resolved: bool | None = None
    reminder_interval_s: float | None = Field(None, ge=60)


class AlertRulePublic(AlertRuleCreate):
    model_config = ConfigDict(extra="ignore")

    id: int
    source: Literal["api", "file"] = Field("api", description="`file`: read-only over the API.")
    created_at: datetime
    updated_at: datetime


class AlertRulesPublic(BaseModel):
    rules: list[AlertRulePublic]
    offset: int
    limit: int


class MaintenanceCreate(BaseModel):
    """One-off (`starts_at`, `ends_at`) or recurring (`weekdays` 0 Monday..6, `start_time`
    "HH:MM" local to `timezone`, `duration_s`); for `monitor_id`, or a group and/or labels
    (naming none: every monitor)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Name
    monitor_id: int | None = None
    match_group: str | None = Field(None, max_length=200)
    match_labels: Labels = Field(default_factory=dict)
    starts_at: AwareDatetime | None = None
    ends_at: AwareDatetime | None = None
    weekdays: list[int] | None = Field(None, max_length=7)
    start_time: str | None = Field(None, pattern=r"^\d{2}:\d{2}$", examples=["02:00"])
    duration_s: float | None = Field(None, gt=0, le=7 * 86_400)
    timezone: str | None = Field(None, max_length=64, examples=["Europe/Paris"])


class MaintenancePublic(MaintenanceCreate):
    model_config = ConfigDict(extra="ignore")

    id: int
    active_until: datetime | None = Field(None, description="Set while the window is active.")
    created_at: datetime
    updated_at: datetime


class MaintenanceListPublic(BaseModel):
    windows: list[MaintenancePublic]
    offset: int
    limit: int


class AttemptPublic(BaseModel):
    at: datetime
    ok: bool
    status_code: int | None
    error: str | None
    duration_ms: float


class AlertPublic(BaseModel):
    id: int
    key: str = Field(description="The idempotency key receivers see.")
    kind: str = Field(description="down, degraded, resolved, reminder or test.")
    monitor_id: int | None
    monitor_slug: str | None
    transition: str | None = Field(None, examples=["up -> down"])
    channel: str = Field(description="The channel's slug.")
    status: AlertStatus
    attempts: int
    last_error: str | None
    created_at: datetime
    next_attempt_at: datetime | None
    sent_at: datetime | None
    tried: list[AttemptPublic] = Field(description="Each delivery attempt, oldest first.")


class AlertsPublic(BaseModel):
    alerts: list[AlertPublic] = Field(description="Newest first.")
    offset: int
    limit: int


class MonitorAlerts(BaseModel):
    """A monitor's own alert settings (its `alerts` field): each field set wins over what its
    group's and labels' rules say; `{"channels": []}` silences the monitor."""

    model_config = ConfigDict(extra="forbid")

    channels: list[str] | None = Field(None, max_length=50, description="Channel slugs.")
    on_down: bool | None = None
    on_degraded: bool | None = None
    send_on_resolved: bool | None = None
    reminder_interval_s: float | None = Field(None, ge=60, description="null: no reminders.")

    def stored(self) -> dict[str, Any]:
        """What monitors.alerts keeps: the fields given (a null reminder means none)."""
        return self.model_dump(exclude_unset=True)
