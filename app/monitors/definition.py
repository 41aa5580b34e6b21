"""A monitor's definition: checked against the settings (MonitorCreate in, Definition out),
kept as a row (MonitorRecord), shown masked (MonitorPublic) and handed to the scheduler.

What is stored is the definition as written (options as the client sent them, unset fields
left out), so a merge patch applies to what the client wrote, and defaults that change in
the settings apply to stored monitors too.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx

from app.config import Settings
from app.engine.options import CheckOptions
from app.inputs import InputError, prepare_urls, resolve_options
from app.monitors.masking import mask_data, mask_headers, mask_url, secrets_of
from app.monitors.model import MonitorState, Source
from app.monitors.scheduled import Scheduled
from app.monitors.slugs import slug_problem
from app.schemas.jobs import JobOptions
from app.schemas.monitors import LastResult, MonitorCreate, MonitorPublic, Pending

# The fields of MonitorCreate, as stored: `group` is the column `group_name`.
FIELDS = (
    "name",
    "slug",
    "url",
    "options",
    "interval_s",
    "group",
    "labels",
    "paused",
    "failure_threshold",
    "success_threshold",
    "alerts",
)


@dataclass(frozen=True, slots=True)
class Definition:
    """A checked definition; `slug` None means "derive one from the name"."""

    name: str
    slug: str | None
    url: str
    options: dict[str, Any]  # JobOptions as written
    interval_s: float
    group: str | None
    labels: dict[str, str]
    paused: bool
    failure_threshold: int
    success_threshold: int
    alerts: dict[str, Any] | None = None  # MonitorAlerts.stored(): the fields given

    def columns(self) -> dict[str, Any]:
        """The definition's columns (not the slug: it is settled where it is written)."""
        return {
            "name": self.name,
            "url": self.url,
            "options": self.options,
            "interval_s": self.interval_s,
            "group_name": self.group,
            "labels": self.labels,
            "paused": self.paused,
            "failure_threshold": self.failure_threshold,
            "success_threshold": self.success_threshold,
            "alerts": self.alerts,
        }


@dataclass(frozen=True, slots=True)
class MonitorRecord:
    """One row of `monitors`."""

    id: int
    slug: str
    name: str
    source: Source
    url: str
    options: dict[str, Any]
    interval_s: float
    group: str | None
    labels: dict[str, str]
    paused: bool
    failure_threshold: int
    success_threshold: int
    generation: int
    state: str
    state_since: datetime | None
    pending_outcome: str | None
    pending_count: int
    last_checked_at: datetime | None
    last_result: bytes | None
    next_due_at: datetime | None
    created_at: datetime
    updated_at: datetime
    alerts: dict[str, Any] | None = None

    @classmethod
    def from_row(cls, row: Any) -> MonitorRecord:
        m = row._mapping
        return cls(
            id=m["id"],
            slug=m["slug"],
            name=m["name"],
            source=Source(m["source"]),
            url=m["url"],
            options=dict(m["options"] or {}),
            interval_s=m["interval_s"],
            group=m["group_name"],
            labels=dict(m["labels"] or {}),
            paused=bool(m["paused"]),
            failure_threshold=m["failure_threshold"],
            success_threshold=m["success_threshold"],
            generation=m["generation"],
            state=m["state"],
            state_since=m["state_since"],
            pending_outcome=m["pending_outcome"],
            pending_count=m["pending_count"] or 0,
            last_checked_at=m["last_checked_at"],
            last_result=m["last_result"],
            next_due_at=m["next_due_at"],
            created_at=m["created_at"],
            updated_at=m["updated_at"],
            alerts=m.get("alerts"),
        )

    def written(self) -> dict[str, Any]:
        """The definition as written, secrets included: what a merge patch applies to."""
        return {
            "name": self.name,
            "slug": self.slug,
            "url": self.url,
            "options": json.loads(json.dumps(self.options)),  # a copy the patch may change
            "interval_s": self.interval_s,
            "group": self.group,
            "labels": dict(self.labels),
            "paused": self.paused,
            "failure_threshold": self.failure_threshold,
            "success_threshold": self.success_threshold,
            "alerts": None if self.alerts is None else dict(self.alerts),
        }

    def definition(self) -> Definition:
        return Definition(
            self.name,
            self.slug,
            self.url,
            self.options,
            self.interval_s,
            self.group,
            self.labels,
            self.paused,
            self.failure_threshold,
            self.success_threshold,
            self.alerts,
        )

    def secrets(self) -> list[str]:
        return secrets_of(self.url, self.options.get("headers"))


@dataclass(frozen=True, slots=True)
class Checked:
    """A definition with what the engine needs to run it."""

    definition: Definition
    options: CheckOptions
    parsed: httpx.URL


def check(create: MonitorCreate, settings: Settings) -> Checked:
    """The definition, checked against the settings; InputError naming each bad field."""
    errors: list[dict[str, Any]] = []
    interval = create.interval_s
    if interval is None:
        interval = settings.monitor_default_interval_s
    elif interval < settings.monitor_min_interval_s:
        msg = f"must be at least {settings.monitor_min_interval_s} (setting monitor_min_interval_s)"
        errors.append(_error("interval_s", msg, interval, "greater_than_equal"))
    if create.slug is not None:
        problem = slug_problem(create.slug)
        if problem:
            errors.append(_error("slug", problem, create.slug, "slug_invalid"))
    parsed: httpx.URL | None = None
    try:
        parsed = prepare_urls([create.url], settings, 1).parsed[0]
    except InputError as exc:
        errors += [{**e, "loc": ("body", "url")} for e in exc.errors]
    engine: CheckOptions | None = None
    try:
        engine, _public = resolve_options(create.options, settings)
    except InputError as exc:
        errors += exc.errors
    if errors or parsed is None or engine is None:
        raise InputError(errors)
    definition = Definition(
        name=create.name,
        slug=create.slug,
        url=create.url,
        options=create.options.model_dump(mode="json", exclude_none=True),
        interval_s=interval,
        group=create.group,
        labels=dict(create.labels),
        paused=create.paused,
        failure_threshold=create.failure_threshold,
        success_threshold=create.success_threshold,
        alerts=None if create.alerts is None else create.alerts.stored(),
    )
    return Checked(definition, engine, parsed)


def _error(field: str, msg: str, value: Any, kind: str) -> dict[str, Any]:
    return {"type": kind, "loc": ("body", field), "msg": msg, "input": value}


def scheduled(record: MonitorRecord, settings: Settings) -> Scheduled:
    """What the scheduler runs; InputError if the stored definition no longer passes the
    settings (a limit lowered since it was written)."""
    options, _public = resolve_options(JobOptions.model_validate(record.options), settings)
    parsed = prepare_urls([record.url], settings, 1).parsed[0]
    return Scheduled(
        record.id, record.slug, record.interval_s, record.generation, record.url, options, parsed
    )


def public(record: MonitorRecord, in_maintenance: bool = False) -> MonitorPublic:
    """The monitor as every read shows it: secrets masked; `paused`, else `maintenance`
    inside a maintenance window, over the stored state."""
    options = dict(record.options)
    if "headers" in options:
        options["headers"] = mask_headers(options["headers"])
    pending = None
    if record.pending_outcome and record.pending_count:
        pending = Pending.model_validate(
            {"outcome": record.pending_outcome, "count": record.pending_count}
        )
    return MonitorPublic(
        id=record.id,
        slug=record.slug,
        name=record.name,
        source=record.source,
        url=mask_url(record.url),
        options=JobOptions.model_validate(options),
        interval_s=record.interval_s,
        group=record.group,
        labels=record.labels,
        paused=record.paused,
        failure_threshold=record.failure_threshold,
        success_threshold=record.success_threshold,
        alerts=record.alerts,
        generation=record.generation,
        state=_shown(record, in_maintenance),
        state_since=record.state_since,
        pending=pending,
        last_checked_at=record.last_checked_at,
        last_result=_last_result(record),
        next_due_at=None if record.paused else record.next_due_at,
        created_at=record.created_at,
        updated_at=record.updated_at,
    )


def _shown(record: MonitorRecord, in_maintenance: bool) -> MonitorState:
    if record.paused:
        return MonitorState.PAUSED
    return MonitorState.MAINTENANCE if in_maintenance else MonitorState(record.state)


def _last_result(record: MonitorRecord) -> LastResult | None:
    if not record.last_result:
        return None
    try:
        data = json.loads(record.last_result)
    except ValueError:
        return None
    error = data.get("error")
    if error:
        error = {"kind": error.get("kind"), "message": error.get("message", "")}
    short = {
        "outcome": data.get("outcome"),
        "status_code": data.get("status_code"),
        "elapsed_ms": data.get("elapsed_ms"),
        "error": error,
    }
    return LastResult.model_validate(mask_data(short, record.secrets()))
