"""The FastAPI application: `create_app(settings)` for tests and the CLI, `app` for uvicorn."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import anyio
from fastapi import FastAPI

from app import __version__
from app.alerts.contract import Senders
from app.api import errors
from app.api.auth import Authorized
from app.api.body_limit import BodyLimit
from app.api.loop_guard import RequestCounter, guard_loop, stop_guard
from app.api.routes import (
    alert_rules,
    alerts,
    channels,
    check,
    docs,
    health,
    jobs,
    keys,
    metrics,
    monitor_history,
    monitors,
    status,
)
from app.config import Settings, load_settings
from app.db.engine import DatabaseError
from app.engine.limiter import ConcurrencyLimiter, LimiterConfig
from app.engine.resolver import Resolver
from app.lifecycle.collector import collect_when_idle, defer_full_collections, restore
from app.services import Services
from app.web import routes as web

log = logging.getLogger("urlhealth")

DESCRIPTION = """
Check many URLs concurrently and learn, per URL, whether it is healthy and why not.

Submit a job with `POST /v1/jobs`, follow it with `GET /v1/jobs/{id}` or stream its results
as they finish with `GET /v1/jobs/{id}/stream`. For a few URLs, `POST /v1/check` answers
in one call.
"""


def _configure_logging(level: str) -> None:
    # uvicorn configures only its own loggers; ours print beside them, in the same format,
    # under `urlhealth serve` and plain `uvicorn app.main:app` alike.
    logger = logging.getLogger("urlhealth")
    logger.setLevel(level.upper())
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s:     %(name)s: %(message)s"))
        logger.addHandler(handler)
        logger.propagate = False


def create_app(
    settings: Settings | None = None,
    resolver: Resolver | None = None,
    alert_senders: Senders | None = None,
) -> FastAPI:
    """`resolver` replaces DNS, `alert_senders` the alert senders, for tests only."""
    settings = settings or load_settings()
    _configure_logging(settings.log_level)
    services = Services.build(settings, resolver, alert_senders)
    request_counts = [0]  # RequestCounter's: the loop guard reads it

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services.coordinator.mark_started()
        # Not "ready": uvicorn binds its sockets after this (`urlhealth serve` says when).
        log.info("urlhealth %s starting: %d workers", __version__, settings.workers)
        hangup = False
        tasks = [asyncio.create_task(collect_when_idle(services.dispatcher.idle))]
        defer_full_collections()
        if settings.adaptive_concurrency:
            limiter = ConcurrencyLimiter(LimiterConfig(ceiling=settings.workers))
            guard = guard_loop(services.dispatcher, limiter, request_counts)
            tasks.append(asyncio.create_task(guard))
        try:
            # Inside the try: a start that fails still releases what was built.
            if services.replica is not None:
                await anyio.to_thread.run_sync(services.replica.start)
            await anyio.to_thread.run_sync(services.monitoring.start)
            hangup = _on_sighup(services.monitors.request_reload)
            yield
        finally:
            for task in tasks:
                await stop_guard(task)
            if hangup:
                asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
            await anyio.to_thread.run_sync(services.monitoring.stop)
            restore()
            # Under `urlhealth serve` the drain began when the signal came; under plain
            # uvicorn it begins here. Either way, wait for it, then release the pool.
            services.coordinator.begin()
            await anyio.to_thread.run_sync(
                services.coordinator.wait, settings.shutdown_grace_s + 5.0
            )
            services.close()

    app = FastAPI(
        title="urlhealth",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # FastAPI's pages load from a CDN: app/api/routes/docs.py serves ours
        redoc_url=None,
    )
    app.state.services = services
    app.add_middleware(RequestCounter, counts=request_counts)
    errors.install(app)
    app.add_middleware(BodyLimit, max_bytes=settings.max_request_bytes)
    # /healthz, /readyz, /docs (and FastAPI's /openapi.json), the status page and badges
    for public in (health, docs):
        app.include_router(public.router)
    web_needs = [] if settings.status_page_public else [Authorized]
    app.include_router(web.router, dependencies=web_needs)
    app.include_router(keys.router)  # admin only, on the router itself
    protected = (
        status,
        jobs,
        check,
        monitor_history,
        monitors,
        channels,
        alert_rules,
        alerts,
        metrics,
    )
    for module in protected:  # the scope each route needs: app/api/auth.py
        app.include_router(module.router, dependencies=[Authorized])
    return app


def _on_sighup(reload: Callable[[], None]) -> bool:
    """SIGHUP reloads the monitors file, under `urlhealth serve` and plain uvicorn alike (its
    default action ends the process). The handler only asks; a thread of the monitors does
    the reload. Only the main thread's loop can take signals: an app served from another
    thread (tests) goes without, and says so."""
    try:
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, reload)
    except (ValueError, RuntimeError, NotImplementedError, AttributeError) as exc:
        log.debug("no SIGHUP handler (monitors file reload) here: %s", exc)
        return False
    return True


def __getattr__(name: str) -> FastAPI:
    # `uvicorn app.main:app` gets an app built from the environment on first access, so
    # importing this module (tests, the CLI) builds nothing.
    if name == "app":
        try:
            application = create_app()
        except DatabaseError as exc:
            # Plain uvicorn would print a traceback for what is a configuration problem.
            print(f"urlhealth: {exc}", file=sys.stderr)
            raise SystemExit(2) from None
        globals()["app"] = application
        return application
    raise AttributeError(name)
