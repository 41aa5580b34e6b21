"""The status API: what the service is doing now."""

from __future__ import annotations

import dataclasses
import time

from fastapi import APIRouter, Response

from app import __version__
from app.api.body import JSONBodyRoute
from app.api.deps import ServicesDep
from app.api.responses import JSONBytes
from app.monitors.scheduler import SchedulerStats
from app.schemas.status import DatabaseStatus, MonitorsStatus, StatusPublic

router = APIRouter(prefix="/v1", tags=["status"], route_class=JSONBodyRoute)


@router.get("/status", response_model=StatusPublic, summary="Service status and counters")
async def status(services: ServicesDep) -> Response:
    # On the event loop: every figure is kept in memory, read under a lock held only to copy
    # it (jobs by status too: no query per request), so a thread would only add hops.
    running, queued, checked = services.dispatcher.counters()
    body = StatusPublic(
        version=__version__,
        uptime_s=round(time.monotonic() - services.started_monotonic, 3),
        workers=services.dispatcher.workers,
        checks_running=running,
        checks_queued=queued,
        max_queued_checks=services.settings.max_queued_checks,
        checked_total=checked,
        jobs=services.store.count_by_status(),
        retained_bytes=services.store.retained_bytes(),
        retention_max_bytes=services.store.max_bytes,
        shutting_down=services.coordinator.shutting_down,
        database=DatabaseStatus(
            backend=services.storage.database.dialect,
            lost=services.store.lost,
            **dataclasses.asdict(services.storage.writer.stats()),
        ),
        monitors=_monitors(services.monitoring.scheduler.stats()),
    )
    # Encoded once: returning the model would have FastAPI validate and encode it again.
    return JSONBytes(body.model_dump_json())


def _monitors(stats: SchedulerStats) -> MonitorsStatus:
    return MonitorsStatus(
        scheduled=stats.scheduled,
        running=stats.running,
        started=stats.started,
        skipped=stats.skipped,
        lag_p50_s=round(stats.lag_p50_s, 4),
        lag_p99_s=round(stats.lag_p99_s, 4),
        lag_max_s=round(stats.lag_max_s, 4),
        errors=stats.errors,
    )
