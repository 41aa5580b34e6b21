"""Jobs: what a client submits and what it reads back."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel

from app.schemas.assertions import Assertions
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
        None,
        gt=0,
        description="One deadline per attempt, in seconds, for all of it: DNS, connect, TLS, "
        "every read and write, every redirect hop. A retry gets a new one.",
        examples=[5],
    )
    follow_redirects: bool | None = Field(None, description="Follow 301/302/303/307/308.")
    max_redirects: int | None = Field(None, ge=0, description="Redirect hops allowed.")
    expected_status: str | list[int | str] | None = Field(
        None,
        description='Healthy status codes and ranges, as "200-299,304" or [200, "300-399"].',
        examples=["200-399"],
    )
    headers: dict[str, str] | None = Field(
        None,
        description="Extra request headers. `Host` only where the operator allows it (then "
        "for the first hop only); framing and hop-by-hop headers never.",
        examples=[{"Accept": "text/html"}],
    )
    sensitive_headers: list[str] | None = Field(
        None,
        description="Header names (any case) dropped, like Authorization, Cookie and "
        "Proxy-Authorization, when a redirect leads to another origin.",
        examples=[["X-Api-Key"]],
    )
    forward_headers_on_redirect: Literal["same-origin", "all"] | None = Field(
        None,
        description="`same-origin` (default): credentials and `sensitive_headers` are not "
        "sent after a redirect to another scheme, host or port (http on 80 to https on 443 "
        "of the same host keeps them); `all`: every header follows every redirect.",
    )
    verify_tls: bool | None = Field(None, description="Verify TLS certificates.")
    max_body_bytes: int | None = Field(
        None, ge=0, description="Read at most this many body bytes; the rest is not fetched."
    )
    retries: int | None = Field(
        None,
        ge=0,
        description="Extra attempts after a connection error, timeout, 429 or 5xx, with "
        "exponential backoff and jitter; a server's Retry-After is honoured up to a cap. "
        "Each attempt has its own timeout_s.",
    )
    assertions: Assertions | None = Field(
        None, description="Conditions the answer must meet; all failures are listed."
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

    method: Literal["GET", "HEAD"] = Field(description="HTTP method sent first.")
    timeout_s: float = Field(
        description="One deadline per attempt, in seconds, for all of it: DNS, connect, TLS, "
        "every read and write, every redirect hop. A retry gets a new one."
    )
    follow_redirects: bool = Field(description="Whether redirects are followed.")
    max_redirects: int = Field(description="Redirect hops allowed.")
    expected_status: str = Field(
        description="Healthy status codes and ranges, normalised.", examples=["200-399"]
    )
    headers: dict[str, str] = Field(description="Extra request headers sent with each check.")
    sensitive_headers: list[str] = Field(
        default_factory=list,
        description="Headers dropped with the credentials on a redirect to another origin "
        "(lowercase).",
    )
    forward_headers_on_redirect: Literal["same-origin", "all"] = Field(
        "same-origin", description="Which headers follow a redirect to another origin."
    )
    verify_tls: bool = Field(description="Whether TLS certificates are verified.")
    max_body_bytes: int = Field(description="Body bytes read at most per check.")
    retries: int = Field(0, description="Extra attempts allowed after a retryable failure.")
    assertions: Assertions | None = Field(None, description="Conditions the answer must meet.")


class JobSummary(BaseModel):
    """Counts by outcome, and of the failures by error kind."""

    up: int = Field(0, description="Checks that ended healthy.")
    degraded: int = Field(
        0, description="Checks that answered correctly but too slowly or near cert expiry."
    )
    down: int = Field(
        0, description="Checks that found the target unhealthy (not degraded, not cancelled)."
    )
    cancelled: int = Field(
        0,
        description="Checks that never ran: the job was cancelled, or the service shut down, "
        "before they started. Not counted as down.",
    )
    interrupted: int = Field(
        0,
        description="Checks cut off by the service shutting down while they ran. Not counted "
        "as down: the target was not shown unhealthy.",
    )
    errors: dict[str, int] = Field(
        default_factory=dict,
        description="Checks that were not ok, counted by error kind (degraded, cancelled and "
        "interrupted ones included). up + degraded + down + cancelled + interrupted = "
        "completed.",
        examples=[{"timeout": 2}],
    )


class JobHeader(BaseModel):
    """A job without its results."""

    id: str = Field(
        description="The job's id, for /v1/jobs/{id}.",
        examples=["4f1c2a9e8b7d4e3f9a0b1c2d3e4f5a6b"],
    )
    status: JobStatus = Field(
        description="`queued`, `running`, or final: `done`, `cancelled` or `interrupted` "
        "(the service shut down before every check finished)."
    )
    total: int = Field(description="URLs to check, after removing duplicates.")
    completed: int = Field(description="Checks that reached a final state.")
    duplicates_removed: int = Field(0, description="Submitted URLs dropped as duplicates.")
    summary: JobSummary = Field(description="Counts of the checks completed so far.")
    options: CheckOptionsPublic = Field(description="The options the checks run with.")
    created_at: datetime = Field(description="When the job was accepted (UTC).")
    started_at: datetime | None = Field(
        None, description="When its first check started (UTC); null while queued."
    )
    finished_at: datetime | None = Field(
        None, description="When its last check reached a final state (UTC); null until then."
    )


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
    results: list[CheckResult] = Field(
        description="One per submitted URL, in the order of the request (a duplicate URL is "
        "checked once and its result repeated)."
    )


class StreamResult(BaseModel):
    """A check finished."""

    type: Literal["result"] = Field("result", description="Marks a result line.")
    result: CheckResult = Field(description="The check's result.")


class StreamEnd(BaseModel):
    """The job ended: the last line of the stream."""

    type: Literal["end"] = Field("end", description="Marks the last line.")
    job: JobHeader = Field(description="The job in its final state.")


class StreamLine(RootModel[Annotated[StreamResult | StreamEnd, Field(discriminator="type")]]):
    """One line of a job's NDJSON stream: a result, or the final `end` line."""
