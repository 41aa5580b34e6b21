"""The database backends, for tests parametrised over all three: `memory://`, an SQLite file
in tmp_path, and a real PostgreSQL database on the session's server (tests/conftest.py's
`postgres` and `pg_url`: skipped when none can be started here, except in CI)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from app.db.engine import Database, open_database
from app.db.url import sqlalchemy_url
from tests.support.backends import BACKENDS, url_for


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return url_for(request.param, tmp_path, request)


@pytest.fixture(params=("sqlite", "postgresql"))
def shared_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database that a second connection (or process) can reach: not `memory://`."""
    return url_for(request.param, tmp_path, request)


@pytest.fixture
def database(database_url: str, tmp_path: Path) -> Iterator[Database]:
    opened = open_database(sqlalchemy_url(database_url, tmp_path))
    yield opened
    opened.close()
