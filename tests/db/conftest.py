"""The database backends, for tests parametrised over all three: `memory://`, an SQLite file
in tmp_path, and a real PostgreSQL server started for the session (skipped when none can be
started here, except in CI, where that fails the run)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.db.engine import Database, open_database
from app.db.url import sqlalchemy_url
from tests.support.postgres import (
    PostgresServer,
    PostgresUnavailable,
    start_postgres,
    unavailable,
)

BACKENDS = ("memory", "sqlite", "postgresql")


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    try:
        server = start_postgres()
    except PostgresUnavailable as exc:
        unavailable(str(exc), ci=os.environ.get("CI") == "true")
    yield server
    server.remove()


@pytest.fixture
def pg_url(postgres: PostgresServer) -> Iterator[str]:
    """A fresh, empty database on the session's server, as users write its URL."""
    name = postgres.create_database()
    yield postgres.url(name)
    postgres.drop_database(name)


def url_for(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if backend == "memory":
        return "memory://"
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'urlhealth.db'}"
    return str(request.getfixturevalue("pg_url"))


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
