"""Monitor history: results, incidents, uptime, and the summary of all monitors. Reads only
(plain defs: they read the database, off the event loop)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, Response
from pydantic import AwareDatetime

from app.api.body import JSONBodyRoute
from app.api.deps import ServicesDep
from app.api.responses import JSONBytes
from app.monitors.history import History
from app.schemas.history import (
    IncidentsPublic,
    MonitorResultsPublic,
    MonitorsSummaryPublic,
    UptimePublic,
    Window,
)
from app.services import Services

router = APIRouter(prefix="/v1", tags=["monitors"], route_class=JSONBodyRoute)

Ref = Annotated[
    str,
    Path(description="The monitor's id or its slug.", max_length=64, examples=["api-health"]),
]
_ERRORS: dict[int | str, dict[str, str]] = {
    404: {"description": "No monitor with that id or slug."},
}


def _found(services: Services, ref: str) -> tuple[History, int]:
    history = History(services.storage.database)
    monitor_id = history.find(ref)
    if monitor_id is None:
        raise HTTPException(404, f"no monitor with id or slug {ref!r}")
    return history, monitor_id


@router.get(
    "/monitors/{ref}/results",
    response_model=MonitorResultsPublic,
    summary="A monitor's results, newest first",
    responses=_ERRORS,
)
def results(
    ref: Ref,
    services: ServicesDep,
    since: Annotated[
        AwareDatetime | None, Query(description="Only results at or after this time.")
    ] = None,
    until: Annotated[AwareDatetime | None, Query(description="Only results before this time.")] = (
        None
    ),
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[
        str | None,
        Query(max_length=64, description="`next_cursor` of the previous page."),
    ] = None,
) -> Response:
    history, monitor_id = _found(services, ref)
    try:
        page = history.results(monitor_id, since=since, until=until, limit=limit, cursor=cursor)
    except ValueError as exc:
        detail = [{"loc": ["query", "cursor"], "msg": str(exc), "type": "value_error"}]
        raise HTTPException(422, detail) from None
    return JSONBytes(page.model_dump_json())


@router.get(
    "/monitors/{ref}/incidents",
    response_model=IncidentsPublic,
    summary="A monitor's incidents, newest first",
    responses=_ERRORS,
)
def incidents(
    ref: Ref,
    services: ServicesDep,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> Response:
    history, monitor_id = _found(services, ref)
    found = history.incidents(monitor_id, offset=offset, limit=limit)
    return JSONBytes(IncidentsPublic(incidents=found, offset=offset, limit=limit).model_dump_json())


@router.get(
    "/monitors/{ref}/uptime",
    response_model=UptimePublic,
    summary="Uptime, latency and incidents over a window",
    responses=_ERRORS,
)
def uptime(
    ref: Ref,
    services: ServicesDep,
    window: Annotated[
        Window,
        Query(description="The last N whole hours or UTC days, plus the current one so far."),
    ] = "24h",
) -> Response:
    history, monitor_id = _found(services, ref)
    return JSONBytes(history.uptime(monitor_id, window).model_dump_json())


@router.get(
    "/monitors-summary",
    response_model=MonitorsSummaryPublic,
    summary="Every monitor's state, 24 h uptime, last check and open incident",
)
def summary(services: ServicesDep) -> Response:
    covered = services.alerts.in_maintenance_now()
    return JSONBytes(History(services.storage.database).summary(covered).model_dump_json())
