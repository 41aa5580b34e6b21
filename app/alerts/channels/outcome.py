"""What one send did, in the terms the delivery loop decides on: done, try again (and when),
or give up. The loop (retries, backoff, attempts) is the caller's; this only classifies."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

# Receivers' answers are quoted in errors this far: enough for Slack's "invalid_payload" or
# a JSON error, never a whole HTML error page.
ANSWER_QUOTE_CHARS = 300
# A Retry-After beyond this is taken as this: an alert held back an hour is a lost alert.
MAX_RETRY_AFTER_S = 3600.0


@dataclass(frozen=True, slots=True)
class SendOutcome:
    """`status_code` is the HTTP status, or for e-mail the SMTP reply code, when the receiver
    answered. `error` says what went wrong (or, with ok, what went only partly right)."""

    ok: bool
    retryable: bool
    status_code: int | None = None
    error: str | None = None
    retry_after_s: float | None = None


def delivered(status_code: int | None, note: str | None = None) -> SendOutcome:
    return SendOutcome(ok=True, retryable=False, status_code=status_code, error=note)


def failed(error: str, retryable: bool, status_code: int | None = None) -> SendOutcome:
    return SendOutcome(ok=False, retryable=retryable, status_code=status_code, error=error)


def from_status(status: int, answer: str, retry_after: str | None) -> SendOutcome:
    """An HTTP answer: 2xx delivered; 408, 429 and 5xx worth another try (after Retry-After
    when given); anything else (3xx included: a webhook URL must not redirect) final."""
    if 200 <= status < 300:
        return delivered(status)
    quoted = _quote(answer)
    error = f"HTTP {status}" + (f": {quoted}" if quoted else "")
    if 300 <= status < 400:
        return failed(f"{error} (redirects are not followed: use the final URL)", False, status)
    if status in (408, 429) or status >= 500:
        return SendOutcome(
            ok=False,
            retryable=True,
            status_code=status,
            error=error,
            retry_after_s=retry_after_s(retry_after),
        )
    return failed(error, False, status)


def retry_after_s(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or HTTP date), capped; None if absent
    or unreadable."""
    if not value:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    if seconds != seconds:  # NaN
        return None
    return min(max(0.0, seconds), MAX_RETRY_AFTER_S)


def _quote(answer: str) -> str:
    text = " ".join(answer.split())
    return text if len(text) <= ANSWER_QUOTE_CHARS else text[: ANSWER_QUOTE_CHARS - 1] + "…"
