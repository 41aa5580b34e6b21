"""Synchronous checks of a few URLs, for scripts that want an answer in one call."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter

from app.api.body import JSONBodyRoute
from app.api.deps import ServicesDep
from app.api.elsewhere import UNAVAILABLE, on_a_worker
from app.api.validation import prepare_urls, resolve_options
from app.cluster.handlers import CHECK
from app.engine import ondemand
from app.schemas.jobs import CheckRequest, CheckResponse

router = APIRouter(prefix="/v1", tags=["check"], route_class=JSONBodyRoute)


@router.post(
    "/check",
    response_model=CheckResponse,
    summary="Check a few URLs and wait for the results",
    responses={
        422: {"description": "A URL or option is invalid."},
        429: {"description": "Too many checks in progress."},
        **UNAVAILABLE,
    },
)
async def check(body: CheckRequest, services: ServicesDep) -> Any:
    settings = services.settings
    targets = prepare_urls(body.urls, settings, settings.max_sync_urls)
    options, _public = resolve_options(body.options, settings)
    longest = ondemand.longest_s(options, settings)
    if services.calls is not None and services.calls.elsewhere:  # an API-only replica
        arguments = {"body": body.model_dump(mode="json", exclude_unset=True)}
        return await on_a_worker(services.calls, CHECK, arguments, longest)
    futures = services.dispatcher.check_now(targets.urls, options, parsed=targets.parsed)
    waiting = [asyncio.wrap_future(future) for future in futures]
    await asyncio.wait(waiting, timeout=longest)
    finals = {
        key: ondemand.final(url, future)
        for key, url, future in zip(targets.keys, targets.urls, waiting, strict=True)
    }
    return CheckResponse(results=ondemand.in_request_order(body.urls, finals))
