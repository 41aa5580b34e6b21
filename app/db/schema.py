"""The tables, declared once for both dialects (SQLAlchemy Core; statements are built where
they run). Alembic's revisions create them; a test keeps revisions and this file equal.

A job's row holds what its header shows (app/schemas/jobs.py), including the summary counts,
so that listing jobs never reads results. Results are kept as the JSON bytes the API streams,
with the few fields the summary counts. `seq` is a result's place in completion order: dense
from 0 per job, so a page is a range of `seq` through an index, however deep the offset.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.types import TypeDecorator

# Named constraints, so that later migrations (SQLite's batch mode above all) can refer to them.
metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

JOB_ID = String(32)  # uuid4().hex
UNFINISHED = ("queued", "running")


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in and out. SQLite keeps no zone: without this, what was written
    aware would come back naive there, and aware from PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: the store keeps UTC, aware")
        return value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# A running service process. Its heartbeat is the lease on the jobs it owns: one row to
# update per beat, not one per running job.
instances = Table(
    "instances",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("hostname", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("started_at", UtcDateTime, nullable=False),
    Column("heartbeat_at", UtcDateTime, nullable=False),
)

jobs = Table(
    "jobs",
    metadata,
    Column("id", JOB_ID, primary_key=True),
    Column("status", String(16), nullable=False),  # app.schemas.jobs.JobStatus
    Column("options", JSON, nullable=False),  # CheckOptionsPublic, as JSON
    Column("total", Integer, nullable=False),
    Column("duplicates_removed", Integer, nullable=False, default=0),
    Column("created_at", UtcDateTime, nullable=False),
    Column("started_at", UtcDateTime),
    Column("finished_at", UtcDateTime),
    # The summary, kept current with the results (so a header needs no count of them).
    Column("completed", Integer, nullable=False, default=0),
    Column("up", Integer, nullable=False, default=0),
    Column("degraded", Integer, nullable=False, default=0),
    Column("down", Integer, nullable=False, default=0),
    Column("errors", JSON, nullable=False),  # {error kind: count}
    Column("cancel_requested", Boolean, nullable=False, default=False),
    Column("interrupted", Boolean, nullable=False, default=False),
    # The instance running it; a job not final whose owner stopped beating is orphaned.
    Column("owner", String(64)),
)
# Listing newest first, and within a status, over a created range.
Index("ix_jobs_created_at", jobs.c.created_at, jobs.c.id)
Index("ix_jobs_status_created_at", jobs.c.status, jobs.c.created_at, jobs.c.id)
# Retention by age deletes the oldest finished jobs first.
Index("ix_jobs_finished_at", jobs.c.finished_at)
# An instance's unfinished jobs (crash recovery): partial, so it stays as small as the
# set of running jobs, not the history.
_unfinished = jobs.c.status.in_(UNFINISHED)
Index(
    "ix_jobs_owner_unfinished",
    jobs.c.owner,
    sqlite_where=_unfinished,
    postgresql_where=_unfinished,
)

job_urls = Table(
    "job_urls",
    metadata,
    Column("job_id", JOB_ID, ForeignKey(jobs.c.id, ondelete="CASCADE"), primary_key=True),
    Column("idx", Integer, primary_key=True, autoincrement=False),
    Column("url", Text, nullable=False),
)

results = Table(
    "results",
    metadata,
    # (job_id, idx) as key: a check's first result wins, as in the memory store.
    Column("job_id", JOB_ID, ForeignKey(jobs.c.id, ondelete="CASCADE"), primary_key=True),
    Column("idx", Integer, primary_key=True, autoincrement=False),
    Column("seq", Integer, nullable=False),
    Column("ok", Boolean, nullable=False),
    Column("outcome", String(8), nullable=False),  # up | degraded | down
    Column("error_kind", String(32)),
    Column("body", LargeBinary, nullable=False),  # the CheckResult's JSON, as streamed
)
# A job's results in completion order: pages are `seq` ranges.
Index("ix_results_job_id_seq", results.c.job_id, results.c.seq, unique=True)


# --- monitors (app/monitors/) ------------------------------------------------------------
# A monitor's definition, its schedule and its state, in one row: the state is decided by a
# conditional UPDATE of this row in the writer's transaction (memory only caches it), so
# replicas can later claim checks without another table.
monitors = Table(
    "monitors",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("slug", String(64), nullable=False, unique=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("source", String(8), nullable=False),  # api | file
    Column("url", Text, nullable=False),  # as written, credentials included: never shown
    Column("options", JSON, nullable=False),  # JobOptions as written (exclude_unset)
    Column("interval_s", Float, nullable=False),
    Column("group_name", String(200)),
    Column("labels", JSON, nullable=False),  # {name: value}
    Column("paused", Boolean, nullable=False, default=False),
    Column("failure_threshold", Integer, nullable=False),
    Column("success_threshold", Integer, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    # Bumped when url or options change: the unconfirmed streak restarts, and a result of
    # the previous definition that lands late counts toward no streak.
    Column("generation", Integer, nullable=False, default=1),
    Column("next_due_at", UtcDateTime),
    # State: unknown | up | degraded | down (paused is the flag above).
    Column("state", String(8), nullable=False, default="unknown"),
    Column("state_since", UtcDateTime),
    # The outcome seen since the last confirmed change, and how many times in a row.
    Column("pending_outcome", String(8)),
    Column("pending_count", Integer, nullable=False, default=0),
    Column("incident_id", Integer),  # the open incident, if any
    Column("last_checked_at", UtcDateTime),
    Column("last_result", LargeBinary),  # the last CheckResult's JSON
    Column("skipped", Integer, nullable=False, default=0),  # runs skipped: still running
    # The monitor's own alert settings over its group's and labels' rules (app/alerts/rules.py)
    Column("alerts", JSON),
)

# Every monitor result, compact: times in epoch milliseconds, latencies in microseconds,
# outcome as 0 up / 1 degraded / 2 down; the full result only for failures and changes.
# On PostgreSQL partitioned by day on at_ms, its primary key (id, at_ms) there: revision
# 0010, app/db/partitions.py.
monitor_results = Table(
    "monitor_results",
    metadata,
    Column("id", Integer, primary_key=True),
    Column(
        "monitor_id",
        Integer,
        ForeignKey("monitors.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("at_ms", BigInteger, nullable=False),
    Column("outcome", SmallInteger, nullable=False),
    Column("status", SmallInteger),
    Column("latency_us", Integer),
    # Phases (app.schemas.results.Timings): resolve, connect, tls, processing, transfer.
    Column("dns_us", Integer),
    Column("connect_us", Integer),
    Column("tls_us", Integer),
    Column("ttfb_us", Integer),
    Column("transfer_us", Integer),
    Column("error_kind", String(24)),
    Column("detail", LargeBinary),
)
Index("ix_monitor_results_monitor_id_at_ms", monitor_results.c.monitor_id, monitor_results.c.at_ms)
# Raw retention deletes by age across monitors.
Index("ix_monitor_results_at_ms", monitor_results.c.at_ms)

# Hourly ('h') and daily ('d') counts per monitor: a year of uptime is 365 rows, not 8,760.
monitor_rollups = Table(
    "monitor_rollups",
    metadata,
    Column(
        "monitor_id",
        Integer,
        ForeignKey("monitors.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("period", String(1), nullable=False),
    Column("start_ms", BigInteger, nullable=False),
    Column("checks", Integer, nullable=False),
    Column("up", Integer, nullable=False),
    Column("degraded", Integer, nullable=False),
    Column("down", Integer, nullable=False),
    Column("latency_count", Integer, nullable=False),
    Column("latency_sum_us", BigInteger, nullable=False),
    Column("latency_min_us", Integer),
    Column("latency_max_us", Integer),
    Column("histogram", JSON, nullable=False),  # counts per bucket (app/monitors/)
    PrimaryKeyConstraint("monitor_id", "period", "start_ms"),
)

# One confirmed stretch away from `up`.
incidents = Table(
    "incidents",
    metadata,
    Column("id", Integer, primary_key=True),
    Column(
        "monitor_id",
        Integer,
        ForeignKey("monitors.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("started_at", UtcDateTime, nullable=False),
    Column("ended_at", UtcDateTime),
    Column("worst_state", String(8), nullable=False),
    Column("first_result", LargeBinary),  # the CheckResult that began it
    Column("events", JSON, nullable=False),  # [{"at", "from", "to"}], state changes inside
)
Index("ix_incidents_monitor_id_started_at", incidents.c.monitor_id, incidents.c.started_at)


# --- alerts (app/alerts/) ------------------------------------------------------------------
# A place alerts go. `config` holds the channel's whole configuration, secrets included
# (webhook URLs with tokens, HMAC secrets, SMTP passwords): written, never shown (reads show
# the config's masked() form).
channels = Table(
    "channels",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("slug", String(64), nullable=False, unique=True),
    Column("kind", String(16), nullable=False),  # webhook | slack | discord | teams | email
    Column("source", String(8), nullable=False),  # api | file
    Column("config", JSON, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

# Defaults by group or labels (10,000 monitors need not carry 10,000 rule sets); a monitor's
# own `alerts` column overrides them (app/alerts/rules.py says how they combine).
alert_rules = Table(
    "alert_rules",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("match_group", String(200)),  # None: any group
    Column("match_labels", JSON, nullable=False),  # {name: value}, all must match; {}: any
    Column("channels", JSON, nullable=False),  # [channel slug]
    Column("on_down", Boolean, nullable=False),
    Column("on_degraded", Boolean, nullable=False),
    Column("send_on_resolved", Boolean, nullable=False),
    Column("reminder_interval_s", Float),  # None: no reminders
    # api | file (the monitors file's rules: kept in step on reload, read-only over the API)
    Column("source", String(8), nullable=False, default="api", server_default="api"),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

# One message for one channel, written in the transaction of the state change it is about;
# `key` is stable per transition and channel, so a replayed write adds nothing and a re-send
# carries the same idempotency key. Claimed by a conditional UPDATE (app/alerts/outbox.py).
alert_outbox = Table(
    "alert_outbox",
    metadata,
    Column("id", Integer, primary_key=True),
    Column(
        "channel_id",
        Integer,
        ForeignKey("channels.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("monitor_id", Integer),  # None for a channel's test message
    Column("incident_id", Integer),
    Column("key", String(64), nullable=False),
    Column("kind", String(16), nullable=False),  # down | degraded | resolved | reminder | test
    Column("payload", JSON, nullable=False),  # the AlertMessage's fields
    # pending | sending | sent | failed, or held (in a maintenance window) | silenced
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", UtcDateTime, nullable=False),
    Column("claimed_by", String(64)),
    Column("claimed_at", UtcDateTime),
    Column("sent_at", UtcDateTime),
    Column("last_error", Text),
    Column("created_at", UtcDateTime, nullable=False),
    UniqueConstraint("channel_id", "key"),
)
# The delivery thread's scan: due rows by status and time.
Index(
    "ix_alert_outbox_status_next_attempt_at", alert_outbox.c.status, alert_outbox.c.next_attempt_at
)
# Retention and the newest-first listing.
Index("ix_alert_outbox_created_at", alert_outbox.c.created_at)

alert_attempts = Table(
    "alert_attempts",
    metadata,
    Column("id", Integer, primary_key=True),
    Column(
        "outbox_id",
        Integer,
        ForeignKey("alert_outbox.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("at", UtcDateTime, nullable=False),
    Column("ok", Boolean, nullable=False),
    Column("status_code", Integer),
    Column("error", Text),
    Column("duration_ms", Float, nullable=False),
)
Index("ix_alert_attempts_outbox_id", alert_attempts.c.outbox_id)

# Silence: one-off (starts_at..ends_at) or recurring (weekdays, local start time, duration,
# in an IANA time zone); for one monitor, or for a group and/or labels.
maintenance_windows = Table(
    "maintenance_windows",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(200), nullable=False),
    Column("monitor_id", Integer, ForeignKey("monitors.id", ondelete="CASCADE")),
    Column("match_group", String(200)),
    Column("match_labels", JSON, nullable=False),
    Column("starts_at", UtcDateTime),
    Column("ends_at", UtcDateTime),
    Column("weekdays", JSON),  # [0..6], Monday 0
    Column("start_time", String(5)),  # "HH:MM", local to `timezone`
    Column("duration_s", Float),
    Column("timezone", String(64)),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)


# --- API keys (app/auth/) --------------------------------------------------------------------
# Only a key's SHA-256 is kept (it finds the row): the key itself is shown once, at creation;
# `prefix`, its first characters, is what lists show.
api_keys = Table(
    "api_keys",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(200), nullable=False),
    Column("prefix", String(16), nullable=False),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("scope", String(8), nullable=False),  # read | check | admin
    Column("created_at", UtcDateTime, nullable=False),
    Column("last_used_at", UtcDateTime, nullable=True),
    Column("revoked_at", UtcDateTime, nullable=True),
)


# --- calls run on a worker for an API-only replica (app/cluster/calls.py) -------------------
# One row per call waited for: inserted by the API replica, taken by the worker that runs it
# (`taken_by`), answered by it (`status` and either `body` or, for an error, `detail`), then
# read and deleted by the API replica. Rows nobody read are deleted when a later reply is
# written (they are minutes old by then).
cluster_calls = Table(
    "cluster_calls",
    metadata,
    Column("id", String(32), primary_key=True),  # uuid4().hex
    Column("kind", String(16), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("taken_by", String(255)),
    Column("status", SmallInteger),
    Column("media_type", String(100)),
    Column("headers", JSON),
    Column("body", LargeBinary),
    Column("detail", JSON),  # an error's detail, rendered by the API as its own errors
)
Index("ix_cluster_calls_created_at", cluster_calls.c.created_at)
