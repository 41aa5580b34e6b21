"""The task queue replicas share (app/cluster/queue.py): procrastinate's schema, on
PostgreSQL only. SQLite is one process's database and runs no queue.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02

procrastinate's own schema file, as the installed version ships it (pyproject pins the minor
version): a later procrastinate that changes it comes with a revision of ours applying its
migration files.
"""

from __future__ import annotations

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    from procrastinate.schema import SchemaManager

    # As the driver's SQL, not SQLAlchemy's text(): the file's colons and percent signs are
    # PostgreSQL's, not bind parameters.
    bind.exec_driver_sql(SchemaManager.get_schema().replace("%", "%%"))


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    tables = "procrastinate_events, procrastinate_periodic_defers, procrastinate_jobs"
    bind.exec_driver_sql(f"DROP TABLE IF EXISTS {tables}, procrastinate_workers CASCADE")
    types = "procrastinate_job_status, procrastinate_job_event_type"
    bind.exec_driver_sql(f"DROP TYPE IF EXISTS {types}, procrastinate_job_to_defer_v1 CASCADE")
