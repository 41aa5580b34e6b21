"""Alert rules from the monitors file: alert_rules.source (api | file), as channels have, so
the file's rules are kept in step on reload and read-only over the API.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02

Written out in full, not importing app.db.schema (see 0001).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    # Every rule so far came from the API.
    with op.batch_alter_table("alert_rules") as batch:
        batch.add_column(
            sa.Column("source", sa.String(length=8), nullable=False, server_default="api")
        )


def downgrade() -> None:
    with op.batch_alter_table("alert_rules") as batch:
        batch.drop_column("source")
