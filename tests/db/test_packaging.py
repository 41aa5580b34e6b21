"""The test support's PostgreSQL decision, and the migrations shipped in an installed wheel."""

from __future__ import annotations

import fnmatch
import tomllib
from pathlib import Path

import pytest

from tests.support.postgres import unavailable

REPO = Path(__file__).resolve().parents[2]
MIGRATIONS = REPO / "app" / "db" / "migrations"


def test_without_a_server_the_postgres_tests_skip_saying_how_to_enable_them() -> None:
    with pytest.raises(pytest.skip.Exception) as caught:
        unavailable("no initdb found", ci=False)

    assert "no initdb found" in str(caught.value)
    assert "apt-get install postgresql" in str(caught.value)


def test_in_ci_without_a_server_the_postgres_tests_fail() -> None:
    with pytest.raises(pytest.fail.Exception) as caught:
        unavailable("no initdb found", ci=True)

    assert "CI must run the PostgreSQL tests" in str(caught.value)


def test_every_migration_file_ships_in_the_wheel() -> None:
    """Python files ship when their directory is a package; others need package data."""
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    package_data = pyproject["tool"]["setuptools"]["package-data"]["app.db.migrations"]

    for path in MIGRATIONS.rglob("*"):
        if path.is_dir() or "__pycache__" in path.parts:
            continue
        if path.suffix == ".py":
            assert (path.parent / "__init__.py").is_file(), f"{path} is in no package"
        else:
            relative = str(path.relative_to(MIGRATIONS))
            assert any(fnmatch.fnmatch(relative, glob) for glob in package_data), relative
