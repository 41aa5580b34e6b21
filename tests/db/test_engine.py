"""Opening the database: SQLite's pragmas in effect, one process per SQLite file, one shared
in-memory database, and clear errors (password masked) when it cannot be opened."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from sqlalchemy import text

from app.db.engine import Database, DatabaseError, DatabaseLocked, open_database
from app.db.url import sqlalchemy_url
from tests.support.postgres import PostgresServer
from tests.support.servers import free_port

SECRET = "pa55-w0rd-that-must-not-leak"


def _pragma(database: Database, name: str) -> object:
    with database.engine.connect() as connection:
        return connection.exec_driver_sql(f"PRAGMA {name}").scalar()


def test_sqlite_file_pragmas_are_in_effect_on_every_connection(tmp_path: Path) -> None:
    with (
        open_database(sqlalchemy_url(None, tmp_path)) as database,
        database.engine.connect() as first,
        database.engine.connect() as second,
    ):
        for connection in (first, second):
            values = {
                name: connection.exec_driver_sql(f"PRAGMA {name}").scalar()
                for name in ("journal_mode", "busy_timeout", "foreign_keys", "synchronous")
            }
            assert values == {
                "journal_mode": "wal",
                "busy_timeout": 5000,
                "foreign_keys": 1,
                "synchronous": 1,  # NORMAL
            }


def test_sqlite_auto_vacuum_is_incremental_once_tables_exist(tmp_path: Path) -> None:
    # auto_vacuum only takes effect if set before WAL writes the first page and before the
    # first table: the order of the pragmas at connect is what this pins.
    with open_database(sqlalchemy_url(None, tmp_path)) as database:
        with database.write_engine.begin() as connection:
            connection.exec_driver_sql("CREATE TABLE t (x INTEGER)")
        assert _pragma(database, "auto_vacuum") == 2  # INCREMENTAL


def test_memory_database_is_one_database_shared_by_threads(tmp_path: Path) -> None:
    with open_database(sqlalchemy_url("memory://", tmp_path)) as database:
        with database.write_engine.begin() as connection:
            connection.exec_driver_sql("CREATE TABLE t (x INTEGER)")
            connection.exec_driver_sql("INSERT INTO t VALUES (42)")
        seen: list[object] = []

        def read() -> None:
            with database.engine.connect() as connection:
                seen.append(connection.exec_driver_sql("SELECT x FROM t").scalar())

        reader = threading.Thread(target=read)
        reader.start()
        reader.join(timeout=30)

        assert seen == [42]
        assert not (tmp_path / "urlhealth.db").exists()


def test_two_memory_databases_are_separate(tmp_path: Path) -> None:
    with (
        open_database(sqlalchemy_url("memory://", tmp_path)) as one,
        open_database(sqlalchemy_url("memory://", tmp_path)) as other,
    ):
        with one.write_engine.begin() as connection:
            connection.exec_driver_sql("CREATE TABLE t (x INTEGER)")
        with other.engine.connect() as connection:
            assert (
                connection.exec_driver_sql(
                    "SELECT count(*) FROM sqlite_master WHERE name = 't'"
                ).scalar()
                == 0
            )


def test_memory_database_reads_never_see_an_open_write_transaction(tmp_path: Path) -> None:
    """The one connection is lent to one user at a time: a reader waits for the writer's
    commit instead of reading inside its transaction."""
    with open_database(sqlalchemy_url("memory://", tmp_path)) as database:
        with database.write_engine.begin() as connection:
            connection.exec_driver_sql("CREATE TABLE t (x INTEGER)")
        seen: list[object] = []
        reader_started = threading.Event()

        def read() -> None:
            reader_started.set()
            with database.engine.connect() as connection:
                seen.append(connection.exec_driver_sql("SELECT count(*) FROM t").scalar())

        reader = threading.Thread(target=read)
        with database.write_engine.begin() as connection:
            connection.exec_driver_sql("INSERT INTO t VALUES (1)")
            reader.start()
            reader_started.wait(10)
            reader.join(timeout=0.5)  # it must still be waiting for the connection
            assert seen == []
            connection.exec_driver_sql("INSERT INTO t VALUES (2)")
        reader.join(timeout=30)

        assert seen == [2]


def test_a_second_opener_of_one_sqlite_file_is_refused(tmp_path: Path) -> None:
    url = sqlalchemy_url(None, tmp_path)
    with open_database(url), pytest.raises(DatabaseLocked) as caught:
        open_database(url)

    message = str(caught.value)
    assert str(tmp_path / "urlhealth.db") in message
    assert "in use by another process" in message
    assert "urlhealth.db.lock" in message


def test_the_lock_is_released_at_close(tmp_path: Path) -> None:
    url = sqlalchemy_url(None, tmp_path)
    open_database(url).close()

    with open_database(url) as database:
        assert database.dialect == "sqlite"


def test_another_process_opening_the_file_is_refused_naming_this_pid(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'urlhealth.db'}"
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from app.db.engine import open_database\n"
        "from app.db.url import sqlalchemy_url\n"
        "try:\n"
        f"    open_database(sqlalchemy_url({url!r}, Path('.')))\n"
        "except Exception as exc:\n"
        "    print(type(exc).__name__, exc)\n"
        "    sys.exit(3)\n"
    )
    with open_database(sqlalchemy_url(url, tmp_path)):
        done = subprocess.run(
            [sys.executable, "-c", script],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            cwd=Path(__file__).resolve().parents[2],
        )

    assert done.returncode == 3, done.stderr
    assert done.stdout.startswith("DatabaseLocked")
    assert f"pid {os.getpid()}" in done.stdout


def test_sqlite_file_in_a_missing_directory_is_a_clear_error(tmp_path: Path) -> None:
    url = sqlalchemy_url(f"sqlite:///{tmp_path}/missing/x.db", tmp_path)

    with pytest.raises(DatabaseError) as caught:
        open_database(url)

    assert f"cannot open the database sqlite:///{tmp_path}/missing/x.db" in str(caught.value)
    assert "No such file or directory" in str(caught.value)


def test_unreachable_postgres_names_the_masked_url_and_the_reason(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()  # nothing listens there
    url = sqlalchemy_url(f"postgresql://app:{SECRET}@127.0.0.1:{port}/urlhealth", tmp_path)

    with caplog.at_level(logging.DEBUG), pytest.raises(DatabaseError) as caught:
        open_database(url)

    message = str(caught.value)
    shown = f"postgresql+psycopg://app:***@127.0.0.1:{port}/urlhealth"
    assert message.startswith(f"cannot open the database {shown}: ")
    assert "refused" in message.lower()
    assert SECRET not in message
    assert SECRET not in caplog.text
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


def test_postgres_with_a_password_connects_and_never_logs_it(
    postgres: PostgresServer, pg_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # The test cluster trusts loopback, so any password is accepted, and must stay unseen.
    written = pg_url.replace("postgresql://postgres@", f"postgres://postgres:{SECRET}@")

    with caplog.at_level(logging.DEBUG), open_database(sqlalchemy_url(written, tmp_path)) as db:
        with db.engine.connect() as connection:
            assert connection.execute(text("SELECT 1")).scalar() == 1
        assert SECRET not in db.masked_url
        assert SECRET not in repr(db.engine)

    assert SECRET not in caplog.text


def test_postgres_pool_survives_a_server_restart(
    postgres: PostgresServer, pg_url: str, tmp_path: Path
) -> None:
    with open_database(sqlalchemy_url(pg_url, tmp_path)) as database:
        with database.engine.connect() as connection:
            assert connection.execute(text("SELECT 1")).scalar() == 1
        postgres.stop_server()
        postgres.start()
        # The pooled connection died with the server; pre-ping replaces it unseen.
        with database.engine.connect() as connection:
            assert connection.execute(text("SELECT 2")).scalar() == 2
