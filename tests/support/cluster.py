"""Replicas as users run them: `urlhealth serve --role ...` processes sharing one real
PostgreSQL database on loopback. A test names the roles it wants; every replica is killed
on the way out, whatever happened.

Auth is off (loopback only) and DNS never leaves the machine: targets are IP literals.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence

from tests.support.process import ServiceProcess, serve_command, service_env
from tests.support.servers import free_port

# Replicas start together, each importing the whole service: on a loaded 2-core machine
# three took 22 s to be ready (measured while other test suites ran), past the 20 s a lone
# service process is given.
READY_TIMEOUT_S = 90.0


class Cluster:
    """Replicas on one database: `.replicas` in start order, `.start(role)` for more."""

    def __init__(
        self,
        database_url: str,
        *,
        workers: int = 32,
        grace_s: float = 5.0,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.database_url = database_url
        self._workers = workers
        self._grace_s = grace_s
        self._env = dict(env or {})
        self.replicas: list[ServiceProcess] = []

    def start(self, role: str, wait: bool = True, **env: str) -> ServiceProcess:
        port = free_port()
        settings = {
            "URLHEALTH_DATABASE_URL": self.database_url,
            "URLHEALTH_AUTH": "off",
            # Short enough that a killed worker's chunks come back within a test.
            "URLHEALTH_CLUSTER_LEASE_S": "6",
            **self._env,
            **env,
        }
        command = [*serve_command(port), "--role", role]
        replica = ServiceProcess(
            command, port, service_env(self._grace_s, self._workers, **settings)
        )
        self.replicas.append(replica)
        if wait:
            replica.wait_ready(READY_TIMEOUT_S)
        return replica

    def start_all(self, roles: Sequence[str]) -> list[ServiceProcess]:
        # Started together, then waited for: replicas migrate the schema once between them.
        started = [self.start(role, wait=False) for role in roles]
        for replica in started:
            replica.wait_ready(READY_TIMEOUT_S)
        return started

    def logs(self) -> str:
        return "\n".join(
            f"--- replica {i} on {r.url} ---\n{r.log()}" for i, r in enumerate(self.replicas)
        )

    def stop(self) -> None:
        for replica in self.replicas:
            replica.stop()


@contextlib.contextmanager
def cluster(database_url: str, roles: Sequence[str], **options: object) -> Iterator[Cluster]:
    """Start replicas of `roles` on `database_url` (a fresh database: the `pg_url` fixture),
    wait until every one is ready; kill them all on the way out."""
    running = Cluster(database_url, **options)  # type: ignore[arg-type]
    try:
        running.start_all(roles)
        yield running
    finally:
        running.stop()
