"""A migrated database on the session's PostgreSQL, for tests of one part of a replica
without its processes (the process tests start replicas through tests/support/cluster.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from app.db.engine import Database, open_database
from app.db.migrator import upgrade
from app.db.url import sqlalchemy_url


@pytest.fixture
def migrated(pg_url: str, tmp_path: Path) -> Iterator[Database]:
    opened = open_database(sqlalchemy_url(pg_url, tmp_path))
    upgrade(opened)
    yield opened
    opened.close()
