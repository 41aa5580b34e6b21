"""Calls an API-only replica hands to a worker and waits for (app/cluster/calls.py).

Revision ID: 0008
Revises: 0006
Create Date: 2026-12-02

A table on both dialects, though only PostgreSQL clusters use it: one schema everywhere.
Written out in full, not importing app.db.schema (see 0001).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0006"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "cluster_calls",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("taken_by", sa.String(length=255), nullable=True),
        sa.Column("status", sa.SmallInteger(), nullable=True),
        sa.Column("media_type", sa.String(length=100), nullable=True),
        sa.Column("headers", sa.JSON(), nullable=True),
        sa.Column("body", sa.LargeBinary(), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cluster_calls")),
    )
    op.create_index("ix_cluster_calls_created_at", "cluster_calls", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_cluster_calls_created_at", table_name="cluster_calls")
    op.drop_table("cluster_calls")
