"""A PostgreSQL server for the benchmark: its own cluster in a temporary directory on a free
loopback port (the tests' recipe, tests/support/postgres.py), started with the durability a
deployment keeps (`fsync`, `synchronous_commit` and `full_page_writes` on: each commit waits
for its WAL flush) unless `durable=False` asks for the tests' settings (all three off).

Also here: the CPU seconds and context switches of every process of the server (the
postmaster and its children: backends, WAL writer, checkpointer, ...), read from /proc, so a
benchmark can charge the database's share of the work.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import psycopg
from service import child_pids, context_switches, cpu_seconds

from tests.support.postgres import PostgresServer, PostgresUnavailable


class BenchPostgres(PostgresServer):
    """`with BenchPostgres(durable=True) as pg: pg.url()`; removed on the way out."""

    def __init__(
        self,
        durable: bool = True,
        max_connections: int = 200,
        synchronous_commit: bool | None = None,
        stat_statements: bool = False,
    ) -> None:
        super().__init__()
        self.durable = durable
        self.max_connections = max_connections
        # None: as `durable`. Off with fsync on is SQLite's WAL + synchronous=NORMAL promise:
        # a crash of the server loses nothing committed, a power loss the last commits.
        self.synchronous_commit = durable if synchronous_commit is None else synchronous_commit
        # pg_stat_statements: execution time per statement, to split the queue's share.
        self.stat_statements = stat_statements

    def settings(self) -> list[str]:
        switch = "on" if self.durable else "off"
        extra = ["-c shared_preload_libraries=pg_stat_statements"] if self.stat_statements else []
        return [
            *extra,
            f"-c fsync={switch}",
            f"-c synchronous_commit={'on' if self.synchronous_commit else 'off'}",
            f"-c full_page_writes={switch}",
            f"-c max_connections={self.max_connections}",
        ]

    def statements_by_part(self, database: str) -> dict[str, dict[str, float]]:
        """Execution time and calls from pg_stat_statements (every database of the server),
        split by what ran them: the task queue (procrastinate's tables and functions), the
        wake-ups (LISTEN, and NOTIFY as a statement of its own: app/cluster/group_write.py's
        statement also notifies, and is the store's), and the rest (the store, monitors,
        admission, ...)."""
        query = """
            SELECT CASE
                     WHEN query ILIKE '%procrastinate%' THEN 'queue'
                     WHEN query ILIKE 'SELECT pg_notify%' OR query ILIKE 'LISTEN%'
                          OR query ILIKE 'NOTIFY%' THEN 'wakeups'
                     ELSE 'store' END AS part,
                   sum(total_exec_time) / 1000.0, sum(calls)
            FROM pg_stat_statements GROUP BY 1
        """
        with psycopg.connect(self.url(database), autocommit=True) as connection:
            rows = connection.execute(query).fetchall()
        return {str(p): {"exec_s": float(t), "calls": float(c)} for p, t, c in rows}

    def top_statements(self, database: str, limit: int = 8) -> list[dict[str, Any]]:
        """The statements PostgreSQL spent most time executing (lock waits included)."""
        query = """
            SELECT regexp_replace(query, '\\s+', ' ', 'g'), calls, total_exec_time,
                   mean_exec_time
            FROM pg_stat_statements WHERE query NOT ILIKE '%%pg_stat_statements%%'
            ORDER BY total_exec_time DESC LIMIT %s
        """
        with psycopg.connect(self.url(database), autocommit=True) as connection:
            rows = connection.execute(query, (limit,)).fetchall()
        return [
            {"query": q[:200], "calls": int(c), "total_ms": float(t), "mean_ms": float(m)}
            for q, c, t, m in rows
        ]

    def reset_statements(self, database: str) -> None:
        with psycopg.connect(self.url(database), autocommit=True) as connection:
            connection.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            connection.execute("SELECT pg_stat_statements_reset()")

    def postmaster_pid(self) -> int:
        return int((self.data / "postmaster.pid").read_text().split()[0])

    def pids(self) -> list[int]:
        """The postmaster and its children, now (backends come and go with connections)."""
        main = self.postmaster_pid()
        return [main, *child_pids(main)]

    def backend_pids(self, database: str | None = None) -> dict[int, str]:
        """Client backends by pid → application_name (pg_stat_activity)."""
        query = (
            "SELECT pid, application_name FROM pg_stat_activity"
            " WHERE backend_type = 'client backend'"
        )
        with psycopg.connect(self.url(database or "postgres"), autocommit=True) as connection:
            return {int(pid): str(name) for pid, name in connection.execute(query).fetchall()}

    def usage(self) -> Usage:
        """CPU and context switches summed over the server's processes, with each pid's own
        figures (a process that exited since the last call is simply no longer counted:
        compare `Usage.minus`, which charges only processes present at both ends)."""
        per_pid: dict[int, tuple[float, int, int]] = {}
        for pid in self.pids():
            with contextlib.suppress(OSError, ValueError):
                switches = context_switches(pid)
                per_pid[pid] = (cpu_seconds(pid), switches["voluntary"], switches["involuntary"])
        return Usage(per_pid)

    def __enter__(self) -> BenchPostgres:
        try:
            self.init().start()
        except PostgresUnavailable:
            self.remove()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.remove()


@dataclass(frozen=True)
class Usage:
    per_pid: dict[int, tuple[float, int, int]]  # pid -> (cpu s, voluntary, involuntary)

    def minus(self, before: Usage) -> dict[str, Any]:
        """What the server spent between `before` and this: a process that started in
        between counts from zero (a new backend), one that ended is lost (noted)."""
        cpu = vol = invol = 0.0
        for pid, (c, v, i) in self.per_pid.items():
            c0, v0, i0 = before.per_pid.get(pid, (0.0, 0, 0))
            cpu, vol, invol = cpu + c - c0, vol + v - v0, invol + i - i0
        gone = [pid for pid in before.per_pid if pid not in self.per_pid]
        return {
            "cpu_s": cpu,
            "voluntary_switches": int(vol),
            "involuntary_switches": int(invol),
            "processes": len(self.per_pid),
            "processes_gone": len(gone),
        }


def data_dir_bytes(root: Path) -> int:
    total = 0
    for base, _dirs, files in os.walk(root):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.path.getsize(os.path.join(base, name))
    return total
