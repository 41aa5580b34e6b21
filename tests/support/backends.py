"""The three database backends tests run against: `memory://`, an SQLite file in tmp_path,
and a fresh database on the session's PostgreSQL server (the `pg_url` fixture)."""

from __future__ import annotations

from pathlib import Path

import pytest

BACKENDS = ("memory", "sqlite", "postgresql")


def url_for(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if backend == "memory":
        return "memory://"
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'urlhealth.db'}"
    return str(request.getfixturevalue("pg_url"))
