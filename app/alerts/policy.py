"""How hard delivery tries: the scan, the pool, the lease on a claim, and the backoff between
attempts up to a number of attempts or an age (settings `alert_*`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from app.config import Settings


@dataclass(frozen=True, slots=True)
class DeliveryConfig:
    scan_interval_s: float = 5.0
    workers: int = 4
    lease_s: float = 120.0
    retry_base_s: float = 5.0
    retry_max_delay_s: float = 600.0
    max_attempts: int = 10
    max_age_s: float = 86_400.0

    @classmethod
    def from_settings(cls, settings: Settings) -> DeliveryConfig:
        return cls(
            settings.alert_scan_interval_s,
            settings.alert_send_workers,
            settings.alert_lease_s,
            settings.alert_retry_base_s,
            settings.alert_retry_max_delay_s,
            settings.alert_max_attempts,
            settings.alert_max_age_s,
        )


def retry_at(
    attempts: int,
    created_at: datetime,
    now: datetime,
    retry_after_s: float | None,
    base_s: float,
    max_delay_s: float,
    max_attempts: int,
    max_age_s: float,
) -> datetime | None:
    """When to try again after `attempts` failed, or None once attempts or age run out.
    Exponential backoff; a receiver's Retry-After wins when it asks for longer."""
    if attempts >= max_attempts:
        return None
    delay = min(max_delay_s, base_s * 2 ** (attempts - 1))
    if retry_after_s is not None:
        delay = max(delay, min(retry_after_s, max_delay_s))
    at = now + timedelta(seconds=delay)
    if at - created_at > timedelta(seconds=max_age_s):
        return None
    return at
