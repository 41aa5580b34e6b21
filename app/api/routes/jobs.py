"""Jobs: submit URLs, follow them, stream them, cancel them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status
from pydantic import AwareDatetime

from app.api.body import JSONBodyRoute
from app.api.deps import ServicesDep
from app.api.responses import JSONBytes
from app.api.stream import NDJSONResponse, open_stream
from app.api.validation import prepare_urls, resolve_options
from app.schemas.jobs import (
    JobCreate,
    JobHeader,
    JobPublic,
    JobsPublic,
    JobStatus,
    StreamLine,
)
from app.store.base import JobFilter

router = APIRouter(prefix="/v1/jobs", tags=["jobs"], route_class=JSONBodyRoute)

_ERRORS: dict[int | str, dict[str, str]] = {
    404: {"description": "No job with that id (never existed, or expired)."},
}

Offset = Annotated[int, Query(ge=0, description="Index of the first item to return.")]


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobHeader,
    summary="Submit URLs to check",
    responses={
        422: {"description": "A URL or option is invalid; `loc` names it, `msg` says why."},
        429: {"description": "Too many checks in progress; retry after `Retry-After` seconds."},
        503: {"description": "The service is shutting down."},
    },
)
def create_job(body: JobCreate, services: ServicesDep, response: Response) -> JobHeader:
    # A plain def: validating a large job runs on a worker thread, not on the event loop.
    settings = services.settings
    targets = prepare_urls(body.urls, settings, settings.max_urls_per_job)
    options, public = resolve_options(body.options, settings)
    if services.cluster_jobs is not None:  # on a cluster: the workers run it (issue 12)
        header = services.cluster_jobs.submit(targets.urls, public, targets.duplicates)
    else:
        header = services.dispatcher.submit_job(
            targets.urls, options, public, targets.duplicates, parsed=targets.parsed
        )
    response.headers["Location"] = f"/v1/jobs/{header.id}"
    return header


# Reads answer the store's JSON as it is (`response_model` documents it): validating and
# encoding up to 1,000 results as models again took the event loop tens of ms a page.
@router.get("", response_model=JobsPublic, summary="Recent jobs, newest first")
def list_jobs(
    services: ServicesDep,
    offset: Offset = 0,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    job_status: Annotated[
        JobStatus | None, Query(alias="status", description="Only jobs in this status.")
    ] = None,
    created_since: Annotated[
        AwareDatetime | None,
        Query(description="Only jobs created at or after this time (ISO 8601, with a zone)."),
    ] = None,
    created_until: Annotated[
        AwareDatetime | None,
        Query(description="Only jobs created before this time (ISO 8601, with a zone)."),
    ] = None,
) -> Response:
    # A plain def: finished jobs are listed from the database, off the event loop.
    where = JobFilter(job_status, created_since, created_until)
    return JSONBytes(services.store.list_json(offset, limit, where))


@router.get(
    "/{job_id}",
    response_model=JobPublic,
    summary="A job, with a page of its results in completion order",
    responses=_ERRORS,
)
def get_job(
    job_id: str,
    services: ServicesDep,
    offset: Offset = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Response:
    # A plain def: a finished job's page is read from the database, off the event loop.
    return JSONBytes(services.store.page_json(job_id, offset, limit))


@router.get(
    "/{job_id}/stream",
    summary="Stream results as they finish (NDJSON)",
    response_class=NDJSONResponse,
    responses={
        200: {
            "model": StreamLine,
            "description": "One JSON object a line: `result` lines in completion order, "
            "then one `end` line with the job's final status. A late client first gets the "
            "results that already finished.",
        },
        **_ERRORS,
    },
)
async def stream_job(job_id: str, services: ServicesDep) -> NDJSONResponse:
    lines = open_stream(services.store, job_id)
    return NDJSONResponse(lines, headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


@router.delete(
    "/{job_id}",
    response_model=JobHeader,
    summary="Cancel: checks not started end `cancelled`; running ones finish",
    responses=_ERRORS,
)
def cancel_job(job_id: str, services: ServicesDep) -> JobHeader:
    # A plain def: the checks it cancels are recorded, and may wait for the writer.
    if services.cluster_jobs is not None:  # on a cluster: through the database and queue
        return services.cluster_jobs.cancel(job_id)
    return services.dispatcher.cancel(job_id)
