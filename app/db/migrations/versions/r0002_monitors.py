"""Monitors: definitions with schedule and state, compact results, rollups, incidents.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02

Written out in full, not importing app.db.schema (see 0001).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def _monitor_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["monitor_id"],
        ["monitors.id"],
        name=op.f(f"fk_{table}_monitor_id_monitors"),
        ondelete="CASCADE",
    )


def upgrade() -> None:
    op.create_table(
        "monitors",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("slug", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("source", sa.String(length=8), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("options", sa.JSON(), nullable=False),
        sa.Column("interval_s", sa.Float(), nullable=False),
        sa.Column("group_name", sa.String(length=200), nullable=True),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("paused", sa.Boolean(), nullable=False),
        sa.Column("failure_threshold", sa.Integer(), nullable=False),
        sa.Column("success_threshold", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("next_due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("state", sa.String(length=8), nullable=False),
        sa.Column("state_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("pending_outcome", sa.String(length=8), nullable=True),
        sa.Column("pending_count", sa.Integer(), nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=True),
        sa.Column("last_checked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_result", sa.LargeBinary(), nullable=True),
        sa.Column("skipped", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_monitors")),
        sa.UniqueConstraint("name", name=op.f("uq_monitors_name")),
        sa.UniqueConstraint("slug", name=op.f("uq_monitors_slug")),
    )
    op.create_table(
        "monitor_results",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("monitor_id", sa.Integer(), nullable=False),
        sa.Column("at_ms", sa.BigInteger(), nullable=False),
        sa.Column("outcome", sa.SmallInteger(), nullable=False),
        sa.Column("status", sa.SmallInteger(), nullable=True),
        sa.Column("latency_us", sa.Integer(), nullable=True),
        sa.Column("dns_us", sa.Integer(), nullable=True),
        sa.Column("connect_us", sa.Integer(), nullable=True),
        sa.Column("tls_us", sa.Integer(), nullable=True),
        sa.Column("ttfb_us", sa.Integer(), nullable=True),
        sa.Column("transfer_us", sa.Integer(), nullable=True),
        sa.Column("error_kind", sa.String(length=24), nullable=True),
        sa.Column("detail", sa.LargeBinary(), nullable=True),
        _monitor_fk("monitor_results"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_monitor_results")),
    )
    op.create_index(
        "ix_monitor_results_monitor_id_at_ms", "monitor_results", ["monitor_id", "at_ms"]
    )
    op.create_index("ix_monitor_results_at_ms", "monitor_results", ["at_ms"])
    op.create_table(
        "monitor_rollups",
        sa.Column("monitor_id", sa.Integer(), nullable=False),
        sa.Column("period", sa.String(length=1), nullable=False),
        sa.Column("start_ms", sa.BigInteger(), nullable=False),
        sa.Column("checks", sa.Integer(), nullable=False),
        sa.Column("up", sa.Integer(), nullable=False),
        sa.Column("degraded", sa.Integer(), nullable=False),
        sa.Column("down", sa.Integer(), nullable=False),
        sa.Column("latency_count", sa.Integer(), nullable=False),
        sa.Column("latency_sum_us", sa.BigInteger(), nullable=False),
        sa.Column("latency_min_us", sa.Integer(), nullable=True),
        sa.Column("latency_max_us", sa.Integer(), nullable=True),
        sa.Column("histogram", sa.JSON(), nullable=False),
        _monitor_fk("monitor_rollups"),
        sa.PrimaryKeyConstraint(
            "monitor_id", "period", "start_ms", name=op.f("pk_monitor_rollups")
        ),
    )
    op.create_table(
        "incidents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("monitor_id", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("worst_state", sa.String(length=8), nullable=False),
        sa.Column("first_result", sa.LargeBinary(), nullable=True),
        sa.Column("events", sa.JSON(), nullable=False),
        _monitor_fk("incidents"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incidents")),
    )
    op.create_index("ix_incidents_monitor_id_started_at", "incidents", ["monitor_id", "started_at"])


def downgrade() -> None:
    op.drop_table("incidents")
    op.drop_table("monitor_rollups")
    op.drop_table("monitor_results")
    op.drop_table("monitors")
