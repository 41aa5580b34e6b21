"""Monitor definitions in the `monitors` table (SQLAlchemy Core, statements built where they
run): reads through the engine's connections, writes through the one writer thread, each a
short transaction whose Future is waited for, bounded.

Clashes are found inside the write's transaction, where the writer serialises them, and
returned (not raised) so a clash never rolls back the other writes of its batch: the caller
raises them. Changing the URL or options bumps `generation` and restarts the unconfirmed
streak (the history stays); changing the interval reschedules from now. `on_change` (replicas)
is called in each change's transaction with the monitor's id, so other replicas hear of it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import Connection, delete, func, insert, or_, select, update
from sqlalchemy.sql.elements import ColumnElement

from app.db.engine import Database
from app.db.schema import monitors
from app.db.writer import Writer
from app.monitors import states
from app.monitors.definition import Definition, MonitorRecord
from app.monitors.errors import MonitorConflict, MonitorNotFound
from app.monitors.slugs import slugify, unique_slug
from app.schemas.monitoring import Source

T = TypeVar("T")
# In a change's transaction: (connection, the monitor's id, or None for any number of them).
OnChange = Callable[[Connection, int | None], None]
# How long a definition change waits for its commit: the writer retries through a database
# outage meanwhile; past this the API answers 503 and the write may still land later.
WRITE_TIMEOUT_S = 30.0
MAX_ID_DIGITS = 18


@dataclass(frozen=True, slots=True)
class MonitorQuery:
    group: str | None = None
    label: tuple[str, str] | None = None
    state: str | None = None
    source: Source | None = None


@dataclass(frozen=True, slots=True)
class Change:
    """What an update changed, for the scheduler."""

    record: MonitorRecord
    definition_changed: bool  # url or options: generation bumped
    rescheduled: bool  # interval changed: next_due_at set from now
    changed: bool  # anything at all


class MonitorRepository:
    def __init__(
        self,
        database: Database,
        writer: Writer,
        timeout_s: float = WRITE_TIMEOUT_S,
        on_change: OnChange | None = None,
    ) -> None:
        self._database = database
        self._writer = writer
        self._timeout = timeout_s
        self._on_change = on_change

    def announce(self, connection: Connection, monitor_id: int | None) -> None:
        """Tell other replicas (at commit) that this monitor, or any (None), changed."""
        if self._on_change is not None:
            self._on_change(connection, monitor_id)

    # --- reads ---------------------------------------------------------------------------
    def find(self, ref: str) -> MonitorRecord | None:
        """By numeric id (all digits) or by slug."""
        if ref.isascii() and ref.isdigit():
            if len(ref) > MAX_ID_DIGITS:  # past any id, and past what the column holds
                return None
            where = monitors.c.id == int(ref)
        else:
            where = monitors.c.slug == ref
        with self._database.engine.connect() as connection:
            row = connection.execute(select(monitors).where(where)).first()
        return None if row is None else MonitorRecord.from_row(row)

    def get(self, ref: str) -> MonitorRecord:
        record = self.find(ref)
        if record is None:
            raise MonitorNotFound(ref)
        return record

    def all(self) -> list[MonitorRecord]:
        with self._database.engine.connect() as connection:
            rows = connection.execute(select(monitors).order_by(monitors.c.id)).all()
        return [MonitorRecord.from_row(row) for row in rows]

    def page(self, query: MonitorQuery, offset: int, limit: int) -> tuple[list[MonitorRecord], int]:
        where = _filters(query)
        with self._database.engine.connect() as connection:
            count = connection.execute(select(func.count()).select_from(monitors).where(*where))
            total = int(count.scalar_one())
            rows = connection.execute(
                select(monitors).where(*where).order_by(monitors.c.id).offset(offset).limit(limit)
            ).all()
        return [MonitorRecord.from_row(row) for row in rows], total

    # --- writes --------------------------------------------------------------------------
    def create(self, definition: Definition, source: Source, now: datetime) -> MonitorRecord:
        def write(connection: Connection) -> MonitorRecord | MonitorConflict:
            clash = find_clash(connection, definition, None)
            if clash is not None:
                return clash
            created = insert_monitor(connection, definition, source, now)
            self.announce(connection, created.id)
            return created

        return self._run(write)

    def update(
        self, monitor_id: int, definition: Definition, now: datetime, source: Source
    ) -> Change:
        """`source`: the writer's; a monitor from elsewhere is read-only to it."""

        def write(connection: Connection) -> Change | MonitorConflict | MonitorNotFound:
            current = _by_id(connection, monitor_id)
            if current is None:
                return MonitorNotFound(str(monitor_id))
            if current.source != source:
                return read_only(current)
            clash = find_clash(connection, definition, current)
            if clash is not None:
                return clash
            change = update_monitor(connection, current, definition, now)
            if change.changed:
                self.announce(connection, monitor_id)
            return change

        return self._run(write)

    def delete(self, monitor_id: int, source: Source) -> MonitorRecord:
        def write(connection: Connection) -> MonitorRecord | MonitorConflict | MonitorNotFound:
            current = _by_id(connection, monitor_id)
            if current is None:
                return MonitorNotFound(str(monitor_id))
            if current.source != source:
                return read_only(current)
            # Results, rollups and incidents go with it (ON DELETE CASCADE).
            connection.execute(delete(monitors).where(monitors.c.id == monitor_id))
            self.announce(connection, monitor_id)
            return current

        return self._run(write)

    def run(self, write: Callable[[Connection], T | Exception]) -> T:
        """Run a write in the writer's transaction; an Exception it returns is raised."""
        return self._run(write)

    def _run(self, write: Callable[[Connection], T | Exception]) -> T:
        future = self._writer.submit(write)
        try:
            outcome = future.result(self._timeout)
        except TimeoutError:
            future.cancel()  # not written if the writer has not reached it yet
            raise
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


def _filters(query: MonitorQuery) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = []
    if query.group is not None:
        where.append(monitors.c.group_name == query.group)
    if query.label is not None:
        name, value = query.label
        where.append(monitors.c.labels[name].as_string() == value)
    if query.state == "paused":
        where.append(monitors.c.paused.is_(True))
    elif query.state is not None:
        where += [monitors.c.paused.is_(False), monitors.c.state == query.state]
    if query.source is not None:
        where.append(monitors.c.source == query.source.value)
    return where


def _by_id(connection: Connection, monitor_id: int) -> MonitorRecord | None:
    row = connection.execute(select(monitors).where(monitors.c.id == monitor_id)).first()
    return None if row is None else MonitorRecord.from_row(row)


def read_only(record: MonitorRecord) -> MonitorConflict:
    return MonitorConflict(
        "source",
        f"monitor {record.slug!r} comes from the monitors file: change it there (and reload)",
    )


def find_clash(
    connection: Connection, definition: Definition, current: MonitorRecord | None
) -> MonitorConflict | None:
    """Another monitor with this name, or with this explicit slug."""
    taken: list[ColumnElement[bool]] = [monitors.c.name == definition.name]
    if definition.slug is not None:
        taken.append(monitors.c.slug == definition.slug)
    statement = select(monitors.c.id, monitors.c.name, monitors.c.slug, monitors.c.source).where(
        or_(*taken)
    )
    if current is not None:
        statement = statement.where(monitors.c.id != current.id)
    for row in connection.execute(statement):
        field = "name" if row.name == definition.name else "slug"
        value = definition.name if field == "name" else definition.slug
        holder = "the monitors file" if row.source == Source.FILE else "the API"
        return MonitorConflict(
            field, f"a monitor with {field} {value!r} exists already (from {holder})"
        )
    return None


def settle_slug(connection: Connection, definition: Definition, current: str | None) -> str:
    """The explicit slug, or the name's: kept if it is the monitor's own, else made unique."""
    if definition.slug is not None:
        return definition.slug
    base = slugify(definition.name)
    if current is not None and (current == base or current.startswith(f"{base[:60]}-")):
        return current
    rows = connection.execute(
        select(monitors.c.slug).where(
            or_(monitors.c.slug == base, monitors.c.slug.like(f"{base[:60]}-%"))
        )
    )
    return unique_slug(base, {row.slug for row in rows})


def insert_many(
    connection: Connection, definitions: list[Definition], source: Source, now: datetime
) -> list[MonitorRecord]:
    """Monitors whose slugs are settled and free, in one executemany: a file of 10,000 new
    monitors took 10 s as a statement (and a read back) each."""
    if not definitions:
        return []
    rows = [_new_row(d, d.slug or "", source, now) for d in definitions]
    connection.execute(insert(monitors), rows)
    created: dict[str, MonitorRecord] = {}
    slugs = [row["slug"] for row in rows]
    for start in range(0, len(slugs), 500):  # bound the statement's parameters
        chunk = slugs[start : start + 500]
        for row in connection.execute(select(monitors).where(monitors.c.slug.in_(chunk))):
            record = MonitorRecord.from_row(row)
            created[record.slug] = record
    return [created[slug] for slug in slugs]


def _new_row(definition: Definition, slug: str, source: Source, now: datetime) -> dict[str, Any]:
    return {
        **definition.columns(),
        "slug": slug,
        "source": source.value,
        "created_at": now,
        "updated_at": now,
        "generation": 1,
        "state": "unknown",
        "pending_count": 0,
        "skipped": 0,
    }


def insert_monitor(
    connection: Connection, definition: Definition, source: Source, now: datetime
) -> MonitorRecord:
    slug = settle_slug(connection, definition, None)
    values = _new_row(definition, slug, source, now)
    result = connection.execute(insert(monitors).values(values))
    key = result.inserted_primary_key
    assert key is not None
    created = _by_id(connection, int(key[0]))
    assert created is not None
    return created


def update_monitor(
    connection: Connection, current: MonitorRecord, definition: Definition, now: datetime
) -> Change:
    slug = settle_slug(connection, definition, current.slug)
    values: dict[str, Any] = {**definition.columns(), "slug": slug}
    before = {**current.definition().columns(), "slug": current.slug}
    if values == before:
        return Change(current, False, False, False)
    redefined = (definition.url, definition.options) != (current.url, current.options)
    if redefined:
        values |= {"generation": current.generation + 1, **states.RESTART}
    rescheduled = definition.interval_s != current.interval_s
    if rescheduled:
        values["next_due_at"] = now + timedelta(seconds=definition.interval_s)
    values["updated_at"] = now
    connection.execute(update(monitors).where(monitors.c.id == current.id).values(values))
    changed = _by_id(connection, current.id)
    assert changed is not None
    return Change(changed, redefined, rescheduled, True)
