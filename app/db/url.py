"""The database URL as users write it (`URLHEALTH_DATABASE_URL`), as SQLAlchemy needs it.

`postgresql://` and `postgres://` select psycopg 3; `sqlite:///PATH` is an SQLite file;
`memory://` is SQLite in this process's memory, discarded at exit (the same code path, see
app/db/engine.py for how one in-memory database is shared); unset is the SQLite file
`<data_dir>/urlhealth.db`. Messages never show the password: the URL may come with one.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

SETTING = "URLHEALTH_DATABASE_URL"
DEFAULT_FILE = "urlhealth.db"
MEMORY = "memory://"

_POSTGRES_SCHEMES = ("postgresql", "postgres", "postgresql+psycopg")
_ACCEPTED = "postgresql://..., sqlite:///PATH or memory://"


class DatabaseUrlError(ValueError):
    """The database URL cannot be used; the message names the setting, never the password."""


def check_database_url(text: str) -> None:
    """Raise DatabaseUrlError unless `text` is a URL `sqlalchemy_url` accepts."""
    _parse(text)


def sqlalchemy_url(database_url: str | None, data_dir: Path) -> URL:
    """The SQLAlchemy URL for the setting; unset means `<data_dir>/urlhealth.db`, and
    `data_dir` is created then (only then: an explicit SQLite path is taken as given)."""
    if database_url is not None:
        return _parse(database_url)
    data_dir.mkdir(parents=True, exist_ok=True)
    return URL.create("sqlite", database=str(data_dir / DEFAULT_FILE))


def masked(url: URL) -> str:
    """The URL for messages and logs: the password, if any, as `***`."""
    return url.render_as_string(hide_password=True)


def is_memory(url: URL) -> bool:
    """An in-process SQLite database (`memory://`, `sqlite://` or `sqlite:///:memory:`)."""
    return url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")


def _parse(text: str) -> URL:
    scheme, separator, rest = text.strip().partition("://")
    scheme = scheme.lower()
    if not separator:
        raise DatabaseUrlError(f"{SETTING}: not a URL; expected {_ACCEPTED}")
    if scheme == "memory":
        if rest:
            raise DatabaseUrlError(f"{SETTING}: memory:// takes nothing after it")
        return URL.create("sqlite")
    if scheme not in (*_POSTGRES_SCHEMES, "sqlite"):
        # Only the scheme is named: the rest of the URL may hold a password.
        raise DatabaseUrlError(f"{SETTING}: unsupported scheme {scheme!r}; expected {_ACCEPTED}")
    try:
        url = make_url(f"{scheme}://{rest}")
    except (ArgumentError, ValueError):
        raise DatabaseUrlError(
            f"{SETTING}: cannot parse the {scheme} URL (the password, if any, is not shown)"
        ) from None
    if scheme == "sqlite":
        return url
    return url.set(drivername="postgresql+psycopg")
