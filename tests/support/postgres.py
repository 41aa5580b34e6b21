"""A real PostgreSQL server for the tests: its own cluster in a temporary directory, on a
free loopback port, trust authentication, fsync off (a test cluster need not survive power
loss). Debian's `postgresql` package provides the binaries (.ci/run installs it).

`initdb` refuses to run as root, so as root every server command runs as the `postgres`
user (`runuser`), which owns the cluster's directory.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import psycopg
import pytest
from psycopg import sql

from tests.support.servers import free_port

HOW_TO_ENABLE = (
    "install PostgreSQL's server (Debian/Ubuntu: apt-get install postgresql) to run the "
    "PostgreSQL tests"
)
START_TIMEOUT_S = 60


class PostgresUnavailable(RuntimeError):
    """No server could be started here; the message says why."""


def _bindir() -> Path:
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    if versions:
        return versions[-1].parent
    found = shutil.which("initdb")
    if found is not None:
        return Path(found).parent
    raise PostgresUnavailable("no initdb found (looked in /usr/lib/postgresql/*/bin and PATH)")


def _run_as() -> tuple[list[str], int | None, int | None]:
    """The command prefix, uid and gid to run the server commands with."""
    if os.geteuid() != 0:
        return [], None, None
    try:
        user = pwd.getpwnam("postgres")
    except KeyError:
        raise PostgresUnavailable("running as root and there is no `postgres` user") from None
    return ["runuser", "-u", "postgres", "--"], user.pw_uid, user.pw_gid


class PostgresServer:
    """A started cluster; `url(database)` to reach it, `stop()` to remove it."""

    def __init__(self) -> None:
        self._bindir = _bindir()
        self._prefix, uid, gid = _run_as()
        self.root = Path(tempfile.mkdtemp(prefix="urlhealth-pg-"))
        if uid is not None and gid is not None:
            os.chown(self.root, uid, gid)
        self.data = self.root / "data"
        self.logfile = self.root / "server.log"
        self.port = 0

    def init(self) -> PostgresServer:
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-sync",
            "--locale=C",
        )
        return self

    def _run(self, tool: str, *args: str, timeout: float = START_TIMEOUT_S) -> None:
        command = [*self._prefix, str(self._bindir / tool), *args]
        try:
            done = subprocess.run(
                command,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
                cwd=self.root,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise PostgresUnavailable(f"{tool}: {exc}") from None
        if done.returncode != 0:
            log = self.logfile.read_text(errors="replace") if self.logfile.exists() else ""
            raise PostgresUnavailable(
                f"{tool} failed ({done.returncode}): {done.stderr.strip()[-2000:]}\n{log[-2000:]}"
            )

    def settings(self) -> list[str]:
        """The server's `-c` settings beyond where it listens: the tests keep none of the
        durability (bench/pgserver.py keeps it)."""
        return [
            "-c fsync=off",
            "-c synchronous_commit=off",
            "-c full_page_writes=off",
            "-c max_connections=100",
        ]

    def start(self) -> PostgresServer:
        """Start on a free loopback port (the same port again after a `stop_server`)."""
        self.port = self.port or free_port()
        options = " ".join(
            [
                f"-p {self.port}",
                "-c listen_addresses=127.0.0.1",
                f"-c unix_socket_directories={self.root}",
                *self.settings(),
            ]
        )
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-l",
            str(self.logfile),
            "-w",
            "-t",
            str(START_TIMEOUT_S),
            "-o",
            options,
            "start",
        )
        return self

    def stop_server(self) -> None:
        """Stop the server, keeping the cluster (for tests of a database that goes away)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    @contextlib.contextmanager
    def stopped(self) -> Iterator[None]:
        """The server stopped (`-m fast`: clients disconnected) for the block, then started
        again on the same port and data directory, even if the block fails."""
        self.stop_server()
        try:
            yield
        finally:
            self.start()

    def url(self, database: str = "postgres", password: str | None = None) -> str:
        auth = "postgres" if password is None else f"postgres:{password}"
        return f"postgresql://{auth}@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        name = f"t_{uuid.uuid4().hex[:16]}"
        with psycopg.connect(self.url(), autocommit=True) as connection:
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return name

    def drop_database(self, name: str) -> None:
        with psycopg.connect(self.url(), autocommit=True) as connection:
            statement = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
            connection.execute(statement.format(sql.Identifier(name)))

    def remove(self) -> None:
        """Stop the server if it runs, and delete the cluster."""
        with contextlib.suppress(PostgresUnavailable):
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)


def start_postgres() -> PostgresServer:
    """A running server, or PostgresUnavailable saying why there is none."""
    server = PostgresServer()
    try:
        return server.init().start()
    except PostgresUnavailable:
        server.remove()
        raise


def own_server(ci: bool) -> PostgresServer:
    """A started server (the session's, or a test's own: one that stops its server must not
    stop the session's), or the skip (the failure, in CI) saying why there is none."""
    try:
        return start_postgres()
    except PostgresUnavailable as exc:
        unavailable(str(exc), ci)


def unavailable(reason: str, ci: bool) -> NoReturn:
    """No server here: skip the PostgreSQL tests, saying how to enable them; in CI, where
    they must run, fail instead."""
    message = f"no PostgreSQL server could be started ({reason}); {HOW_TO_ENABLE}"
    if ci:
        pytest.fail(f"CI must run the PostgreSQL tests: {message}")
    pytest.skip(message)
