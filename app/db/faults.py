"""Telling a database that is away from a write that is wrong.

An outage (the server unreachable or restarting, the connection lost, the disk full, the
database read-only, another process holding the write lock past the busy timeout) passes:
the writer keeps the batch and tries again. A bad write (a duplicate key, a missing table, a
value the column refuses) fails the same way every time: it fails alone. SQLAlchemy's
OperationalError is not the line between them: SQLite raises it for a missing table too, so
the driver's own code decides, and only an unknown driver falls back to the class.
"""

from __future__ import annotations

import sqlite3

import psycopg
from sqlalchemy.engine import URL
from sqlalchemy.exc import (
    DBAPIError,
    DisconnectionError,
    InterfaceError,
    OperationalError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeout

from app.db.url import masked

# Primary result codes (the extended ones add a suffix: SQLITE_IOERR_WRITE, ...).
_SQLITE_TRANSIENT = frozenset(
    {
        "SQLITE_FULL",  # disk (or max_page_count) full
        "SQLITE_READONLY",
        "SQLITE_IOERR",
        "SQLITE_BUSY",  # another process's write lock, past the busy timeout
        "SQLITE_LOCKED",
        "SQLITE_CANTOPEN",
        "SQLITE_NOMEM",
        "SQLITE_PROTOCOL",
    }
)
# SQLSTATE classes: connection exception, transaction rollback (serialization, deadlock),
# insufficient resources (disk full, too many connections), operator intervention (shutdown,
# cannot connect now), system error (I/O).
_PG_TRANSIENT_CLASSES = frozenset({"08", "40", "53", "57", "58"})
_PG_TRANSIENT_STATES = frozenset({"25006"})  # read-only transaction: a standby, a failover


def is_outage(exc: BaseException) -> bool:
    """True if `exc` says the database cannot be reached or written just now, so the same
    write may succeed later; False for a write that is wrong in itself."""
    if isinstance(exc, DisconnectionError | PoolTimeout):
        return True
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    original = exc.orig
    if isinstance(original, sqlite3.Error):
        name = getattr(original, "sqlite_errorname", "") or ""
        return "_".join(name.split("_")[:2]) in _SQLITE_TRANSIENT
    if isinstance(original, psycopg.Error):
        state = original.sqlstate
        if state is None:  # raised by the client: no server answered
            return isinstance(original, psycopg.OperationalError | psycopg.InterfaceError)
        return state[:2] in _PG_TRANSIENT_CLASSES or state in _PG_TRANSIENT_STATES
    return isinstance(exc, OperationalError | InterfaceError)


def describe(exc: BaseException, url: URL) -> str:
    """One short line for /readyz and the logs: the masked URL and the driver's reason (its
    first line), with the password scrubbed should a driver echo it."""
    original = getattr(exc, "orig", None) or exc
    lines = str(original).strip().splitlines()
    reason = lines[0].strip() if lines else type(original).__name__
    if url.password:
        reason = reason.replace(str(url.password), "***")
    return f"database {masked(url)}: {reason[:300]}"
