"""Dependencies the routes ask for, as `Annotated` aliases.

Async though they do no I/O: FastAPI runs a plain-function dependency in its thread pool, a
thread hop per request. Under load that hop (a thread to wake, the GIL to win, the loop to
wake again) was most of `/v1/status`'s latency beyond `/healthz`'s."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.config import Settings
from app.services import Services


async def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


async def get_settings(services: Annotated[Services, Depends(get_services)]) -> Settings:
    return services.settings


ServicesDep = Annotated[Services, Depends(get_services)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
