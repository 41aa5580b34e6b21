"""Resolved per-check options: a small immutable value the engine can rely on."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from app.schemas.assertions import Assertions

Method = Literal["GET", "HEAD"]
# Which request headers follow a redirect to another origin (see headers.py).
ForwardPolicy = Literal["same-origin", "all"]


def parse_status_ranges(spec: str | list[int | str]) -> tuple[tuple[int, int], ...]:
    """Parse "200-399,418" (or a list of codes and ranges) into inclusive ranges."""
    items = spec.split(",") if isinstance(spec, str) else spec
    ranges: list[tuple[int, int]] = []
    for raw in items:
        text = str(raw).strip()
        if not text:
            continue
        low_text, sep, high_text = text.partition("-")
        try:
            low = int(low_text)
            high = int(high_text) if sep else low
        except ValueError:
            raise ValueError(f"{text!r} is not a status code or a range like 200-299") from None
        if not (100 <= low <= high <= 599):
            raise ValueError(f"{text!r} must be codes from 100 to 599, low to high")
        ranges.append((low, high))
    if not ranges:
        raise ValueError("at least one status code or range is needed")
    return tuple(ranges)


def format_status_ranges(ranges: tuple[tuple[int, int], ...]) -> str:
    """The inverse of parse_status_ranges: "200-399,418"."""
    return ",".join(f"{low}" if low == high else f"{low}-{high}" for low, high in ranges)


@dataclass(frozen=True, slots=True)
class CheckOptions:
    method: Method = "GET"
    timeout_s: float = 10.0
    follow_redirects: bool = True
    max_redirects: int = 10
    expected_status: tuple[tuple[int, int], ...] = ((200, 399),)
    headers: Mapping[str, str] = field(default_factory=dict)
    # Lowercase names dropped, with the credentials, on a redirect to another origin.
    sensitive_headers: tuple[str, ...] = ()
    forward_headers_on_redirect: ForwardPolicy = "same-origin"
    verify_tls: bool = True
    max_body_bytes: int = 1_048_576
    retries: int = 0
    assertions: Assertions | None = None

    def status_expected(self, code: int) -> bool:
        return any(low <= code <= high for low, high in self.expected_status)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Backoff between attempts: exponential from `base_s`, full jitter, capped at `max_delay_s`
    (which also caps a server's Retry-After)."""

    base_s: float = 0.5
    max_delay_s: float = 30.0
