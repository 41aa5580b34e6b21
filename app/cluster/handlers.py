"""What a worker replica runs for an API-only replica's calls (app/cluster/calls.py), on its
own engine, answering as a single process's routes answer (app/api/routes/check.py,
metrics.py, monitors.py): same bodies, same status codes, same errors."""

from __future__ import annotations

import concurrent.futures
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST

from app.cluster.calls import Handler, Refused, Reply
from app.config import Settings
from app.engine import ondemand
from app.engine.dispatcher import Dispatcher, Overloaded, ShuttingDown
from app.inputs import InputError, prepare_urls, resolve_options
from app.metrics.probe import Prober, ProbeRefused, render_probe
from app.monitors.errors import MonitorNotFound, MonitorNotScheduled
from app.monitors.service import Monitors
from app.schemas.jobs import CheckRequest, CheckResponse

CHECK = "check"
PROBE = "probe"
MONITOR_CHECK = "monitor_check"


def handlers(
    settings: Settings, dispatcher: Dispatcher, prober: Prober, monitors: Monitors
) -> dict[str, Handler]:
    def check(arguments: dict[str, Any]) -> Reply:
        body = CheckRequest.model_validate(arguments["body"])
        try:
            targets = prepare_urls(body.urls, settings, settings.max_sync_urls)
            options, _public = resolve_options(body.options, settings)
        except InputError as exc:  # settings unlike the API replica's
            raise Refused(422, json.loads(json.dumps(exc.errors, default=str))) from None
        with _engine_errors():
            futures = dispatcher.check_now(targets.urls, options, parsed=targets.parsed)
        concurrent.futures.wait(futures, timeout=ondemand.longest_s(options, settings))
        finals = {
            key: ondemand.final(url, future)
            for key, url, future in zip(targets.keys, targets.urls, futures, strict=True)
        }
        response = CheckResponse(results=ondemand.in_request_order(body.urls, finals))
        return Reply(200, response.model_dump_json().encode())

    def probe(arguments: dict[str, Any]) -> Reply:
        try:
            request = prober.prepare(
                arguments["target"], arguments["module"], arguments["scrape_timeout"]
            )
        except ProbeRefused as exc:
            return Reply(400, f"{exc}\n".encode(), "text/plain")
        with _engine_errors():
            (future,) = dispatcher.check_now(
                [request.url], request.options, parsed=[request.parsed]
            )
        concurrent.futures.wait([future], timeout=ondemand.longest_s(request.options, settings))
        return Reply(200, render_probe(ondemand.final(request.url, future)), CONTENT_TYPE_LATEST)

    def monitor_check(arguments: dict[str, Any]) -> Reply:
        try:
            future = monitors.check_now(arguments["ref"], load=True)
        except MonitorNotFound as exc:
            raise Refused(404, str(exc)) from None
        except MonitorNotScheduled as exc:
            raise Refused(409, str(exc)) from None
        with _engine_errors():
            try:
                result = future.result(ondemand.longest_monitor_check_s(settings))
            except TimeoutError:
                raise Refused(504, "the check did not finish in time") from None
            except concurrent.futures.CancelledError:
                raise ShuttingDown("the service shut down first") from None
        return Reply(200, _json(result))

    return {CHECK: check, PROBE: probe, MONITOR_CHECK: monitor_check}


@contextmanager
def _engine_errors() -> Iterator[None]:
    """The engine's refusals, as the API's handlers (app/api/errors.py) answer them."""
    try:
        yield
    except Overloaded as exc:
        headers = {"Retry-After": str(exc.retry_after_s)}
        raise Refused(429, f"too many checks in progress: {exc}", headers) from None
    except ShuttingDown as exc:
        raise Refused(503, str(exc), {"Retry-After": "5"}) from None


def _json(content: Any) -> bytes:
    """As Starlette's JSONResponse renders."""
    return json.dumps(
        content, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")
    ).encode("utf-8")
