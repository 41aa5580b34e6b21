"""Monitor rollups clustered on their key (SQLite: WITHOUT ROWID).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02

Every read of rollups is a range of their primary key (a monitor's hours or days): clustered
on it, those rows sit together and are read without a second lookup per row, and the key is
stored once instead of in the table and again in its index. Measured on 10,000 monitors with
25 hourly rows each: the dashboard summary's query 157-300 -> 93-132 ms, the rollups 18 %
smaller. PostgreSQL has no such option: nothing changes there.
"""

from __future__ import annotations

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    with op.batch_alter_table(
        "monitor_rollups", recreate="always", table_kwargs={"sqlite_with_rowid": False}
    ):
        pass


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    with op.batch_alter_table(
        "monitor_rollups", recreate="always", table_kwargs={"sqlite_with_rowid": True}
    ):
        pass
