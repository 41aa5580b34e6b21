"""Liveness and readiness, for orchestrators."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from app.api.body import JSONBodyRoute
from app.api.deps import ServicesDep
from app.schemas.status import Health, Readiness

router = APIRouter(tags=["health"], route_class=JSONBodyRoute)


@router.get("/healthz", response_model=Health, summary="Liveness: the process answers")
async def healthz() -> Health:
    return Health(status="ok")


# Load balancers probe with HEAD: the same answer without its body (the server drops it).
router.add_api_route(
    "/healthz", healthz, methods=["HEAD"], response_model=Health, summary="Liveness, by HEAD"
)


@router.get(
    "/readyz",
    response_model=Readiness,
    summary="Readiness: 503 while starting, shutting down, without its database, while "
    "the monitor scheduler stalls, or while a replica's queue worker restarts",
    responses={503: {"model": Readiness, "description": "Not ready."}},
)
async def readyz(services: ServicesDep) -> JSONResponse:
    coordinator = services.coordinator
    reason = services.store.unavailable()
    if coordinator.ready and reason is not None:
        # New jobs are refused meanwhile; results wait in the writer's bounded queue.
        return JSONResponse({"status": "database_unavailable", "reason": reason}, status_code=503)
    stalled = coordinator.ready and services.monitoring.stalled()
    if stalled:
        # The service answers, yet monitors are not being checked: watched from outside,
        # this is the one failure nothing inside would report.
        return JSONResponse({"status": "monitors_stalled", "reason": stalled}, status_code=503)
    replica = services.replica
    problem = coordinator.ready and replica is not None and replica.problem()
    if problem:
        # Serving, yet taking no task from the queue: the others carry its share.
        return JSONResponse({"status": "queue_unavailable", "reason": problem}, status_code=503)
    if coordinator.ready:
        return JSONResponse({"status": "ready"})
    state = "shutting_down" if coordinator.shutting_down else "starting"
    return JSONResponse({"status": state}, status_code=503)


router.add_api_route(
    "/readyz",
    readyz,
    methods=["HEAD"],
    response_model=Readiness,
    summary="Readiness, by HEAD: 503 while starting or shutting down",
    responses={503: {"model": Readiness, "description": "Not ready."}},
)
