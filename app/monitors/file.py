"""The monitors file (TOML, named by the setting monitors_file): monitors as code.

    [defaults]                 # optional: under every monitor (a monitor's own keys win;
    interval_s = 30            # `options` tables are merged key by key, headers too)
    group = "web"
    options = { timeout_s = 5 }

    [modules.http_2xx]         # check profiles for /probe?module=http_2xx (JobOptions)
    expected_status = "200-299"

    [[monitors]]               # the fields of POST /v1/monitors; a `slug` is recommended:
    name = "Home"              # the slug is the monitor's identity across reloads
    slug = "home"
    url = "https://example.org/"

    [[channels]] and [[alert_rules]]: see app/alerts/filetables.py (checked with the rest).
    [[status_pages]]: see app/monitors/pages.py (checked with the rest too).

The file is checked as a whole before anything changes: every error names the monitor (its
index and name) and the field, and a file with any error changes nothing. Errors never echo
a value: a URL or header value in them may be secret.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import Connection

from app.config import Settings
from app.inputs import InputError, resolve_options
from app.monitors.definition import Checked, Definition, check
from app.monitors.errors import MonitorsFileError
from app.monitors.pages import StatusPage
from app.monitors.pages import parse as parse_pages
from app.monitors.slugs import slugify
from app.schemas.jobs import JobOptions
from app.schemas.monitors import MAX_THRESHOLD, MonitorCreate

MAX_FILE_BYTES = 16 * 1024 * 1024
MAX_MONITORS = 100_000


class Defaults(BaseModel):
    model_config = ConfigDict(extra="forbid")

    interval_s: float | None = Field(None, gt=0, allow_inf_nan=False)
    group: str | None = None
    paused: bool | None = None
    failure_threshold: int | None = Field(None, ge=1, le=MAX_THRESHOLD)
    success_threshold: int | None = Field(None, ge=1, le=MAX_THRESHOLD)
    labels: dict[str, str] | None = None
    options: dict[str, Any] | None = None


class AlertTables(Protocol):
    """The file's `[[channels]]` and `[[alert_rules]]` tables, checked and synced by the
    alerts package (app/alerts/filetables.py), handed in by the composition root so that
    monitors do not import alerts."""

    def check(self, channel_tables: Any, rule_tables: Any, errors: list[dict[str, Any]]) -> Any:
        """What to sync; appends each problem (table, index, field) to `errors`."""
        ...

    def write(
        self, checked: Any, monitor_channels: Sequence[tuple[int, str, Sequence[str]]]
    ) -> Callable[[Connection], list[dict[str, Any]]]:
        """The sync for the reload's transaction: problems (nothing written), or [].
        `monitor_channels`: each file monitor's own alert channels (index, name, slugs)."""
        ...

    def unknown_channels(self, slugs: Sequence[str]) -> list[str]:
        """The slugs no channel has (a monitor's own alert channels, over the API)."""
        ...


@dataclass(frozen=True, slots=True)
class MonitorsFile:
    """A file that passed every check: its monitors (each with its slug settled), its
    check profiles and its status pages (by slug)."""

    monitors: list[Checked] = field(default_factory=list)
    modules: dict[str, JobOptions] = field(default_factory=dict)
    alerting: Any = None  # AlertTables.check's answer, when the file was read with them
    status_pages: dict[str, StatusPage] = field(default_factory=dict)


def load(path: Path, settings: Settings, alerts: AlertTables | None = None) -> MonitorsFile:
    """Read and check the file; MonitorsFileError listing every problem."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise _failure(path, [_file_error(f"cannot read it: {exc.strerror or exc}")]) from None
    if len(raw) > MAX_FILE_BYTES:
        raise _failure(path, [_file_error(f"larger than {MAX_FILE_BYTES} bytes")])
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise _failure(path, [_file_error(f"not UTF-8: {exc.reason}")]) from None
    except tomllib.TOMLDecodeError as exc:
        raise _failure(path, [_file_error(f"not valid TOML: {exc}")]) from None
    errors: list[dict[str, Any]] = []
    loaded = parse(data, settings, errors, alerts)
    if errors:
        raise _failure(path, errors)
    return loaded


def parse(
    data: dict[str, Any],
    settings: Settings,
    errors: list[dict[str, Any]],
    alerts: AlertTables | None = None,
) -> MonitorsFile:
    tables = ("defaults", "modules", "monitors", "status_pages") + (
        ("channels", "alert_rules") if alerts else ()
    )
    for key in data:
        if key not in tables:
            errors.append(_error((key,), None, f"unknown table: expected {', '.join(tables)}"))
    alerting = None
    if alerts is not None:
        alerting = alerts.check(data.get("channels"), data.get("alert_rules"), errors)
    status_pages = parse_pages(data.get("status_pages"), errors)
    defaults = _defaults(data.get("defaults", {}), errors)
    modules = _modules(data.get("modules", {}), settings, errors)
    entries = data.get("monitors", [])
    if not isinstance(entries, list) or len(entries) > MAX_MONITORS:
        msg = f"must be an array of at most {MAX_MONITORS} tables ([[monitors]])"
        errors.append(_error(("monitors",), None, msg))
        entries = []
    monitors: list[Checked] = []
    names: dict[str, int] = {}
    slugs: dict[str, int] = {}
    for index, entry in enumerate(entries):
        checked = _monitor(index, entry, defaults, settings, errors)
        if checked is None:
            continue
        definition = checked.definition
        for what, value, seen in (
            ("name", definition.name, names),
            ("slug", definition.slug, slugs),
        ):
            assert value is not None
            if value in seen:
                msg = f"{what} {value!r} is used by monitors[{seen[value]}] too"
                errors.append(_error(("monitors", index, what), definition.name, msg))
            seen.setdefault(value, index)
        monitors.append(checked)
    return MonitorsFile(monitors, modules, alerting, status_pages)


def own_channels(definitions: Sequence[Definition]) -> list[tuple[int, str, list[str]]]:
    """Each monitor's own alert channels (index, name, slugs), for AlertTables.write."""
    return [
        (index, d.name, list(d.alerts["channels"]))
        for index, d in enumerate(definitions)
        if d.alerts and d.alerts.get("channels")
    ]


def _defaults(data: Any, errors: list[dict[str, Any]]) -> Defaults:
    try:
        return Defaults.model_validate(data)
    except ValidationError as exc:
        for e in exc.errors(include_url=False, include_input=False):
            errors.append(_error(("defaults", *e["loc"]), None, e["msg"], e["type"]))
        return Defaults()


def _modules(data: Any, settings: Settings, errors: list[dict[str, Any]]) -> dict[str, JobOptions]:
    if not isinstance(data, dict):
        errors.append(_error(("modules",), None, "must be a table of [modules.<name>] tables"))
        return {}
    modules: dict[str, JobOptions] = {}
    for name, options in data.items():
        try:
            modules[name] = JobOptions.model_validate(options)
            resolve_options(modules[name], settings)
        except ValidationError as exc:
            for e in exc.errors(include_url=False, include_input=False):
                errors.append(_error(("modules", name, *e["loc"]), None, e["msg"], e["type"]))
        except InputError as exc:
            for problem in exc.errors:
                # ("body", "options", ...) of a job is the module itself here
                loc = ("modules", name, *problem["loc"][2:])
                errors.append(_error(loc, None, problem["msg"], problem["type"]))
    return modules


def _monitor(
    index: int, entry: Any, defaults: Defaults, settings: Settings, errors: list[dict[str, Any]]
) -> Checked | None:
    if not isinstance(entry, dict):
        errors.append(_error(("monitors", index), None, "must be a table"))
        return None
    name = entry.get("name") if isinstance(entry.get("name"), str) else None
    merged = _under_defaults(entry, defaults)
    try:
        create = MonitorCreate.model_validate(merged)
    except ValidationError as exc:
        for e in exc.errors(include_url=False, include_input=False):
            errors.append(_error(("monitors", index, *e["loc"]), name, e["msg"], e["type"]))
        return None
    if create.slug is None:  # the slug is the identity across reloads: settled here
        create = create.model_copy(update={"slug": slugify(create.name)})
    try:
        return check(create, settings)
    except InputError as exc:
        for problem in exc.errors:
            loc = ("monitors", index, *problem["loc"][1:])
            errors.append(_error(loc, name, problem["msg"], problem["type"]))
        return None


def _under_defaults(entry: dict[str, Any], defaults: Defaults) -> dict[str, Any]:
    merged = {k: v for k, v in defaults.model_dump(exclude_none=True).items() if k != "options"}
    if defaults.labels and isinstance(entry.get("labels"), dict):
        merged["labels"] = {**defaults.labels, **entry["labels"]}
        entry = {k: v for k, v in entry.items() if k != "labels"}
    merged.update(entry)
    if defaults.options:
        own = entry.get("options", {})
        if isinstance(own, dict):
            options = {**defaults.options, **own}
            for key in ("headers", "assertions"):
                base, mine = defaults.options.get(key), own.get(key)
                if isinstance(base, dict) and isinstance(mine, dict):
                    options[key] = {**base, **mine}
            merged["options"] = options
    return merged


def _error(
    loc: tuple[Any, ...], monitor: str | None, msg: str, kind: str = "value_error"
) -> dict[str, Any]:
    """`where` reads `monitors[2] 'Home': options.timeout_s`: the monitor, then the field."""
    head, rest = loc[:1], loc[1:]
    if loc[:1] == ("monitors",) and len(loc) > 1 and isinstance(loc[1], int):
        head, rest = loc[:2], loc[2:]
    where = f"{head[0]}" + "".join(f"[{part}]" for part in head[1:])
    if monitor is not None:
        where += f" {monitor!r}"
    if rest:
        where += ": " + ".".join(str(part) for part in rest)
    return {"type": kind, "loc": list(loc), "msg": msg, "monitor": monitor, "where": where}


def _file_error(msg: str) -> dict[str, Any]:
    return {"type": "file", "loc": ["file"], "msg": msg, "monitor": None, "where": "file"}


def _failure(path: Path, errors: list[dict[str, Any]]) -> MonitorsFileError:
    return MonitorsFileError(str(path), errors)
