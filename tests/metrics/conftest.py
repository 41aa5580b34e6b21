"""A migrated database with its writer, and real check results to store in monitor rows."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from app.db.engine import Database, open_database
from app.db.migrator import upgrade
from app.db.url import sqlalchemy_url
from app.db.writer import Writer
from app.engine.checker import Checker
from app.engine.options import CheckOptions
from tests.support.backends import BACKENDS, url_for
from tests.support.engine import make_http
from tests.support.servers import ThreadedUvicorn


@pytest.fixture(params=BACKENDS)
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    opened = open_database(sqlalchemy_url(url_for(request.param, tmp_path, request), tmp_path))
    upgrade(opened)
    yield opened
    opened.close()


@pytest.fixture
def writer(database: Database) -> Iterator[Writer]:
    started = Writer(database, flush_interval_s=0.01, queue_max=1000).start()
    yield started
    started.stop(10)


@pytest.fixture(scope="module")
def checked(target: ThreadedUvicorn) -> Iterator[Callable[..., bytes]]:
    """`checked("/status/500")`: a real check of the loopback target, as the JSON a monitor
    row keeps in `last_result`."""
    http = make_http()
    checker = Checker(http)

    def check(path: str, url: str | None = None) -> bytes:
        result = checker.check(url or f"{target.url}{path}", CheckOptions(timeout_s=5))
        return result.model_dump_json().encode()

    yield check
    http.close()
