"""Jobs: what a client submits and what it reads back."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from app.schemas.results import CheckResult


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"

    @property
    def final(self) -> bool:
        return self in (JobStatus.DONE, JobStatus.CANCELLED, JobStatus.INTERRUPTED)


class JobOptions(BaseModel):
    """How to check the URLs of a job. Every field is optional; defaults come from settings."""

    model_config = ConfigDict(extra="forbid")

    method: Literal["GET", "HEAD"] | None = Field(
        None, description="HTTP method. A HEAD answered 405 or 501 is retried once as GET."
    )
    timeout_s: float | None = Field(
        None, gt=0, description="One deadline for the whole check, all hops.", examples=[5]
    )
    follow_redirects: bool | None = Field(None, description="Follow 301/302/303/307/308.")
    max_redirects: int | None = Field(None, ge=0, description="Redirect hops allowed.")
    expected_status: str | list[int | str] | None = Field(
        None,
        description='Healthy status codes and ranges, as "200-299,304" or [200, "300-399"].',
        examples=["200-399"],
    )
    headers: dict[str, str] | None = Field(
        None, description="Extra request headers.", examples=[{"Accept": "text/html"}]
    )
    verify_tls: bool | None = Field(None, description="Verify TLS certificates.")
    max_body_bytes: int | None = Field(
        None, ge=0, description="Read at most this many body bytes; the rest is not fetched."
    )


class JobCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "urls": ["https://example.org/", "https://example.com/health"],
                    "options": {"timeout_s": 5, "expected_status": "200-299"},
                }
            ]
        },
    )

    urls: list[str] = Field(
        min_length=1,
        description="The URLs to check: http or https, no credentials. Duplicates are "
        "checked once.",
    )
    options: JobOptions = Field(default_factory=JobOptions)


class CheckOptionsPublic(BaseModel):
    """The options a job runs with, defaults filled in."""

    method: Literal["GET", "HEAD"]
    timeout_s: float
    follow_redirects: bool
    max_redirects: int
    expected_status: str = Field(examples=["200-399"])
    headers: dict[str, str]
    verify_tls: bool
    max_body_bytes: int


class JobSummary(BaseModel):
    """Counts by outcome, and of the failures by error kind."""

    up: int = 0
    down: int = 0
    errors: dict[str, int] = Field(default_factory=dict, examples=[{"timeout": 2}])


class JobHeader(BaseModel):
    """A job without its results."""

    id: str = Field(examples=["4f1c2a9e8b7d4e3f9a0b1c2d3e4f5a6b"])
    status: JobStatus
    total: int = Field(description="URLs to check, after removing duplicates.")
    completed: int = Field(description="Checks that reached a final state.")
    duplicates_removed: int = Field(0, description="Submitted URLs dropped as duplicates.")
    summary: JobSummary
    options: CheckOptionsPublic
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None


class JobPublic(JobHeader):
    """A job with one page of its results, in the order they finished."""

    results: list[CheckResult]
    offset: int = Field(description="Index of the first result on this page.")
    limit: int = Field(description="Page size asked for.")


class JobsPublic(BaseModel):
    jobs: list[JobHeader] = Field(description="Newest first.")
    count: int = Field(description="Jobs kept in total.")
    offset: int
    limit: int


class CheckRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"urls": ["https://example.org/"]}]},
    )

    urls: list[str] = Field(min_length=1, description="A few URLs, checked while you wait.")
    options: JobOptions = Field(default_factory=JobOptions)


class CheckResponse(BaseModel):
    results: list[CheckResult] = Field(description="In the order of the request.")


class StreamResult(BaseModel):
    type: Literal["result"] = "result"
    result: CheckResult


class StreamEnd(BaseModel):
    type: Literal["end"] = "end"
    job: JobHeader
