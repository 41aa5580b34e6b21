"""What can go wrong with a monitor definition, in words the API turns into status codes."""

from __future__ import annotations

from typing import Any


class MonitorNotFound(LookupError):
    """No monitor with that id or slug (404)."""

    def __init__(self, ref: str) -> None:
        super().__init__(f"no monitor with id or slug {ref!r}")
        self.ref = ref


class MonitorConflict(ValueError):
    """The change clashes with another monitor or with where this one comes from (409);
    `field` names what clashes."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class MonitorNotScheduled(ValueError):
    """A paused monitor (or one the settings refuse since it was written) is not checked,
    not even on demand (409)."""


class MonitorsFileError(ValueError):
    """The monitors file cannot be used; nothing changed. `errors` name the monitor (index
    and name) and the field, as `loc` and `msg`."""

    def __init__(self, path: str, errors: list[dict[str, Any]]) -> None:
        lines = "; ".join(f"{error['where']}: {error['msg']}" for error in errors[:10])
        super().__init__(f"monitors file {path}: {lines}")
        self.path = path
        self.errors = errors


class NoMonitorsFile(RuntimeError):
    """Reload asked for, but the setting monitors_file names no file (409)."""
