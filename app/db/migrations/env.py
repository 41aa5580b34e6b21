"""Alembic's environment: migrations run on the connection app/db/migrator.py hands in,
inside its transaction (and, on PostgreSQL, under its advisory lock). No alembic.ini and no
logging set-up here: the service's settings and logging stay the only ones."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from app.db.schema import metadata

connection = context.config.attributes.get("connection")
if not isinstance(connection, Connection):
    raise RuntimeError("run migrations through app.db.migrator (`urlhealth db upgrade`)")

context.configure(
    connection=connection,
    target_metadata=metadata,
    # SQLite's ALTER TABLE is limited: later revisions alter a table by copying it.
    render_as_batch=True,
    # SQLite's DDL is transactional too (Alembic assumes not): an upgrade commits whole or
    # not at all, in the caller's transaction.
    transactional_ddl=True,
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
