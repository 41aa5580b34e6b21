"""The service's own metrics (urlhealth_*): counted where the work happens, read at scrape."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Connection, text

from app.db.engine import open_database
from app.db.url import sqlalchemy_url
from app.db.writer import Writer
from app.engine.checker import Checker
from app.engine.dispatcher import Dispatcher
from app.engine.options import CheckOptions
from app.metrics.service import AlertCounts, ServiceCollector
from app.store.memory import MemoryStore
from tests.support.engine import make_http, wait_until
from tests.support.servers import ThreadedUvicorn

Series = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture
def dispatcher() -> Iterator[Dispatcher]:
    http = make_http()
    built = Dispatcher(MemoryStore(10, 3600), Checker(http), workers=3, max_queued=50)
    yield built
    built.close()
    http.close()


@pytest.fixture
def writer(tmp_path: Path) -> Iterator[Writer]:
    """One backend is enough here: the writer times its commits the same way on each."""
    database = open_database(sqlalchemy_url(f"sqlite:///{tmp_path / 'w.db'}", tmp_path))
    started = Writer(database, flush_interval_s=0.01, queue_max=100).start()
    yield started
    started.stop(10)
    database.close()


@dataclass
class SchedulerStats:
    lag_p50_s: float
    lag_p99_s: float
    lag_max_s: float
    skipped: int


def scrape(collector: ServiceCollector) -> Series:
    registry = CollectorRegistry()
    registry.register(collector)
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(generate_latest(registry).decode())
        for sample in family.samples
    }


def test_checks_are_counted_by_outcome_and_error_kind(
    dispatcher: Dispatcher, writer: Writer, target: ThreadedUvicorn
) -> None:
    urls = [
        f"{target.url}/status/200",
        f"{target.url}/status/201",
        f"{target.url}/status/500",
        "http://169.254.169.254/latest/meta-data/",  # blocked: never contacted
    ]
    futures = dispatcher.check_now(urls, CheckOptions(timeout_s=5))
    kinds = [future.result(30).error for future in futures]
    assert [k.kind if k else None for k in kinds] == [None, None, "unexpected_status", "blocked"]
    # A worker counts its check just after handing over the result: wait for the last one.
    assert wait_until(lambda: sum(dispatcher.outcomes().values()) == len(urls))
    assert wait_until(lambda: dispatcher.counters()[:2] == (0, 0))

    series = scrape(ServiceCollector(dispatcher, writer, max_queued=50))

    assert series[("urlhealth_checks_total", frozenset({("outcome", "up")}))] == 2
    assert series[("urlhealth_checks_total", frozenset({("outcome", "down")}))] == 2
    assert series[("urlhealth_checks_total", frozenset({("outcome", "degraded")}))] == 0
    errors = {
        dict(labels)["kind"]: value
        for (name, labels), value in series.items()
        if name == "urlhealth_check_errors_total"
    }
    assert errors == {"unexpected_status": 1, "blocked": 1}
    assert series[("urlhealth_workers", frozenset())] == 3
    assert series[("urlhealth_checks_running", frozenset())] == 0
    assert series[("urlhealth_checks_queued", frozenset())] == 0
    assert series[("urlhealth_checks_queued_max", frozenset())] == 50


def test_the_store_writer_reports_queue_depth_and_commit_latency(
    dispatcher: Dispatcher, writer: Writer
) -> None:
    def write(connection: Connection) -> int:
        return int(connection.execute(text("SELECT 1")).scalar_one())

    for _ in range(3):
        assert writer.submit(write).result(30) == 1

    series = scrape(ServiceCollector(dispatcher, writer))

    commits = series[("urlhealth_store_commit_seconds_count", frozenset())]
    assert commits >= 3
    assert series[("urlhealth_store_commit_seconds_bucket", frozenset({("le", "+Inf")}))] == commits
    assert series[("urlhealth_store_commit_seconds_sum", frozenset())] > 0
    assert series[("urlhealth_store_write_queue_depth", frozenset())] == 0
    assert series[("urlhealth_store_writes_total", frozenset())] >= 3
    assert series[("urlhealth_store_healthy", frozenset())] == 1


def test_scheduler_lag_and_alerts_appear_once_their_sources_exist(
    dispatcher: Dispatcher, writer: Writer
) -> None:
    stats: list[SchedulerStats | None] = [None]
    absent = scrape(
        ServiceCollector(dispatcher, writer, scheduler_stats=lambda: stats[0], alerts=None)
    )
    assert not [name for name, _ in absent if "scheduler" in name or "alerts" in name]

    stats[0] = SchedulerStats(lag_p50_s=0.004, lag_p99_s=0.2, lag_max_s=0.9, skipped=7)
    sent = [AlertCounts(channel="ops-mail", sent=3, failed=1)]
    series = scrape(
        ServiceCollector(dispatcher, writer, scheduler_stats=lambda: stats[0], alerts=lambda: sent)
    )

    lag = "urlhealth_scheduler_lag_seconds"
    assert series[(lag, frozenset({("quantile", "0.5")}))] == 0.004
    assert series[(lag, frozenset({("quantile", "0.99")}))] == 0.2
    assert series[("urlhealth_scheduler_lag_max_seconds", frozenset())] == 0.9
    assert series[("urlhealth_scheduler_skipped_total", frozenset())] == 7
    assert series[("urlhealth_alerts_sent_total", frozenset({("channel", "ops-mail")}))] == 3
    assert series[("urlhealth_alerts_failed_total", frozenset({("channel", "ops-mail")}))] == 1
