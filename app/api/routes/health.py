"""Liveness and readiness, for orchestrators."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from app.api.body import JSONBodyRoute
from app.api.deps import ServicesDep
from app.schemas.status import Health

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
    response_model=Health,
    summary="Readiness: 503 while starting or shutting down",
    responses={503: {"model": Health, "description": "Not ready."}},
)
async def readyz(services: ServicesDep) -> JSONResponse:
    coordinator = services.coordinator
    if coordinator.ready:
        return JSONResponse({"status": "ready"})
    state = "shutting_down" if coordinator.shutting_down else "starting"
    return JSONResponse({"status": state}, status_code=503)


router.add_api_route(
    "/readyz",
    readyz,
    methods=["HEAD"],
    response_model=Health,
    summary="Readiness, by HEAD: 503 while starting or shutting down",
    responses={503: {"model": Health, "description": "Not ready."}},
)
