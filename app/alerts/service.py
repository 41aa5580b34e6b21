"""The alerts facade the routes and the composition root use: the recorder's hook, the
delivery thread, and channels, rules and maintenance windows read and written (writes through
the writer, reads through the engine). Raises NotFound, Invalid and Conflict; the API maps
them to 404, 422 and 409."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Connection, Row, Table
from sqlalchemy.exc import IntegrityError

from app.alerts import admin, claims, maintenance, outbox, reads
from app.alerts.claims import Claimed
from app.alerts.contract import Senders
from app.alerts.delivery import Delivery
from app.alerts.errors import Conflict, Invalid, NotFound
from app.alerts.outbox import AlertHook
from app.alerts.policy import DeliveryConfig
from app.db.engine import Database
from app.db.schema import alert_rules, channels, maintenance_windows, monitors
from app.db.writer import Writer
from app.schemas.alerts import (
    AlertPublic,
    AlertRuleCreate,
    AlertRulePatch,
    AlertRulePublic,
    ChannelPublic,
    ChannelTestPublic,
    MaintenanceCreate,
    MaintenancePublic,
)

T = TypeVar("T")
WRITE_TIMEOUT_S = 30.0


class Alerts:
    def __init__(
        self,
        database: Database,
        writer: Writer,
        senders: Senders,
        owner: str,
        config: DeliveryConfig = DeliveryConfig(),
        clock: Callable[[], datetime] = outbox.utcnow,
    ) -> None:
        self._database = database
        self._writer = writer
        self._senders = senders
        self._clock = clock
        self.hook = AlertHook(clock)  # the Recorder's on_transition
        self.delivery = Delivery(
            database, writer, senders.send, senders.codec, senders.http, owner, config, clock
        )
        self.hook.notify = self.delivery.nudge

    def start(self) -> Alerts:
        self.delivery.start()
        return self

    def stop(self, timeout_s: float) -> bool:
        return self.delivery.stop(timeout_s)

    # --- channels ---------------------------------------------------------------------------
    def channel_public(self, row: Row[Any]) -> ChannelPublic:
        try:
            shown = self._senders.codec.config(row.config).masked()
        except Exception:  # a config this version cannot read: show none of it
            shown = {"kind": row.kind}
        return ChannelPublic(
            id=row.id,
            name=row.name,
            slug=row.slug,
            kind=row.kind,
            source=row.source,
            config=shown,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )

    def _checked_config(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        try:
            parsed = self._senders.codec.config(raw)
        except Exception as exc:
            raise Invalid("config", str(exc)) from None
        refused = self._senders.validate(parsed)
        if refused is not None:
            raise Invalid("config", refused)
        return dict(raw)

    def create_channel(self, name: str, config: Mapping[str, Any], source: str = "api") -> int:
        raw = self._checked_config(config)
        row = {
            "name": name,
            "slug": admin.slugify(name),
            "kind": str(raw.get("kind")),
            "source": source,
            "config": raw,
        }
        return self._unique(lambda c: admin.add(c, channels, row), "a channel with that name")

    def update_channel(
        self, ref: str, name: str | None, config: Mapping[str, Any] | None
    ) -> ChannelPublic:
        row = self._editable(channels, ref, "channel")
        values: dict[str, Any] = {}
        if name is not None:
            values.update(name=name, slug=admin.slugify(name))
        if config is not None:
            merged = admin.merge_patch(row.config, config)
            values.update(config=self._checked_config(merged), kind=str(merged.get("kind")))
        if values:
            self._unique(lambda c: admin.change(c, channels, row.id, values), "that name")
        return self.channel_public(self._get(channels, str(row.id), "channel"))

    def delete_channel(self, ref: str) -> None:
        row = self._editable(channels, ref, "channel")
        self._write(lambda c: admin.remove(c, channels, row.id))

    def sync_file_channels(self, wanted: Sequence[tuple[str, Mapping[str, Any]]]) -> list[str]:
        """Make the channels from the monitors file (name, config) exactly these: add,
        change, remove `source: file` rows. A bad config, or a name the API owns, changes
        nothing and is reported (one message each)."""
        errors, rows = [], []
        for name, config in wanted:
            try:
                raw = self._checked_config(config)
            except Invalid as exc:
                errors.append(f"channel {name!r}: {exc}")
                continue
            slug = admin.slugify(name)
            rows.append({"name": name, "slug": slug, "kind": str(raw.get("kind")), "config": raw})
        if errors:
            return errors
        return self._write(lambda c: admin.sync_file(c, channels, rows))

    def channel(self, ref: str) -> ChannelPublic:
        return self.channel_public(self._get(channels, ref, "channel"))

    def channels(self, offset: int, limit: int) -> list[ChannelPublic]:
        return [self.channel_public(r) for r in self._page(channels, offset, limit)]

    def test_channel(self, ref: str) -> ChannelTestPublic:
        """Send a test message now (not paced, one attempt), recorded like any alert."""
        row = self._get(channels, ref, "channel")
        self._checked_config(row.config)  # a destination refused now is said, not sent to
        config = self._senders.codec.config(row.config)
        key = f"test-{uuid.uuid4().hex}"
        message = outbox.test_message(row.name, self._clock())
        owner = self.delivery.owner
        row_id = self._write(lambda c: outbox.add_test(c, row.id, key, message, owner))
        batch = [Claimed(row_id, row.id, key, "test", {**message, "key": key}, 1, self._clock())]
        (done,) = self.delivery.send_batch(config, batch)
        done = replace(done, retry_at=None)  # a test is answered, not retried
        self._write(lambda c: claims.finish(c, owner, [done]))
        return ChannelTestPublic(
            ok=done.ok, status_code=done.status_code, error=done.error, key=key
        )

    # --- rules ------------------------------------------------------------------------------
    def create_rule(self, rule: AlertRuleCreate) -> AlertRulePublic:
        self._known_channels(rule.channels)
        values = rule.model_dump()
        rule_id = self._unique(lambda c: admin.add(c, alert_rules, values), "a rule with that name")
        return self.rule(str(rule_id))

    def update_rule(self, ref: str, patch: AlertRulePatch) -> AlertRulePublic:
        row = self._get(alert_rules, ref, "alert rule")
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
        row = self._get(alert_rules, ref, "alert rule")
        self._write(lambda c: admin.remove(c, alert_rules, row.id))

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

    # --- the outbox -------------------------------------------------------------------------
    def alerts(
        self,
        status: str | None,
        channel: str | None,
        monitor: str | None,
        offset: int,
        limit: int,
    ) -> list[AlertPublic]:
        channel_id = self._get(channels, channel, "channel").id if channel else None
        monitor_id = self._get(monitors, monitor, "monitor").id if monitor else None
        with self._database.engine.connect() as connection:
            return reads.alerts(
                connection,
                status=status,
                channel_id=channel_id,
                monitor_id=monitor_id,
                offset=offset,
                limit=limit,
            )

    # --- helpers ----------------------------------------------------------------------------
    def _get(self, table: Table, ref: str, what: str) -> Row[Any]:
        with self._database.engine.connect() as connection:
            row = admin.find(connection, table, ref)
        if row is None:
            raise NotFound(f"no {what} with id or slug {ref!r}")
        return row

    def _editable(self, table: Table, ref: str, what: str) -> Row[Any]:
        row = self._get(table, ref, what)
        if row.source == "file":
            raise Conflict(f"the {what} {row.slug!r} comes from the monitors file: edit it there")
        return row

    def _page(self, table: Table, offset: int, limit: int) -> list[Row[Any]]:
        with self._database.engine.connect() as connection:
            return admin.page(connection, table, offset, limit)

    def _write(self, fn: Callable[[Connection], T]) -> T:
        return self._writer.submit(fn).result(WRITE_TIMEOUT_S)

    def _unique(self, fn: Callable[[Connection], T], what: str) -> T:
        try:
            return self._write(fn)
        except IntegrityError:
            raise Conflict(f"{what} exists already") from None
