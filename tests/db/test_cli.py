"""`urlhealth db upgrade` as a real process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import inspect, text

from app.db.engine import open_database
from app.db.migrator import head_revision, upgrade
from app.db.url import sqlalchemy_url
from tests.support.servers import free_port

REPO = Path(__file__).resolve().parents[2]
SECRET = "pa55-w0rd-that-must-not-leak"


def db_upgrade(**settings: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("URLHEALTH_")}
    env.update(settings)
    return subprocess.run(
        [sys.executable, "-m", "app", "db", "upgrade"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=REPO,
        env=env,
    )


def test_upgrade_creates_the_default_file_in_the_data_dir_then_does_nothing(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"

    first = db_upgrade(URLHEALTH_DATA_DIR=str(data_dir))
    second = db_upgrade(URLHEALTH_DATA_DIR=str(data_dir))

    assert first.returncode == 0, first.stderr
    shown = f"sqlite:///{data_dir / 'urlhealth.db'}"
    assert first.stdout == f"database {shown}: schema upgraded None -> {head_revision()}\n"
    assert second.returncode == 0, second.stderr
    assert second.stdout == f"database {shown}: schema already at {head_revision()}\n"
    with open_database(sqlalchemy_url(None, data_dir)) as database:
        assert "results" in inspect(database.engine).get_table_names()


def test_upgrade_is_refused_while_another_process_holds_the_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'urlhealth.db'}"
    with open_database(sqlalchemy_url(url, tmp_path)):
        done = db_upgrade(URLHEALTH_DATABASE_URL=url)

    assert done.returncode == 1
    assert done.stderr.startswith("urlhealth: the SQLite database ")
    assert f"is in use by another process (pid {os.getpid()}" in done.stderr
    assert "Traceback" not in done.stderr


def test_upgrade_refuses_a_newer_schema(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'urlhealth.db'}"
    with open_database(sqlalchemy_url(url, tmp_path)) as database:
        upgrade(database)
        with database.write_engine.begin() as connection:
            connection.execute(text("UPDATE alembic_version SET version_num = 'f00dfeed9999'"))

    done = db_upgrade(URLHEALTH_DATABASE_URL=url)

    assert done.returncode == 1
    assert "schema revision 'f00dfeed9999', newer than this urlhealth knows" in done.stderr


def test_upgrade_on_postgres_never_prints_the_password(pg_url: str) -> None:
    written = pg_url.replace("postgresql://postgres@", f"postgres://postgres:{SECRET}@")

    done = db_upgrade(URLHEALTH_DATABASE_URL=written, URLHEALTH_LOG_LEVEL="debug")

    assert done.returncode == 0, done.stderr
    assert "postgresql+psycopg://postgres:***@127.0.0.1:" in done.stdout
    assert SECRET not in done.stdout + done.stderr


def test_unreachable_database_exits_with_the_masked_url_and_reason(tmp_path: Path) -> None:
    port = free_port()
    written = f"postgresql://app:{SECRET}@127.0.0.1:{port}/urlhealth"

    done = db_upgrade(URLHEALTH_DATABASE_URL=written)

    assert done.returncode == 1
    assert done.stderr.startswith(
        f"urlhealth: cannot open the database postgresql+psycopg://app:***@127.0.0.1:{port}/"
    )
    assert SECRET not in done.stdout + done.stderr
