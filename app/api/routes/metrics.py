"""Prometheus: `/metrics` (the service and every monitor) and blackbox_exporter's `/probe`."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Response
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.concurrency import run_in_threadpool

from app.api.deps import ServicesDep
from app.api.elsewhere import UNAVAILABLE, on_a_worker
from app.cluster.handlers import PROBE
from app.engine import ondemand
from app.metrics.probe import SCRAPE_TIMEOUT_HEADER, ProbeRefused, render_probe

router = APIRouter(tags=["metrics"])
_TEXT: dict[str, Any] = {"content": {CONTENT_TYPE_LATEST: {}}}


@router.get(
    "/metrics",
    summary="Prometheus metrics: the service's own and every monitor's",
    response_class=Response,
    responses={200: {"description": "Prometheus text exposition.", **_TEXT}},
)
async def metrics(
    services: ServicesDep, accept_encoding: Annotated[str | None, Header()] = None
) -> Response:
    """The service's own metrics (`urlhealth_*`, `process_*`, `python_*`), then per monitor,
    labelled `monitor` (its slug), `group` and `url` (without credentials or query),
    blackbox_exporter's `probe_*` series of its last check and `urlhealth_monitor_state`.
    Paused and never-checked monitors have their state only. Gzip-compressed when asked."""
    compress = _accepts_gzip(accept_encoding)
    # Reading the store and rendering ~150,000 series for 10,000 monitors: off the loop.
    body = await run_in_threadpool(services.metrics.render, compress)
    headers = {"Vary": "Accept-Encoding"}
    if compress:
        headers["Content-Encoding"] = "gzip"
    return Response(body, media_type=CONTENT_TYPE_LATEST, headers=headers)


@router.get(
    "/probe",
    summary="Check one target now, answered as blackbox_exporter answers",
    response_class=Response,
    responses={
        200: {"description": "blackbox_exporter's probe_* series.", **_TEXT},
        400: {"description": "No or invalid target, or an unknown module (plain text)."},
        429: {"description": "Too many checks in progress."},
        **UNAVAILABLE,
    },
)
async def probe(
    services: ServicesDep,
    target: Annotated[
        str | None, Query(description="URL or host:port (then http://) to check.")
    ] = None,
    module: Annotated[
        str | None,
        Query(
            description="Check profile: `http_2xx` or a `[modules.<name>]` of the monitors "
            "file. Default `http_2xx`."
        ),
    ] = None,
    scrape_timeout: Annotated[str | None, Header(alias=SCRAPE_TIMEOUT_HEADER)] = None,
) -> Response:
    """For a Prometheus multi-target scrape config written for blackbox_exporter: point its
    `__address__` at urlhealth. The destination policy applies: a blocked target answers
    `probe_success 0`, and a comment says why."""
    try:
        request = services.prober.prepare(target, module, scrape_timeout)
    except ProbeRefused as exc:
        return Response(f"{exc}\n", status_code=400, media_type="text/plain")
    options = request.options
    longest = ondemand.longest_s(options, services.settings)
    if services.calls is not None and services.calls.elsewhere:  # an API-only replica
        arguments = {"target": target, "module": module, "scrape_timeout": scrape_timeout}
        return await on_a_worker(services.calls, PROBE, arguments, longest)
    (future,) = services.dispatcher.check_now([request.url], options, parsed=[request.parsed])
    waiting = asyncio.wrap_future(future)
    await asyncio.wait([waiting], timeout=longest)
    body = render_probe(ondemand.final(request.url, waiting))
    return Response(body, media_type=CONTENT_TYPE_LATEST)


def _accepts_gzip(header: str | None) -> bool:
    for item in (header or "").split(","):
        coding, _, params = item.strip().partition(";")
        if coding.strip().lower() == "gzip":
            return params.replace(" ", "") not in ("q=0", "q=0.0", "q=0.00", "q=0.000")
    return False
