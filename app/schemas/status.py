"""The status API's shape."""

from __future__ import annotations

from pydantic import BaseModel, Field

from app.schemas.jobs import JobStatus


class DatabaseStatus(BaseModel):
    """The database writer's counters and health."""

    backend: str = Field(description="`sqlite` or `postgresql`.", examples=["sqlite"])
    queued: int = Field(
        description="Writes waiting for the database; at db_queue_max new jobs get 429."
    )
    written: int = Field(description="Writes committed since start.")
    failed: int = Field(description="Writes the database refused.")
    batches: int = Field(description="Transactions committed since start.")
    dropped: int = Field(
        description="Writes the writer gave up: refused while its queue was full, or still "
        "unwritten when shutdown's flush timed out (db_flush_timeout_s)."
    )
    behind_s: float = Field(description="Age of the oldest write not yet committed.")
    retrying: int = Field(
        description="Writes held while the database is away, retried with backoff."
    )
    healthy: bool = Field(description="False while the database cannot be written.")
    last_error: str | None = Field(
        description="Why the database cannot be written (URL masked), while it cannot."
    )
    lost: int = Field(
        description="Results the store could not hand to the writer (its queue full for too "
        "long, or stopped): kept in memory, never on disk. Those refused by a full queue are "
        "also in `dropped`."
    )


class MonitorsStatus(BaseModel):
    """The monitor scheduler (app/monitors/scheduler.py)."""

    scheduled: int = Field(description="Monitors on the schedule (paused ones are not).")
    running: int = Field(description="Monitor checks handed out and not finished.")
    started: int = Field(description="Monitor checks started since start, manual ones too.")
    skipped: int = Field(
        description="Due times that came while the monitor's previous check was still going."
    )
    lag_p50_s: float = Field(description="Due to started, over the most recent checks.")
    lag_p99_s: float
    lag_max_s: float
    errors: int = Field(description="Hand-offs and records that failed (see the log).")


class StatusPublic(BaseModel):
    version: str = Field(examples=["0.1.0"])
    uptime_s: float = Field(description="Seconds since the service started.")
    workers: int = Field(description="Threads in the shared check pool.")
    checks_running: int = Field(description="Checks being fetched right now.")
    checks_queued: int = Field(description="Checks accepted and waiting for a worker.")
    max_queued_checks: int = Field(description="Beyond this, new jobs get 429.")
    checked_total: int = Field(description="Checks finished since start, all jobs.")
    jobs: dict[JobStatus, int] = Field(description="Jobs kept, by status.")
    retained_bytes: int = Field(
        description="Memory the jobs not yet wholly on disk take (running ones, and finished "
        "ones until their final state is written): their results' JSON, plus an estimate of "
        "each job's overhead."
    )
    retention_max_bytes: int = Field(
        description="The budget for retained_bytes: beyond it the oldest finished jobs leave "
        "memory even before they are on disk (running and queued ones never)."
    )
    shutting_down: bool
    database: DatabaseStatus
    monitors: MonitorsStatus


class Health(BaseModel):
    status: str = Field(examples=["ok"])


class Readiness(Health):
    reason: str | None = Field(
        None, description="Why not ready, when the database is unavailable (URL masked)."
    )
