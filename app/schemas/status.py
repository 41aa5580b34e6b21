"""The status API's shape."""

from __future__ import annotations

from pydantic import BaseModel, Field

from app.schemas.jobs import JobStatus


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


class Health(BaseModel):
    status: str = Field(examples=["ok"])
