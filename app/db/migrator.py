"""Bringing a database's schema to this code's head revision (at start, and by
`urlhealth db upgrade`), in one transaction that takes the write lock first:

- PostgreSQL: `pg_advisory_xact_lock`, so replicas starting together migrate once: the
  second waits, then finds the schema current. The transaction-scoped lock is released by
  the commit (or rollback), so no failure path can leave it held on a pooled connection.
- SQLite: BEGIN IMMEDIATE (Database.write_engine), so another process waits its busy
  timeout for the lock instead of failing half-way.

A database whose revision this code does not know was migrated by a newer urlhealth: it is
refused, never downgraded or written to.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import Connection, text

from app.db.engine import Database, DatabaseError

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).with_name("migrations")
# Any constant of our own; it only has to differ from other applications' advisory locks.
ADVISORY_LOCK_KEY = 0x75726C68  # "urlh"


class SchemaTooNew(DatabaseError):
    """The database was migrated by a newer urlhealth than this one."""


@dataclass(frozen=True, slots=True)
class Upgrade:
    """The schema revision before and after; equal when there was nothing to do."""

    before: str | None
    after: str

    @property
    def applied(self) -> bool:
        return self.before != self.after


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "no revisions shipped"
    return head


def current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def upgrade(database: Database) -> Upgrade:
    """Migrate to head; raises SchemaTooNew for a database ahead of this code."""
    config = alembic_config()
    script = ScriptDirectory.from_config(config)
    head = head_revision()
    with database.write_engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK_KEY}
            )
        before = current_revision(connection)
        if before is not None and not _known(script, before):
            raise SchemaTooNew(
                f"the database {database.masked_url} has schema revision {before!r}, newer "
                f"than this urlhealth knows (its newest is {head!r}): it was upgraded by a "
                "newer version; run that version, or restore a backup made before the upgrade"
            )
        if before != head:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
            log.info("database %s: schema %s -> %s", database.masked_url, before, head)
    return Upgrade(before, head)


def _known(script: ScriptDirectory, revision: str) -> bool:
    try:
        return script.get_revision(revision) is not None
    except CommandError:
        return False
