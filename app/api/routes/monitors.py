"""Monitors: URLs checked on a schedule. Definitions here; reads never show secrets."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Body, Depends, HTTPException, Path, Query, Response, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from app.api.body import JSONBodyRoute
from app.api.deps import ServicesDep
from app.api.elsewhere import UNAVAILABLE, on_a_worker
from app.api.responses import JSONBytes
from app.cluster.handlers import MONITOR_CHECK
from app.db.writer import WriterClosed, WriterFull, WriterGaveUp
from app.engine import ondemand
from app.inputs import InputError, resolve_options
from app.monitors.errors import (
    MonitorConflict,
    MonitorNotFound,
    MonitorNotScheduled,
    MonitorsFileError,
    NoMonitorsFile,
)
from app.monitors.repository import MonitorQuery
from app.monitors.service import Monitors
from app.schemas.monitoring import Source
from app.schemas.monitors import (
    LABEL_NAME,
    MonitorCreate,
    MonitorPublic,
    MonitorsPublic,
    ReloadReport,
    StateFilter,
)
from app.schemas.results import CheckResult

router = APIRouter(prefix="/v1/monitors", tags=["monitors"], route_class=JSONBodyRoute)


async def get_monitors(services: ServicesDep) -> Monitors:  # async: no thread hop
    return services.monitors


MonitorsDep = Annotated[Monitors, Depends(get_monitors)]
Ref = Annotated[str, Path(description="The monitor's numeric id, or its slug.")]

_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"description": "No monitor with that id or slug."}
}
_READ_ONLY: dict[int | str, dict[str, Any]] = {
    409: {"description": "The name or slug is taken, or the monitor comes from the file."}
}


@contextmanager
def _answers() -> Iterator[None]:
    """Domain errors as HTTP answers."""
    try:
        yield
    except InputError as exc:
        raise RequestValidationError(exc.errors) from None
    except MonitorNotFound as exc:
        raise HTTPException(404, str(exc)) from None
    except MonitorConflict as exc:
        loc = ["path", "ref"] if exc.field == "source" else ["body", exc.field]
        raise HTTPException(409, [{"type": "conflict", "loc": loc, "msg": str(exc)}]) from None
    except (MonitorNotScheduled, NoMonitorsFile) as exc:
        raise HTTPException(409, str(exc)) from None
    except MonitorsFileError as exc:
        raise HTTPException(422, exc.errors) from None
    except WriterFull as exc:
        raise HTTPException(429, str(exc), {"Retry-After": "1"}) from None
    except (WriterClosed, WriterGaveUp, TimeoutError) as exc:
        msg = f"the change could not be stored now: {exc or type(exc).__name__}"
        raise HTTPException(503, msg, {"Retry-After": "5"}) from None


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=MonitorPublic,
    summary="Create a monitor",
    responses={
        409: {"description": "The name or slug is taken (by the API or the monitors file)."},
        422: {"description": "A field is invalid; `loc` names it."},
    },
)
def create_monitor(body: MonitorCreate, monitors: MonitorsDep, response: Response) -> Any:
    with _answers():
        created = monitors.create(body)
    response.headers["Location"] = f"/v1/monitors/{created.slug}"
    return created


@router.get("", response_model=MonitorsPublic, summary="Monitors, by id")
def list_monitors(
    monitors: MonitorsDep,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    group: Annotated[str | None, Query(description="Only this group.")] = None,
    label: Annotated[
        str | None, Query(description="Only monitors with this label: `name=value`.")
    ] = None,
    state: Annotated[StateFilter | None, Query(description="Only this state.")] = None,
    source: Annotated[Source | None, Query(description="`api` or `file`.")] = None,
) -> Any:
    pair = None
    if label is not None:
        name, equals, value = label.partition("=")
        if not equals or not LABEL_NAME.match(name):
            msg = f"a label filter is written name=value, the name matching {LABEL_NAME.pattern}"
            error = {"type": "value_error", "loc": ("query", "label"), "msg": msg}
            raise RequestValidationError([error])
        pair = (name, value)
    # Encoded once: a returned model would be validated and encoded again.
    page = monitors.list(MonitorQuery(group, pair, state, source), offset, limit)
    return JSONBytes(page.model_dump_json())


@router.post(
    "/reload",
    response_model=ReloadReport,
    summary="Reload the monitors file (as SIGHUP does)",
    responses={
        409: {"description": "No monitors file is set (setting `monitors_file`)."},
        422: {"description": "The file has errors; nothing changed. Each names monitor+field."},
    },
)
def reload_monitors(monitors: MonitorsDep) -> Any:
    with _answers():
        return monitors.reload()


@router.get("/{ref}", response_model=MonitorPublic, summary="A monitor", responses=_NOT_FOUND)
def get_monitor(ref: Ref, monitors: MonitorsDep) -> Any:
    with _answers():
        return JSONBytes(monitors.get(ref).model_dump_json())


@router.patch(
    "/{ref}",
    response_model=MonitorPublic,
    summary="Change a monitor (JSON merge patch, RFC 7396)",
    description="Send the fields to change; `null` removes one (it takes its default). "
    "Header values left out (or sent as `***`) are kept. Changing `url` or `options` "
    "restarts the unconfirmed streak (history is kept); changing `interval_s` reschedules "
    "from now.",
    responses={**_NOT_FOUND, **_READ_ONLY},
)
def patch_monitor(
    ref: Ref,
    patch: Annotated[dict[str, Any], Body(media_type="application/merge-patch+json")],
    monitors: MonitorsDep,
) -> Any:
    with _answers():
        return monitors.update(ref, patch)


@router.delete(
    "/{ref}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a monitor and its history",
    responses={**_NOT_FOUND, **_READ_ONLY},
)
def delete_monitor(ref: Ref, monitors: MonitorsDep) -> Response:
    with _answers():
        monitors.delete(ref)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{ref}/check",
    response_model=CheckResult,
    summary="Check a monitor now (secrets masked in the result)",
    responses={
        **_NOT_FOUND,
        409: {"description": "The monitor is paused (or not scheduled)."},
        **UNAVAILABLE,
    },
)
async def check_monitor(ref: Ref, services: ServicesDep) -> Any:
    longest = ondemand.longest_monitor_check_s(services.settings)
    if services.calls is not None and services.calls.elsewhere:  # an API-only replica
        with _answers():  # its own bound, not the longest any monitor may take
            monitor = await anyio.to_thread.run_sync(services.monitors.get, ref)
        with contextlib.suppress(InputError):  # a limit lowered since: the longest then
            options, _public = resolve_options(monitor.options, services.settings)
            longest = ondemand.longest_s(options, services.settings) + ondemand.MONITOR_MARGIN_S
        return await on_a_worker(services.calls, MONITOR_CHECK, {"ref": ref}, longest)
    with _answers():
        future = await anyio.to_thread.run_sync(services.monitors.check_now, ref)
        try:
            result = await asyncio.wait_for(asyncio.wrap_future(future), longest)
        except TimeoutError:
            raise HTTPException(504, "the check did not finish in time") from None
    return JSONResponse(result)
