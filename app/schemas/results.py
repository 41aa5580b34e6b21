"""The result of one check: the engine produces it, the store keeps it, the API shows it."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from app.schemas.assertions import FailedAssertion


class ErrorKind(StrEnum):
    """Why a check is not healthy. A fixed set: clients may switch on it."""

    TIMEOUT = "timeout"
    DNS = "dns"
    CONNECT = "connect"
    TLS = "tls"
    CONNECTION_RESET = "connection_reset"
    INVALID_RESPONSE = "invalid_response"
    TOO_MANY_REDIRECTS = "too_many_redirects"
    REDIRECT_LOOP = "redirect_loop"
    INVALID_REDIRECT = "invalid_redirect"
    UNEXPECTED_STATUS = "unexpected_status"
    ASSERTION_FAILED = "assertion_failed"
    BLOCKED = "blocked"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"
    INTERNAL = "internal"


ERROR_KIND_DOCS: dict[ErrorKind, str] = {
    ErrorKind.TIMEOUT: "the check's deadline passed (resolving, connecting, sending or reading)",
    ErrorKind.DNS: "the host name could not be resolved",
    ErrorKind.CONNECT: "the connection was refused or the host unreachable",
    ErrorKind.TLS: "the TLS handshake or certificate verification failed",
    ErrorKind.CONNECTION_RESET: "the server closed or reset the connection mid-answer",
    ErrorKind.INVALID_RESPONSE: "the server answered something that is not valid HTTP",
    ErrorKind.TOO_MANY_REDIRECTS: "more redirects than max_redirects",
    ErrorKind.REDIRECT_LOOP: "a redirect led back to a URL already visited",
    ErrorKind.INVALID_REDIRECT: "a redirect whose Location is missing, malformed or not http(s)",
    ErrorKind.UNEXPECTED_STATUS: "the final status code is not in expected_status",
    ErrorKind.ASSERTION_FAILED: "the answer failed assertions (see failed_assertions)",
    ErrorKind.BLOCKED: "the destination policy denies the address (the message names the rule)",
    ErrorKind.CANCELLED: "the check was cancelled before it started (job cancelled or shutdown)",
    ErrorKind.INTERRUPTED: "the check was still running when the service shut down",
    ErrorKind.INTERNAL: "a bug in urlhealth; the message says where",
}


class CheckError(BaseModel):
    model_config = ConfigDict(frozen=True)

    kind: ErrorKind = Field(
        description="Machine-readable reason. "
        + "; ".join(f"`{kind.value}`: {text}" for kind, text in ERROR_KIND_DOCS.items())
    )
    message: str = Field(description="Human-readable detail.", examples=["connection refused"])


class RedirectHop(BaseModel):
    model_config = ConfigDict(frozen=True)

    url: str = Field(description="The URL that answered with a redirect.")
    status_code: int = Field(description="Its redirect status.", examples=[301])
    location: str = Field(description="Where it pointed, resolved against its URL.")


class Timings(BaseModel):
    """Where the time went, in milliseconds. Zero for a phase that did not happen (a reused
    keep-alive connection has no dns, connect or tls)."""

    model_config = ConfigDict(frozen=True)

    dns: float = Field(0.0, description="Resolving the host name.")
    connect: float = Field(0.0, description="TCP connect.")
    tls: float = Field(0.0, description="TLS handshake.")
    ttfb: float = Field(0.0, description="Request sent to first response byte (headers).")
    transfer: float = Field(0.0, description="Reading the body.")
    total: float = Field(0.0, description="All of the above, end to end.")


class TlsInfo(BaseModel):
    """The TLS connection and the server's certificate (reported even with verify_tls off)."""

    model_config = ConfigDict(frozen=True)

    version: str | None = Field(None, description="TLS protocol.", examples=["TLSv1.3"])
    cipher: str | None = Field(
        None, description="Negotiated cipher suite.", examples=["TLS_AES_256_GCM_SHA384"]
    )
    verified: bool = Field(description="Whether the certificate was verified.")
    subject: str | None = Field(None, description="Certificate subject (CN).")
    issuer: str | None = Field(None, description="Certificate issuer (CN).")
    sans: list[str] = Field(default_factory=list, description="Subject alternative names.")
    not_before: datetime | None = Field(None, description="Certificate valid from (UTC).")
    not_after: datetime | None = Field(None, description="Certificate valid until (UTC).")
    days_left: int | None = Field(None, description="Whole days until not_after.")


class Attempt(BaseModel):
    """One try of a check that may be retried."""

    model_config = ConfigDict(frozen=True)

    attempt: int = Field(description="1 for the first try.")
    status_code: int | None = Field(None, description="The status this try got, if any.")
    error: CheckError | None = Field(None, description="Why this try failed, if it did.")
    elapsed_ms: float = Field(description="This try's time, measured as for the result.")
    waited_ms: float = Field(0.0, description="Backoff slept before this attempt.")


class CheckResult(BaseModel):
    """One URL's health, as measured by one check."""

    model_config = ConfigDict(
        frozen=True,
        json_schema_extra={
            "examples": [
                {
                    "url": "https://example.org/",
                    "ok": True,
                    "outcome": "up",
                    "status_code": 200,
                    "reason": "OK",
                    "elapsed_ms": 84.2,
                    "final_url": "https://example.org/",
                    "redirects": [],
                    "bytes_read": 1256,
                    "truncated": False,
                    "http_version": "HTTP/1.1",
                    "checked_at": "2026-11-24T19:00:00Z",
                    "error": None,
                }
            ]
        },
    )

    url: str = Field(description="The URL as submitted.")
    ok: bool = Field(
        description="True when the URL is healthy: an expected status and every assertion held."
    )
    outcome: Literal["up", "degraded", "down"] = Field(
        description="`up` when ok; `degraded` when it answered correctly but too slowly "
        "(max_latency_ms) or with a certificate near expiry (min_days_left); else `down`."
    )
    status_code: int | None = Field(None, description="Final HTTP status, if any answer came.")
    reason: str | None = Field(None, description="Final reason phrase.", examples=["OK"])
    elapsed_ms: float | None = Field(
        None,
        description="Milliseconds the check took: every attempt's connection setup, request "
        "and answer over all hops, plus retry backoff. When the target answered, answer times "
        "are its bytes' arrival as the kernel stamped them (plain HTTP on Linux), so a busy "
        "checker does not report latency the target never had; a check that failed counts "
        "wall time up to the failure.",
    )
    final_url: str | None = Field(None, description="The URL that gave the final answer.")
    redirects: list[RedirectHop] = Field(
        default_factory=list, description="The redirect hops followed, in order."
    )
    bytes_read: int = Field(0, description="Body bytes read from the final answer.")
    truncated: bool = Field(
        False, description="True when the body was longer than the read cap and was cut off."
    )
    http_version: str | None = Field(
        None, description="HTTP version of the final answer.", examples=["HTTP/1.1"]
    )
    remote_ip: str | None = Field(None, description="The address connected to, last hop.")
    timings_ms: Timings | None = Field(None, description="Phases of the final hop.")
    timings_all_hops_ms: Timings | None = Field(
        None, description="Phases summed over every hop, redirects included."
    )
    tls: TlsInfo | None = Field(None, description="For https: the connection's TLS facts.")
    failed_assertions: list[FailedAssertion] = Field(
        default_factory=list, description="Every assertion that failed, with what was seen."
    )
    attempts: list[Attempt] = Field(
        default_factory=list, description="Every try: one, or more when the job allows retries."
    )
    checked_at: datetime = Field(description="When the check started (UTC).")
    error: CheckError | None = Field(None, description="Why the check is not ok; null when ok.")
