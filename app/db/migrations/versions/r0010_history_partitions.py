"""Monitor results partitioned by day on PostgreSQL (app/db/partitions.py), so retention
drops a day instead of deleting its rows. SQLite keeps the plain table.

Revision ID: 0010
Revises: 0008
Create Date: 2026-12-02

The rows there are copied into the new table inside the migration's transaction; the primary
key becomes (id, at_ms), as PostgreSQL requires the partition key in it, and id keeps its
sequence. Written out in full, not importing app.db.partitions (see 0001): later changes to
that module must not change what this revision did.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from alembic import op

revision: str = "0010"
down_revision: str | None = "0008"
branch_labels: str | None = None
depends_on: str | None = None

_DAY_MS = 86_400_000
_AHEAD_DAYS = 3
_COLUMNS = (
    "id, monitor_id, at_ms, outcome, status, latency_us, dns_us, connect_us, tls_us, "
    "ttfb_us, transfer_us, error_kind, detail"
)


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    run = bind.exec_driver_sql
    run("ALTER TABLE monitor_results RENAME TO monitor_results_plain")
    run("ALTER TABLE monitor_results_plain RENAME CONSTRAINT pk_monitor_results TO pk_mr_plain")
    run(
        "ALTER TABLE monitor_results_plain RENAME CONSTRAINT "
        "fk_monitor_results_monitor_id_monitors TO fk_mr_plain"
    )
    run("ALTER INDEX ix_monitor_results_monitor_id_at_ms RENAME TO ix_mr_plain_monitor")
    run("ALTER INDEX ix_monitor_results_at_ms RENAME TO ix_mr_plain_at")
    run(
        """
        CREATE TABLE monitor_results (
            id INTEGER NOT NULL DEFAULT nextval('monitor_results_id_seq'),
            monitor_id INTEGER NOT NULL,
            at_ms BIGINT NOT NULL,
            outcome SMALLINT NOT NULL,
            status SMALLINT,
            latency_us INTEGER,
            dns_us INTEGER,
            connect_us INTEGER,
            tls_us INTEGER,
            ttfb_us INTEGER,
            transfer_us INTEGER,
            error_kind VARCHAR(24),
            detail BYTEA,
            CONSTRAINT pk_monitor_results PRIMARY KEY (id, at_ms),
            CONSTRAINT fk_monitor_results_monitor_id_monitors FOREIGN KEY (monitor_id)
                REFERENCES monitors (id) ON DELETE CASCADE
        ) PARTITION BY RANGE (at_ms)
        """
    )
    run("CREATE INDEX ix_monitor_results_monitor_id_at_ms ON monitor_results (monitor_id, at_ms)")
    run("CREATE INDEX ix_monitor_results_at_ms ON monitor_results (at_ms)")
    run("CREATE TABLE monitor_results_default PARTITION OF monitor_results DEFAULT")
    oldest = run("SELECT min(at_ms) FROM monitor_results_plain").scalar()
    today = datetime.now(UTC).date()
    first = today if oldest is None else min(today, _day_of(int(oldest)))
    day = first
    while day <= today + timedelta(days=_AHEAD_DAYS):
        start = int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000)
        run(
            f"CREATE TABLE monitor_results_p{day:%Y%m%d} PARTITION OF monitor_results "
            f"FOR VALUES FROM ({start}) TO ({start + _DAY_MS})"
        )
        day += timedelta(days=1)
    run(f"INSERT INTO monitor_results ({_COLUMNS}) SELECT {_COLUMNS} FROM monitor_results_plain")
    run("ALTER SEQUENCE monitor_results_id_seq OWNED BY monitor_results.id")
    run("DROP TABLE monitor_results_plain")


def _day_of(at_ms: int) -> date:
    return datetime.fromtimestamp(at_ms / 1000, UTC).date()


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    run = bind.exec_driver_sql
    run("CREATE TABLE monitor_results_plain (LIKE monitor_results INCLUDING DEFAULTS)")
    run(f"INSERT INTO monitor_results_plain ({_COLUMNS}) SELECT {_COLUMNS} FROM monitor_results")
    run("ALTER SEQUENCE monitor_results_id_seq OWNED BY monitor_results_plain.id")
    run("DROP TABLE monitor_results")
    run("ALTER TABLE monitor_results_plain RENAME TO monitor_results")
    run("ALTER TABLE monitor_results ADD CONSTRAINT pk_monitor_results PRIMARY KEY (id)")
    run(
        "ALTER TABLE monitor_results ADD CONSTRAINT fk_monitor_results_monitor_id_monitors "
        "FOREIGN KEY (monitor_id) REFERENCES monitors (id) ON DELETE CASCADE"
    )
    run("CREATE INDEX ix_monitor_results_monitor_id_at_ms ON monitor_results (monitor_id, at_ms)")
    run("CREATE INDEX ix_monitor_results_at_ms ON monitor_results (at_ms)")
