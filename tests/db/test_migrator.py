"""Migrations: applied once, idempotent, equal to app/db/schema.py, migrating once when
replicas start together, and refusing a schema newer than the code."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import event, inspect, text

from app.db.engine import Database, open_database
from app.db.migrator import SchemaTooNew, current_revision, head_revision, upgrade
from app.db.schema import metadata
from app.db.url import sqlalchemy_url

TABLES = (
    {"alembic_version", "instances", "jobs", "job_urls", "results"}
    | {
        "monitors",
        "monitor_results",
        "monitor_rollups",
        "incidents",
    }
    | {"channels", "alert_rules", "alert_outbox", "alert_attempts", "maintenance_windows"}
    | {"api_keys"}
    | {"cluster_calls"}
)
# The task queue replicas share (revision 0006): PostgreSQL only.
QUEUE_TABLES = {
    "procrastinate_jobs",
    "procrastinate_workers",
    "procrastinate_periodic_defers",
    "procrastinate_events",
}


def _ours(name: str | None, kind: str, *_: object) -> bool:
    """Compare our declared tables only: procrastinate's schema is its own
    (app/cluster/queue.py), and monitor results' daily partitions (app/db/partitions.py) are
    made at run time."""
    return not (name or "").startswith(("procrastinate_", "monitor_results_"))


def test_upgrade_applies_the_schema_once_then_does_nothing(database: Database) -> None:
    first = upgrade(database)
    second = upgrade(database)

    assert (first.before, first.after, first.applied) == (None, head_revision(), True)
    assert (second.before, second.after, second.applied) == (
        head_revision(),
        head_revision(),
        False,
    )
    queue = QUEUE_TABLES if database.engine.dialect.name == "postgresql" else set()
    names = set(inspect(database.engine).get_table_names())
    days = {name for name in names if name.startswith("monitor_results_")}  # PostgreSQL's
    assert names - days == TABLES | queue
    with database.engine.connect() as connection:
        assert current_revision(connection) == head_revision()
        versions = connection.execute(text("SELECT count(*) FROM alembic_version")).scalar()
    assert versions == 1


def test_the_migrated_schema_equals_the_declared_tables(database: Database) -> None:
    upgrade(database)

    with database.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"include_name": _ours})
        differences = compare_metadata(context, metadata)

    assert differences == []


def test_indexes_exist_after_migration(database: Database) -> None:
    upgrade(database)
    inspector = inspect(database.engine)

    jobs = {index["name"]: index["column_names"] for index in inspector.get_indexes("jobs")}
    results = {index["name"]: index["column_names"] for index in inspector.get_indexes("results")}

    assert jobs == {
        "ix_jobs_created_at": ["created_at", "id"],
        "ix_jobs_status_created_at": ["status", "created_at", "id"],
        "ix_jobs_finished_at": ["finished_at"],
        "ix_jobs_owner_unfinished": ["owner"],
    }
    assert results == {"ix_results_job_id_seq": ["job_id", "seq"]}


def test_a_schema_newer_than_the_code_is_refused(database: Database) -> None:
    upgrade(database)
    with database.write_engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = 'f00dfeed9999'"))

    with pytest.raises(SchemaTooNew) as caught:
        upgrade(database)

    message = str(caught.value)
    assert "'f00dfeed9999'" in message
    assert "newer than this urlhealth knows" in message
    assert f"its newest is '{head_revision()}'" in message
    with database.engine.connect() as connection:
        assert current_revision(connection) == "f00dfeed9999"  # left alone


def test_sqlite_migrations_take_the_write_lock_at_begin(tmp_path: Path) -> None:
    """Another writer holding the lock makes the upgrade wait (busy timeout), not fail
    half-way: its transaction began IMMEDIATE."""
    url = sqlalchemy_url(None, tmp_path)
    with open_database(url) as database:
        statements: list[str] = []

        def remember(conn: object, cursor: object, statement: str, *args: object) -> None:
            statements.append(statement)

        event.listen(database.engine, "before_cursor_execute", remember)
        upgrade(database)

    assert statements[0] == "BEGIN IMMEDIATE"


def test_replicas_upgrading_together_migrate_once(pg_url: str, tmp_path: Path) -> None:
    """Two openers (as two replicas starting at once) race to upgrade an empty database: the
    advisory lock lets one migrate; the other then finds the schema current."""
    count = 3
    databases = [open_database(sqlalchemy_url(pg_url, tmp_path)) for _ in range(count)]
    barrier = threading.Barrier(count)
    outcomes: list[object] = []

    def start(database: Database) -> None:
        barrier.wait(timeout=30)
        try:
            outcomes.append(upgrade(database))
        except Exception as exc:  # reported through outcomes
            outcomes.append(exc)

    threads = [threading.Thread(target=start, args=(db,)) for db in databases]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    finally:
        for database in databases:
            database.close()

    failures = [outcome for outcome in outcomes if isinstance(outcome, Exception)]
    assert failures == []
    applied = [outcome for outcome in outcomes if getattr(outcome, "applied", False)]
    assert len(outcomes) == count
    assert len(applied) == 1
