"""/metrics' whole text: the service's own families and the monitors', in one parseable body."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine

from app.db.engine import Database, open_database
from app.db.migrator import upgrade
from app.db.url import sqlalchemy_url
from app.db.writer import Writer
from app.engine.checker import Checker
from app.engine.dispatcher import Dispatcher
from app.metrics.exporter import Metrics
from app.store.memory import MemoryStore
from tests.support.engine import make_http


@pytest.fixture
def database() -> Iterator[Database]:
    """memory:// only: what is tested here is the same on every backend."""
    opened = open_database(sqlalchemy_url("memory://", Path(".")))
    upgrade(opened)
    yield opened
    opened.close()


@pytest.fixture
def dispatcher() -> Iterator[Dispatcher]:
    http = make_http()
    built = Dispatcher(MemoryStore(10, 3600), Checker(http), workers=2, max_queued=10)
    yield built
    built.close()
    http.close()


def names(body: bytes) -> set[str]:
    return {family.name for family in text_string_to_metric_families(body.decode())}


def test_one_body_holds_the_service_families_and_the_monitor_counts(
    database: Database, writer: Writer, dispatcher: Dispatcher
) -> None:
    metrics = Metrics(database.engine, dispatcher, writer)

    body = metrics.render()

    found = names(body)
    assert {"urlhealth_checks", "urlhealth_store_commit_seconds", "urlhealth_monitors"} <= found
    assert {"process_cpu_seconds", "python_info", "urlhealth_build_info"} <= found
    assert gzip.decompress(metrics.render(compress=True)).startswith(b"# HELP")
    assert "urlhealth_metrics_monitors_ok" in names(metrics.render())


def test_a_store_that_cannot_be_read_leaves_the_service_metrics_and_says_so(
    writer: Writer, dispatcher: Dispatcher, tmp_path: Path
) -> None:
    unmigrated = create_engine(f"sqlite:///{tmp_path / 'empty.db'}")  # no monitors table
    metrics = Metrics(unmigrated, dispatcher, writer)

    families = {f.name: f for f in text_string_to_metric_families(metrics.render().decode())}

    assert "urlhealth_checks" in families
    assert "urlhealth_monitors" not in families
    assert families["urlhealth_metrics_monitors_ok"].samples[0].value == 0.0
    unmigrated.dispose()
