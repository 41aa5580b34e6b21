"""The two topologies bench/cluster.py compares, started as users run them:

- `single`: one `urlhealth serve` (SQLite in its own temporary directory), N workers;
- `cluster`: one `urlhealth serve --role api` and two `--role worker` on a fresh database of
  the benchmark's PostgreSQL (bench/pgserver.py), N/2 workers each.

`usage()` reads, per component, the CPU seconds and context switches of the process (all its
threads, /proc) and, for the cluster, of PostgreSQL (every process of the server) and the
execution time of its statements split by part (pg_stat_statements: the task queue, the
wake-ups, the rest). `minus` turns two readings into the figures of the interval.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

from pgserver import BenchPostgres, Usage
from service import ServiceProcess

TOPOLOGIES = ("single", "cluster", "cluster-nice")
WORKER_NICE = 10  # cluster-nice: the workers' niceness (the API and PostgreSQL keep 0)


@dataclass
class Reading:
    processes: dict[str, tuple[float, int, int]]  # component -> (cpu s, voluntary, involuntary)
    postgres: Usage | None
    statements: dict[str, dict[str, float]] | None

    def minus(self, before: Reading) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, (cpu, vol, invol) in self.processes.items():
            c0, v0, i0 = before.processes.get(name, (0.0, 0, 0))
            out[name] = {
                "cpu_s": cpu - c0,
                "voluntary_switches": vol - v0,
                "involuntary_switches": invol - i0,
            }
        if self.postgres is not None and before.postgres is not None:
            out["postgres"] = self.postgres.minus(before.postgres)
        if self.statements is not None:
            parts = self.statements
            total = sum(p["exec_s"] for p in parts.values()) or 1.0
            out["postgres_statements"] = {
                name: {**p, "share": p["exec_s"] / total} for name, p in parts.items()
            }
        return out


@dataclass
class Topology:
    name: str  # single | cluster
    workers: int  # check threads in total
    max_connections_per_host: int
    pg: BenchPostgres | None = None
    extra_env: dict[str, str] = field(default_factory=dict)
    ready_timeout_s: float = 120.0
    components: dict[str, ServiceProcess] = field(default_factory=dict)
    database: str | None = None

    def start(self) -> Topology:
        try:
            if self.name == "single":
                self._start("service", (), self.workers, "sqlite", {})
            elif self.name in ("cluster", "cluster-nice"):
                if self.pg is None:
                    raise ValueError("the cluster topology needs a PostgreSQL server")
                self.database = self.pg.create_database()
                env = {"URLHEALTH_DATABASE_URL": self.pg.url(self.database)}
                # The API first: it migrates the fresh database; the workers find it current.
                each = max(1, self.workers // 2)
                self._start("api", ("--role", "api"), each, "memory", env)
                nice = WORKER_NICE if self.name == "cluster-nice" else 0
                self._start("worker1", ("--role", "worker"), each, "memory", env, nice)
                self._start("worker2", ("--role", "worker"), each, "memory", env, nice)
            else:
                raise ValueError(f"unknown topology {self.name!r}")
        except BaseException:
            self.stop()
            self.cleanup()
            raise
        return self

    def _start(
        self,
        name: str,
        args: tuple[str, ...],
        workers: int,
        store: str,
        env: dict[str, str],
        nice: int = 0,
    ) -> None:
        process = ServiceProcess(
            workers=workers,
            max_connections_per_host_per_replica=self.max_connections_per_host,
            ready_timeout_s=self.ready_timeout_s,
            stop_timeout_s=60.0,
            extra_env={**self.extra_env, **env},
            # memory:// is overridden by the cluster's URLHEALTH_DATABASE_URL in extra_env.
            store=store,
            serve_args=args,
            nice=nice,
        )
        self.components[name] = process
        process.start()

    @property
    def api_url(self) -> str:
        return self.components["service" if self.name == "single" else "api"].base_url

    @property
    def urls(self) -> dict[str, str]:
        return {name: p.base_url for name, p in self.components.items()}

    def database_url(self) -> str:
        """Where the results are (bench/cluster.py reads monitor history from it)."""
        if self.name == "single":
            path = self.components["service"].db_path
            return f"sqlite:///{path}"
        assert self.pg is not None
        assert self.database is not None
        return self.pg.url(self.database)

    def reset_statements(self) -> None:
        if self.pg is not None and self.database is not None and self.pg.stat_statements:
            self.pg.reset_statements(self.database)

    def top_statements(self) -> list[dict[str, Any]] | None:
        if self.pg is None or self.database is None or not self.pg.stat_statements:
            return None
        return self.pg.top_statements(self.database)

    def usage(self) -> Reading:
        processes: dict[str, tuple[float, int, int]] = {}
        for name, process in self.components.items():
            with contextlib.suppress(OSError):
                switches = process.context_switches()
                processes[name] = (
                    process.cpu_s(),
                    switches["voluntary"],
                    switches["involuntary"],
                )
        postgres = statements = None
        if self.pg is not None and self.name != "single":
            postgres = self.pg.usage()
            if self.pg.stat_statements and self.database is not None:
                statements = self.pg.statements_by_part(self.database)
        return Reading(processes, postgres, statements)

    def peak_rss_mb(self) -> dict[str, float | None]:
        out: dict[str, float | None] = {}
        for name, process in self.components.items():
            try:
                out[name] = process.memory().get("VmHWM")
            except OSError:
                out[name] = None
        return out

    def stop(self) -> dict[str, Any]:
        """SIGTERM every component (workers first, then the API), as a deployment drains."""
        out: dict[str, Any] = {}
        for name in sorted(self.components, key=lambda n: n == "api"):
            process = self.components[name]
            process.stop()
            out[name] = {
                "exit_code": process.exit_code,
                "killed": process.killed,
                "startup_s": process.startup_s,
                "stop_s": process.stop_s,
            }
        return out

    def log_tails(self, lines: int = 20) -> dict[str, str]:
        return {name: p.log_tail(lines) for name, p in self.components.items()}

    def cleanup(self) -> None:
        for process in self.components.values():
            process.cleanup()
        if self.pg is not None and self.database is not None:
            with contextlib.suppress(Exception):
                self.pg.drop_database(self.database)
            self.database = None
