"""URLHEALTH_DATABASE_URL as users write it, mapped to SQLAlchemy; the password never shown."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from app.config import SettingsError, load_settings
from app.db.url import DatabaseUrlError, is_memory, masked, sqlalchemy_url

SECRET = "pa55-w0rd-that-must-not-leak"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("URLHEALTH_"):
            monkeypatch.delenv(name)


@pytest.mark.parametrize(
    "written",
    [
        f"postgresql://app:{SECRET}@db.internal:5433/urlhealth",
        f"postgres://app:{SECRET}@db.internal:5433/urlhealth",
        f"POSTGRESQL://app:{SECRET}@db.internal:5433/urlhealth",
        f"postgresql+psycopg://app:{SECRET}@db.internal:5433/urlhealth",
    ],
)
def test_postgres_urls_select_psycopg_3(written: str, tmp_path: Path) -> None:
    url = sqlalchemy_url(written, tmp_path)

    assert url.drivername == "postgresql+psycopg"
    assert (url.username, url.password, url.host, url.port, url.database) == (
        "app",
        SECRET,
        "db.internal",
        5433,
        "urlhealth",
    )


def test_postgres_url_keeps_its_query_options(tmp_path: Path) -> None:
    url = sqlalchemy_url("postgresql://app@db/urlhealth?sslmode=require", tmp_path)

    assert url.query == {"sslmode": "require"}


def test_sqlite_url_is_taken_as_given(tmp_path: Path) -> None:
    url = sqlalchemy_url(f"sqlite:///{tmp_path}/elsewhere/x.db", tmp_path / "data")

    assert url.drivername == "sqlite"
    assert url.database == f"{tmp_path}/elsewhere/x.db"
    assert not (tmp_path / "data").exists()
    assert not (tmp_path / "elsewhere").exists()


def test_memory_is_an_in_process_sqlite_database(tmp_path: Path) -> None:
    url = sqlalchemy_url("memory://", tmp_path / "data")

    assert url.drivername == "sqlite"
    assert is_memory(url)
    assert not (tmp_path / "data").exists()


def test_unset_is_an_sqlite_file_in_the_data_dir_which_is_created(tmp_path: Path) -> None:
    data_dir = tmp_path / "nested" / "data"

    url = sqlalchemy_url(None, data_dir)

    assert url.drivername == "sqlite"
    assert url.database == str(data_dir / "urlhealth.db")
    assert data_dir.is_dir()
    assert not is_memory(url)


def test_masked_hides_the_password() -> None:
    url = sqlalchemy_url(f"postgresql://app:{SECRET}@db/urlhealth", Path("."))

    shown = masked(url)

    assert SECRET not in shown
    assert shown == "postgresql+psycopg://app:***@db/urlhealth"


@pytest.mark.parametrize(
    ("written", "reason"),
    [
        (f"mysql://app:{SECRET}@db/urlhealth", "unsupported scheme 'mysql'"),
        (f"postgresql+psycopg2://app:{SECRET}@db/urlhealth", "unsupported scheme"),
        (f"app:{SECRET}@db/urlhealth", "not a URL"),
        (f"postgresql://app:{SECRET}@db:notaport/urlhealth", "cannot parse"),
        ("memory://somewhere", "memory:// takes nothing after it"),
    ],
)
def test_bad_urls_are_refused_naming_the_setting_not_the_password(
    written: str, reason: str, tmp_path: Path
) -> None:
    with pytest.raises(DatabaseUrlError) as caught:
        sqlalchemy_url(written, tmp_path)

    message = str(caught.value)
    assert "URLHEALTH_DATABASE_URL" in message
    assert reason in message
    assert SECRET not in message
    assert caught.value.__cause__ is None  # no chained exception carries the URL either


def test_settings_refuse_a_bad_url_at_load_without_the_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("URLHEALTH_DATABASE_URL", f"mysql://app:{SECRET}@db/urlhealth")

    with pytest.raises(SettingsError) as caught:
        load_settings()

    assert "URLHEALTH_DATABASE_URL" in str(caught.value)
    assert "unsupported scheme 'mysql'" in str(caught.value)
    assert SECRET not in str(caught.value)


def test_settings_never_show_the_database_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("URLHEALTH_DATABASE_URL", f"postgres://app:{SECRET}@db/urlhealth")

    settings = load_settings()

    assert settings.database_url is not None
    assert settings.database_url.get_secret_value().endswith(f":{SECRET}@db/urlhealth")
    assert SECRET not in repr(settings)
    assert SECRET not in str(settings.model_dump())


def test_settings_defaults_create_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)

    settings = load_settings()

    assert settings.database_url is None
    assert settings.data_dir == Path("data")
    assert list(tmp_path.iterdir()) == []
