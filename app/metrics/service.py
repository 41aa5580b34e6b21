"""The service's own metrics (urlhealth_*), read from the parts that keep them at scrape time.

Nothing is counted here: the dispatcher counts checks under the lock its workers take anyway,
the writer times its commits on its own thread, the scheduler keeps its lag. This collector
only copies their figures into prometheus_client's metric families.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Protocol

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from app.db.durations import DurationsSnapshot
from app.db.writer import WriterStats

OUTCOMES = ("up", "degraded", "down")


class CheckCounts(Protocol):
    """What the dispatcher tells (app/engine/dispatcher.py)."""

    @property
    def workers(self) -> int: ...

    def counters(self) -> tuple[int, int, int]: ...

    def outcomes(self) -> Mapping[tuple[str, str], int]: ...


class WriterFigures(Protocol):
    """What the store's writer tells (app/db/writer.py)."""

    def stats(self) -> WriterStats: ...

    def commit_durations(self) -> DurationsSnapshot: ...


@dataclass(frozen=True, slots=True)
class AlertCounts:
    """One alert channel's deliveries since start (the alerts issue provides them)."""

    channel: str
    sent: int
    failed: int


class ServiceCollector(Collector):
    def __init__(
        self,
        dispatcher: CheckCounts,
        writer: WriterFigures,
        max_queued: int | None = None,
        scheduler_stats: Callable[[], object | None] | None = None,
        alerts: Callable[[], Iterable[AlertCounts]] | None = None,
    ) -> None:
        """`scheduler_stats`: the monitor scheduler's stats() (an object with lag_p50_s,
        lag_p99_s, lag_max_s and skipped), or None while there is none. `alerts`: each
        channel's deliveries, once alerts exist."""
        self._dispatcher = dispatcher
        self._writer = writer
        self._max_queued = max_queued
        self._scheduler_stats = scheduler_stats
        self._alerts = alerts

    def collect(self) -> Iterator[Metric]:
        yield from self._checks()
        yield from self._store()
        yield from self._scheduler()
        yield from self._alert_counts()

    def _checks(self) -> Iterator[Metric]:
        running, queued, _ = self._dispatcher.counters()
        by_outcome: Counter[str] = Counter(dict.fromkeys(OUTCOMES, 0))
        by_kind: Counter[str] = Counter()
        for (outcome, kind), count in self._dispatcher.outcomes().items():
            by_outcome[outcome] += count
            if kind:
                by_kind[kind] += count
        checks = CounterMetricFamily(
            "urlhealth_checks", "Checks run since start, by outcome.", labels=["outcome"]
        )
        for outcome, count in by_outcome.items():
            checks.add_metric([outcome], count)
        yield checks
        errors = CounterMetricFamily(
            "urlhealth_check_errors",
            "Checks run since start that were not ok, by error kind.",
            labels=["kind"],
        )
        for kind, count in sorted(by_kind.items()):
            errors.add_metric([kind], count)
        yield errors
        yield GaugeMetricFamily(
            "urlhealth_checks_running", "Checks being fetched right now.", value=running
        )
        yield GaugeMetricFamily(
            "urlhealth_checks_queued", "Checks accepted and waiting for a worker.", value=queued
        )
        if self._max_queued is not None:
            yield GaugeMetricFamily(
                "urlhealth_checks_queued_max",
                "Checks in progress beyond which new work is refused (429).",
                value=self._max_queued,
            )
        yield GaugeMetricFamily(
            "urlhealth_workers", "Threads in the shared check pool.", value=self._dispatcher.workers
        )

    def _store(self) -> Iterator[Metric]:
        stats = self._writer.stats()
        yield GaugeMetricFamily(
            "urlhealth_store_write_queue_depth",
            "Writes waiting for the database writer.",
            value=stats.queued,
        )
        yield GaugeMetricFamily(
            "urlhealth_store_behind_seconds",
            "Age of the oldest write not yet committed.",
            value=stats.behind_s,
        )
        yield GaugeMetricFamily(
            "urlhealth_store_healthy",
            "1 while the database can be written, 0 while the writer retries an outage.",
            value=1 if stats.healthy else 0,
        )
        for name, help_text, value in (
            ("writes", "Writes committed since start.", stats.written),
            ("write_failures", "Writes the database refused.", stats.failed),
            ("writes_dropped", "Writes given up: queue full, or unwritten at stop.", stats.dropped),
        ):
            yield CounterMetricFamily(f"urlhealth_store_{name}", help_text, value=value)
        commits = self._writer.commit_durations()
        cumulative, buckets = 0, []
        for bound, count in zip((*commits.bounds, float("inf")), commits.counts, strict=True):
            cumulative += count
            buckets.append((_bound(bound), cumulative))
        yield HistogramMetricFamily(
            "urlhealth_store_commit_seconds",
            "Committed database transactions, begin to commit.",
            buckets=buckets,
            sum_value=commits.sum_s,
        )

    def _scheduler(self) -> Iterator[Metric]:
        stats = self._scheduler_stats() if self._scheduler_stats is not None else None
        if stats is None:
            return
        lag = GaugeMetricFamily(
            "urlhealth_scheduler_lag_seconds",
            "Monitor checks' lag, due to started, over the scheduler's recent window.",
            labels=["quantile"],
        )
        for quantile, attribute in (("0.5", "lag_p50_s"), ("0.99", "lag_p99_s")):
            value = getattr(stats, attribute, None)
            if value is not None:
                lag.add_metric([quantile], value)
        yield lag
        most = getattr(stats, "lag_max_s", None)
        if most is not None:
            yield GaugeMetricFamily(
                "urlhealth_scheduler_lag_max_seconds",
                "The longest lag in the scheduler's recent window.",
                value=most,
            )
        skipped = getattr(stats, "skipped", None)
        if skipped is not None:
            yield CounterMetricFamily(
                "urlhealth_scheduler_skipped",
                "Monitor runs skipped because the previous one was still running.",
                value=skipped,
            )

    def _alert_counts(self) -> Iterator[Metric]:
        # The alerts issue passes `alerts`; until then these families are absent.
        if self._alerts is None:
            return
        sent = CounterMetricFamily(
            "urlhealth_alerts_sent", "Alerts delivered, by channel.", labels=["channel"]
        )
        failed = CounterMetricFamily(
            "urlhealth_alerts_failed", "Alerts that could not be delivered.", labels=["channel"]
        )
        for counts in self._alerts():
            sent.add_metric([counts.channel], counts.sent)
            failed.add_metric([counts.channel], counts.failed)
        yield sent
        yield failed


def _bound(seconds: float) -> str:
    return "+Inf" if seconds == float("inf") else repr(seconds)
