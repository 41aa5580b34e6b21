"""Synchronous checks of a few URLs, for scripts that want an answer in one call."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter

from app.api.body import JSONBodyRoute
from app.api.deps import ServicesDep
from app.api.validation import prepare_urls, resolve_options
from app.engine.checker import unfinished_result
from app.engine.urls import dedupe_key
from app.schemas.jobs import CheckRequest, CheckResponse
from app.schemas.results import CheckResult, ErrorKind

router = APIRouter(prefix="/v1", tags=["check"], route_class=JSONBodyRoute)

# Beyond the check deadline, time for a worker to become free before the answer is abandoned.
_QUEUE_ALLOWANCE_S = 5.0


@router.post(
    "/check",
    response_model=CheckResponse,
    summary="Check a few URLs and wait for the results",
    responses={
        422: {"description": "A URL or option is invalid."},
        429: {"description": "Too many checks in progress."},
        503: {"description": "The service is shutting down."},
    },
)
async def check(body: CheckRequest, services: ServicesDep) -> CheckResponse:
    settings = services.settings
    targets = prepare_urls(body.urls, settings, settings.max_sync_urls)
    options, _public = resolve_options(body.options, settings)
    futures = services.dispatcher.check_now(targets.urls, options, parsed=targets.parsed)
    waiting = [asyncio.wrap_future(future) for future in futures]
    # Each attempt has its own deadline, and retries wait between attempts.
    longest = (options.retries + 1) * options.timeout_s
    longest += options.retries * settings.retry_max_delay_s
    await asyncio.wait(waiting, timeout=longest + _QUEUE_ALLOWANCE_S)
    finals = {
        key: _final(url, future)
        for key, url, future in zip(targets.keys, targets.urls, waiting, strict=True)
    }
    # One result per submitted URL, in request order; a duplicate shares its twin's check.
    results = []
    for raw in body.urls:
        result = finals[dedupe_key(raw)]
        results.append(result if result.url == raw else result.model_copy(update={"url": raw}))
    return CheckResponse(results=results)


def _final(url: str, future: asyncio.Future[CheckResult]) -> CheckResult:
    if future.cancelled():
        return unfinished_result(url, ErrorKind.CANCELLED, "the service shut down first")
    if not future.done():
        return unfinished_result(url, ErrorKind.TIMEOUT, "no worker became free in time")
    return future.result()
