"""`/metrics`' whole answer: the service's own metrics through prometheus_client, then the
per-monitor families rendered from the store (app/metrics/monitors.py)."""

from __future__ import annotations

import gzip
import logging
import time
from collections.abc import Callable, Iterable, Iterator

from prometheus_client import (
    CollectorRegistry,
    GCCollector,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from app import __version__
from app.db.faults import describe
from app.metrics.monitors import MonitorFamilies
from app.metrics.service import AlertCounts, CheckCounts, ServiceCollector, WriterFigures

log = logging.getLogger("urlhealth.metrics")

# Level 1: ~30 ms of CPU turns 16 MB (10,000 monitors) into ~1.1 MB; level 6 costs three
# times that for 15% less (bench/metrics_scrape.py).
GZIP_LEVEL = 1


class Metrics:
    def __init__(
        self,
        engine: Engine,
        dispatcher: CheckCounts,
        writer: WriterFigures,
        max_queued: int | None = None,
        scheduler_stats: Callable[[], object | None] | None = None,
        alerts: Callable[[], Iterable[AlertCounts]] | None = None,
    ) -> None:
        """`engine`: the database's read engine (never the writer's)."""
        self.monitors = MonitorFamilies(engine)
        self._url = engine.url
        self.last_render_s: float | None = None  # the latest scrape's monitors
        self.monitors_ok = True
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(
            ServiceCollector(dispatcher, writer, max_queued, scheduler_stats, alerts)
        )
        self.registry.register(_Self(self))
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)

    def render(self, compress: bool = False) -> bytes:
        """The exposition text (gzip-compressed when `compress`). Blocks on the database
        read and takes tens to hundreds of ms of CPU for 10,000 monitors: call it off the
        event loop. A database that cannot be read leaves the monitors out (their series go
        stale) but not the service's own metrics, which say what is wrong with it."""
        started = time.perf_counter()
        try:
            monitors = self.monitors.render()
            self.monitors_ok = True
        except SQLAlchemyError as exc:
            log.warning("/metrics: cannot read the monitors: %s", describe(exc, self._url))
            monitors, self.monitors_ok = b"", False
        self.last_render_s = time.perf_counter() - started
        body = generate_latest(self.registry) + monitors
        return gzip.compress(body, compresslevel=GZIP_LEVEL) if compress else body


class _Self(Collector):
    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        info = InfoMetricFamily("urlhealth_build", "The running urlhealth.")
        info.add_metric([], {"version": __version__})
        yield info
        yield GaugeMetricFamily(
            "urlhealth_metrics_monitors_ok",
            "1 if this scrape read the monitors from the database, 0 if it could not.",
            value=1 if self._metrics.monitors_ok else 0,
        )
        last = self._metrics.last_render_s
        if last is not None:
            yield GaugeMetricFamily(
                "urlhealth_metrics_monitors_render_seconds",
                "How long this scrape took to read and render the monitors' series.",
                value=last,
            )
