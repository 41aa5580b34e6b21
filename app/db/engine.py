"""Opening the database: one Engine per process, set up for its dialect, checked at open.

SQLite: WAL (readers never wait for the writer), a busy timeout (a writer waits for another
process's write instead of failing at once), foreign keys on, `synchronous=NORMAL`, and
incremental auto-vacuum (space freed by retention can be given back to the file system).
One process per SQLite file: an exclusive lock on `<file>.lock` refuses a second, so a
service starting never takes another live one's jobs for orphans.

PostgreSQL: psycopg 3 with a small pool whose connections are checked before use
(`pool_pre_ping`), so a server restart costs a reconnect, not an error.
"""

from __future__ import annotations

import fcntl
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, create_engine, event, text
from sqlalchemy.engine import URL, Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import QueuePool

from app.db.url import is_memory, masked

BUSY_TIMEOUT_MS = 5000
POOL_SIZE = 5
POOL_OVERFLOW = 5
CONNECT_TIMEOUT_S = 10
# Execution option read when a transaction begins on SQLite: "IMMEDIATE" for writers.
SQLITE_BEGIN = "urlhealth_sqlite_begin"


class DatabaseError(RuntimeError):
    """The database cannot be opened or used; the message names the URL (password masked)."""


class DatabaseLocked(DatabaseError):
    """Another process has this SQLite file open."""


@dataclass(eq=False)
class Database:
    """An open database. `engine` for reads; `write_engine` (the same pool) for writes: on
    SQLite its transactions begin IMMEDIATE, taking the write lock at BEGIN, where the busy
    timeout applies, rather than at the first write, where a conflict fails at once."""

    url: URL
    engine: Engine
    write_engine: Engine
    _lock_fd: int | None = None

    @property
    def masked_url(self) -> str:
        return masked(self.url)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def close(self) -> None:
        self.engine.dispose()
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = None

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_database(url: URL) -> Database:
    """Open and check the database; raises DatabaseError (DatabaseLocked for an SQLite
    file in use by another process) with the masked URL and the reason."""
    backend = url.get_backend_name()
    if backend == "sqlite":
        return _open_sqlite(url)
    if backend == "postgresql":
        engine = create_engine(
            url,
            pool_size=POOL_SIZE,
            max_overflow=POOL_OVERFLOW,
            pool_pre_ping=True,
            connect_args={"connect_timeout": CONNECT_TIMEOUT_S},
        )
        _probe(engine, url)
        return Database(url, engine, engine)
    raise DatabaseError(f"database {masked(url)}: unsupported backend {backend!r}")


def _open_sqlite(url: URL) -> Database:
    lock_fd = None
    if is_memory(url):
        # One connection, lent to one thread at a time: an in-memory database lives exactly
        # as long as its connection, so the pool keeps one. Not StaticPool, which lends the
        # one connection to every thread at once (a reader would run inside the writer's
        # transaction), nor a shared-cache URI, whose table locks fail at once (SQLITE_LOCKED,
        # deaf to busy_timeout) and whose named database is shared by every engine in the
        # process (tests would see each other's data). The price: a read waits for the
        # write batch in progress (they are short). Never recycled: a new connection would be
        # a new, empty database (SQLAlchemy replaces one only on a disconnect, which an
        # in-memory database does not have).
        engine = create_engine(
            url,
            poolclass=QueuePool,
            pool_size=1,
            max_overflow=0,
            connect_args={"check_same_thread": False},
        )
    else:
        lock_fd = _lock(url)
        engine = create_engine(
            url, pool_size=POOL_SIZE, max_overflow=POOL_OVERFLOW, pool_pre_ping=False
        )
    event.listen(engine, "connect", _sqlite_connect)
    event.listen(engine, "begin", _sqlite_begin)
    try:
        _probe(engine, url)
    except DatabaseError:
        if lock_fd is not None:
            os.close(lock_fd)
        raise
    return Database(url, engine, engine.execution_options(**{SQLITE_BEGIN: "IMMEDIATE"}), lock_fd)


def _lock(url: URL) -> int:
    path = Path(str(url.database))
    lock_path = path.with_name(path.name + ".lock")
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise DatabaseError(f"cannot open the database {masked(url)}: {exc}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise DatabaseLocked(
            f"the SQLite database {path} is in use by another process (pid {holder}, "
            f"lock {lock_path}); an SQLite file serves one urlhealth process: stop the "
            "other one, or give this one its own URLHEALTH_DATABASE_URL (PostgreSQL for "
            "several)"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    return fd


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # The driver's own transaction handling off: SQLAlchemy's begin event (below) emits
    # BEGIN itself, so that a writer can ask for BEGIN IMMEDIATE.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys = ON")
        # Before the first table exists, or it has no effect (and before WAL, which writes
        # the file's first page): then retention's space can be given back incrementally.
        # Set only where it is not yet: setting it is a write, which a database opened
        # read-only (a read-only mount, a full disk's remount) refuses, reads and all.
        if cursor.execute("PRAGMA auto_vacuum").fetchone()[0] != 2:  # 2: INCREMENTAL
            cursor.execute("PRAGMA auto_vacuum = INCREMENTAL")
        cursor.execute("PRAGMA journal_mode = WAL")
        # In WAL mode, NORMAL syncs at checkpoints, not at each commit: a crash of the
        # process loses nothing committed; a power loss or OS crash may lose the last
        # transactions committed before it, but never corrupts the database.
        cursor.execute("PRAGMA synchronous = NORMAL")
    finally:
        cursor.close()


def _sqlite_begin(connection: Connection) -> None:
    mode = connection.get_execution_options().get(SQLITE_BEGIN, "DEFERRED")
    connection.exec_driver_sql(f"BEGIN {mode}")


def _probe(engine: Engine, url: URL) -> None:
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        engine.dispose()
        raise DatabaseError(
            f"cannot open the database {masked(url)}: {_reason(exc, url)}"
        ) from None


def _reason(exc: SQLAlchemyError, url: URL) -> str:
    """The driver's message, first line, with the password scrubbed should a driver echo it."""
    original = getattr(exc, "orig", None) or exc
    reason = str(original).strip().splitlines()[0] if str(original).strip() else repr(original)
    if url.password:
        reason = reason.replace(str(url.password), "***")
    return reason
