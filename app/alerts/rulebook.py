"""Alert rules and maintenance windows, read and written for the API (the facade's half that
decides who hears and when not): rules name existing channels; windows are checked whole."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row

from app.alerts import admin, maintenance
from app.alerts.errors import Conflict, Invalid, NotFound
from app.alerts.rows import Rows
from app.db.schema import alert_rules, channels, maintenance_windows, monitors
from app.schemas.alerts import (
    AlertRuleCreate,
    AlertRulePatch,
    AlertRulePublic,
    MaintenanceCreate,
    MaintenancePublic,
)


class RuleBook(Rows):
    # --- rules ------------------------------------------------------------------------------
    def create_rule(self, rule: AlertRuleCreate) -> AlertRulePublic:
        self._known_channels(rule.channels)
        values = rule.model_dump()
        rule_id = self._unique(lambda c: admin.add(c, alert_rules, values), "a rule with that name")
        return self.rule(str(rule_id))

    def update_rule(self, ref: str, patch: AlertRulePatch) -> AlertRulePublic:
        row = self._editable_rule(ref)
        values = patch.model_dump(exclude_unset=True)
        for required in ("name", "match_labels", "channels", "on_down", "on_degraded"):
            if required in values and values[required] is None:
                raise Invalid(required, "may not be null")
        if "send_on_resolved" in values and values["send_on_resolved"] is None:
            raise Invalid("send_on_resolved", "may not be null")
        if values.get("channels") is not None:
            self._known_channels(values["channels"])
        self._unique(lambda c: admin.change(c, alert_rules, row.id, values), "that name")
        return self.rule(str(row.id))

    def delete_rule(self, ref: str) -> None:
        row = self._editable_rule(ref)
        self._write(lambda c: admin.remove(c, alert_rules, row.id))

    def _editable_rule(self, ref: str) -> Row[Any]:
        row = self._get(alert_rules, ref, "alert rule")
        if row.source == "file":
            raise Conflict(
                f"the alert rule {row.name!r} comes from the monitors file: edit it there"
            )
        return row

    def rule(self, ref: str) -> AlertRulePublic:
        return AlertRulePublic.model_validate(self._get(alert_rules, ref, "alert rule")._asdict())

    def rules(self, offset: int, limit: int) -> list[AlertRulePublic]:
        rows = self._page(alert_rules, offset, limit)
        return [AlertRulePublic.model_validate(r._asdict()) for r in rows]

    def _known_channels(self, slugs: list[str]) -> None:
        with self._database.engine.connect() as connection:
            found = set(
                connection.execute(
                    channels.select()
                    .with_only_columns(channels.c.slug)
                    .where(channels.c.slug.in_(slugs))
                ).scalars()
            )
        missing = [s for s in slugs if s not in found]
        if missing:
            raise Invalid("channels", f"no channel with slug {missing[0]!r}")

    # --- maintenance windows ----------------------------------------------------------------
    def create_window(self, window: MaintenanceCreate) -> MaintenancePublic:
        values = self._checked_window(window)
        window_id = self._write(lambda c: admin.add(c, maintenance_windows, values))
        return self.window(str(window_id))

    def replace_window(self, ref: str, window: MaintenanceCreate) -> MaintenancePublic:
        row = self._get(maintenance_windows, ref, "maintenance window")
        values = self._checked_window(window)
        self._write(lambda c: admin.change(c, maintenance_windows, row.id, values))
        return self.window(str(row.id))

    def _checked_window(self, window: MaintenanceCreate) -> dict[str, Any]:
        values = window.model_dump()
        reason = maintenance.check_window(
            window.starts_at,
            window.ends_at,
            window.weekdays,
            window.start_time,
            window.duration_s,
            window.timezone,
        )
        if reason is not None:
            raise Invalid("body", reason)
        if window.monitor_id is not None:
            try:
                self._get(monitors, str(window.monitor_id), "monitor")
            except NotFound as exc:
                raise Invalid("monitor_id", str(exc)) from None
        return values

    def delete_window(self, ref: str) -> None:
        row = self._get(maintenance_windows, ref, "maintenance window")
        self._write(lambda c: admin.remove(c, maintenance_windows, row.id))

    def window(self, ref: str) -> MaintenancePublic:
        return self._window_public(self._get(maintenance_windows, ref, "maintenance window"))

    def windows(self, offset: int, limit: int) -> list[MaintenancePublic]:
        return [self._window_public(r) for r in self._page(maintenance_windows, offset, limit)]

    def _window_public(self, row: Row[Any]) -> MaintenancePublic:
        until = maintenance.window_from(row).active_until(self._clock())
        return MaintenancePublic.model_validate({**row._asdict(), "active_until": until})
