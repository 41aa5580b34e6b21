"""Making the table hold what the monitors file says, in one writer transaction.

File monitors are matched by slug: one whose slug is kept keeps its id and history whatever
else changed (a rename too); one whose slug changed is a new monitor. Monitors gone from the
file are deleted, their history with them: the file is the truth for its monitors, as in
other monitors-as-code tools. A name or slug an API monitor holds fails the whole sync.

Replicas starting together load the same file at once: on PostgreSQL the sync takes a
transaction-scoped advisory lock first, so the second waits for the first's commit and then
finds the file's monitors there (nothing created twice). `announce` tells other replicas.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, select, text, update

from app.db.schema import monitors
from app.monitors.definition import Definition, MonitorRecord
from app.monitors.repository import Change, insert_many, update_monitor
from app.schemas.monitoring import Source

# Any constant of our own (the migrator's, app/db/migrator.py, plus one).
SYNC_LOCK_KEY = 0x75726C69


@dataclass(slots=True)
class SyncOutcome:
    created: list[MonitorRecord] = field(default_factory=list)
    updated: list[Change] = field(default_factory=list)
    deleted: list[MonitorRecord] = field(default_factory=list)
    unchanged: list[MonitorRecord] = field(default_factory=list)


class SyncRefused(Exception):
    """Clashes with API monitors; nothing was changed."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__(f"{len(errors)} clashes with API monitors")
        self.errors = errors


def sync_file(
    definitions: list[Definition],
    now: datetime,
    also: Callable[[Connection], list[dict[str, Any]]] | None = None,
    announce: Callable[[Connection, int | None], None] | None = None,
) -> Callable[[Connection], SyncOutcome | SyncRefused]:
    """The write for the writer: returns a SyncOutcome, or a SyncRefused (not raised, so
    the other writes of the batch are not rolled back with it). `also`: the file's channels
    and rules, synced in the same transaction; it checks before it writes, so its problems
    refuse the whole sync before anything changed."""

    def write(connection: Connection) -> SyncOutcome | SyncRefused:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SYNC_LOCK_KEY})
        rows = [MonitorRecord.from_row(r) for r in connection.execute(select(monitors))]
        api = [r for r in rows if r.source == Source.API]
        api_names = {r.name: r for r in api}
        api_slugs = {r.slug: r for r in api}
        errors = []
        for index, definition in enumerate(definitions):
            for what, value, held in (
                ("name", definition.name, api_names),
                ("slug", definition.slug, api_slugs),
            ):
                if value in held:
                    msg = f"{what} {value!r} is held by monitor {held[value].id} from the API"
                    errors.append(_clash(index, definition.name, what, msg))
        if errors:
            return SyncRefused(errors)
        if also is not None and (refused := also(connection)):
            return SyncRefused(refused)
        ours = {r.slug: r for r in rows if r.source == Source.FILE}
        wanted = {d.slug for d in definitions}
        outcome = SyncOutcome()
        for slug, record in ours.items():
            if slug not in wanted:
                connection.execute(delete(monitors).where(monitors.c.id == record.id))
                outcome.deleted.append(record)
        # Names are unique: a rename onto a name another file monitor gives up in the same
        # file would clash mid-transaction, so renamed ones first take a name nobody can
        # write (names refuse control characters; PostgreSQL text refuses NUL).
        for definition in definitions:
            current = ours.get(definition.slug or "")
            if current is not None and current.name != definition.name:
                connection.execute(
                    update(monitors)
                    .where(monitors.c.id == current.id)
                    .values(name=f"\x01renaming {current.id}")
                )
        new = []
        for definition in definitions:
            current = ours.get(definition.slug or "")
            if current is None:
                new.append(definition)
                continue
            change = update_monitor(connection, current, definition, now)
            if change.changed:
                outcome.updated.append(change)
            else:
                outcome.unchanged.append(current)
        outcome.created = insert_many(connection, new, Source.FILE, now)
        if announce is not None and (outcome.created or outcome.updated or outcome.deleted):
            announce(connection, None)
        return outcome

    return write


def _clash(index: int, name: str, what: str, msg: str) -> dict[str, Any]:
    return {
        "type": "conflict",
        "loc": ["monitors", index, what],
        "msg": msg,
        "monitor": name,
        "where": f"monitors[{index}] {name!r}: {what}",
    }
