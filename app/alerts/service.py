"""The alerts facade the routes and the composition root use: the recorder's hook, the
delivery thread, channels and the alerts list; `rulebook` holds rules and maintenance windows
(app/alerts/rulebook.py). Writes go through the writer, reads through the engine. Raises
NotFound, Invalid and Conflict; the API maps them to 404, 422 and 409."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy import Row, select

from app.alerts import admin, claims, maintenance, outbox, reads
from app.alerts.claims import Claimed
from app.alerts.contract import Senders
from app.alerts.delivery import Delivery
from app.alerts.errors import Invalid
from app.alerts.filetables import FileTables
from app.alerts.outbox import AlertHook
from app.alerts.policy import DeliveryConfig
from app.alerts.rows import Rows
from app.alerts.rulebook import RuleBook
from app.db.engine import Database
from app.db.schema import channels, monitors
from app.db.writer import Writer
from app.schemas.alerts import (
    AlertPublic,
    ChannelPublic,
    ChannelTestPublic,
)


class Alerts(Rows):
    def __init__(
        self,
        database: Database,
        writer: Writer,
        senders: Senders,
        owner: str,
        config: DeliveryConfig = DeliveryConfig(),
        clock: Callable[[], datetime] = outbox.utcnow,
    ) -> None:
        super().__init__(database, writer, clock)
        self._senders = senders
        self.rulebook = RuleBook(database, writer, clock)
        self.hook = AlertHook(clock)  # the Recorder's on_transition
        self.file_tables = FileTables(senders, database)  # the monitors file's channels and rules
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

    def channel_slugs(self) -> dict[int, str]:
        """Every channel's slug by id (for the metrics' labels)."""
        with self._database.engine.connect() as connection:
            rows = connection.execute(select(channels.c.id, channels.c.slug)).all()
        return {int(row.id): str(row.slug) for row in rows}

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

    def in_maintenance_now(self) -> set[int]:
        """The ids of monitors inside an active maintenance window: reads show `maintenance`."""
        with self._database.engine.connect() as connection:
            return maintenance.covered_now(connection, self._clock())

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
