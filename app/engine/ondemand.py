"""Checks someone waits for (`POST /v1/check`, `/probe`, a monitor's check-now): how long
to wait, what an unfinished one reads as, results in request order. Shared by the routes of
a single process and by a worker answering an API-only replica's call (app/cluster/), so
both answer alike."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from app.config import Settings
from app.engine.checker import unfinished_result
from app.engine.options import CheckOptions
from app.engine.urls import DedupeKey, dedupe_key
from app.schemas.results import CheckResult, ErrorKind

# Beyond the check deadline, time for a worker to become free before the answer is abandoned.
QUEUE_ALLOWANCE_S = 5.0
# Beyond a monitor check's longest run, before check-now answers 504.
MONITOR_MARGIN_S = 10.0


class Settled(Protocol):
    """A future of either kind (concurrent or asyncio): what reading its end needs."""

    def cancelled(self) -> bool: ...

    def done(self) -> bool: ...

    def result(self) -> CheckResult: ...


def longest_s(options: CheckOptions, settings: Settings) -> float:
    """Each attempt has its own deadline, and retries wait between attempts."""
    longest = (options.retries + 1) * options.timeout_s
    longest += options.retries * settings.retry_max_delay_s
    return longest + QUEUE_ALLOWANCE_S


def longest_monitor_check_s(settings: Settings) -> float:
    """Every attempt at the longest timeout, every backoff at its cap, and a margin."""
    attempts = settings.max_retries + 1
    return (
        attempts * settings.max_timeout_s
        + settings.max_retries * settings.retry_max_delay_s
        + MONITOR_MARGIN_S
    )


def final(url: str, future: Settled) -> CheckResult:
    if future.cancelled():
        return unfinished_result(url, ErrorKind.CANCELLED, "the service shut down first")
    if not future.done():
        return unfinished_result(url, ErrorKind.TIMEOUT, "no worker became free in time")
    return future.result()


def in_request_order(
    submitted: Sequence[str], finals: Mapping[DedupeKey, CheckResult]
) -> list[CheckResult]:
    """One result per submitted URL, in request order; a duplicate shares its twin's check."""
    results = []
    for raw in submitted:
        result = finals[dedupe_key(raw)]
        results.append(result if result.url == raw else result.model_copy(update={"url": raw}))
    return results
