"""The alerts sent and owed (the outbox, with each delivery attempt), and maintenance windows
that silence them. Plain defs: they use the database."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response, status

from app.api.alert_errors import RESPONSES, call
from app.api.body import JSONBodyRoute
from app.api.deps import ServicesDep
from app.schemas.alerts import (
    AlertsPublic,
    AlertStatus,
    MaintenanceCreate,
    MaintenanceListPublic,
    MaintenancePublic,
)

router = APIRouter(prefix="/v1", tags=["alerts"], route_class=JSONBodyRoute)

Ref = Annotated[str, Path(description="The window's id.", max_length=20)]


@router.get(
    "/alerts",
    response_model=AlertsPublic,
    responses=RESPONSES,
    summary="Alerts, newest first: monitor, transition, channel, status, attempts",
)
def alerts(
    services: ServicesDep,
    status_: Annotated[AlertStatus | None, Query(alias="status")] = None,
    channel: Annotated[str | None, Query(max_length=64, description="Id or slug.")] = None,
    monitor: Annotated[str | None, Query(max_length=64, description="Id or slug.")] = None,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> AlertsPublic:
    found = call(lambda: services.alerts.alerts(status_, channel, monitor, offset, limit))
    return AlertsPublic(alerts=found, offset=offset, limit=limit)


@router.post(
    "/maintenance",
    status_code=status.HTTP_201_CREATED,
    response_model=MaintenancePublic,
    summary="Add a maintenance window",
    responses=RESPONSES,
)
def create_window(
    body: MaintenanceCreate, services: ServicesDep, response: Response
) -> MaintenancePublic:
    window = call(lambda: services.alerts.rulebook.create_window(body))
    response.headers["location"] = f"/v1/maintenance/{window.id}"
    return window


@router.get("/maintenance", response_model=MaintenanceListPublic, summary="Maintenance windows")
def windows(
    services: ServicesDep,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> MaintenanceListPublic:
    found = services.alerts.rulebook.windows(offset, limit)
    return MaintenanceListPublic(windows=found, offset=offset, limit=limit)


@router.get(
    "/maintenance/{ref}",
    response_model=MaintenancePublic,
    responses=RESPONSES,
    summary="A maintenance window",
)
def window(ref: Ref, services: ServicesDep) -> MaintenancePublic:
    return call(lambda: services.alerts.rulebook.window(ref))


@router.put(
    "/maintenance/{ref}",
    response_model=MaintenancePublic,
    responses=RESPONSES,
    summary="Replace a maintenance window",
)
def replace_window(ref: Ref, body: MaintenanceCreate, services: ServicesDep) -> MaintenancePublic:
    return call(lambda: services.alerts.rulebook.replace_window(ref, body))


@router.delete(
    "/maintenance/{ref}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=RESPONSES,
    summary="Remove a maintenance window",
)
def delete_window(ref: Ref, services: ServicesDep) -> Response:
    call(lambda: services.alerts.rulebook.delete_window(ref))
    return Response(status_code=status.HTTP_204_NO_CONTENT)
