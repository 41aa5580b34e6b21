"""Engine parts built for tests: loopback allowed, real DNS, real sockets."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from app.api.validation import public_options
from app.engine.dispatcher import Dispatcher
from app.engine.options import CheckOptions
from app.engine.policy import DestinationPolicy, parse_networks
from app.engine.resolver import Resolver, SystemResolver
from app.engine.transport import HttpLayer
from app.schemas.jobs import JobHeader
from app.schemas.results import CheckResult
from app.store.memory import MemoryStore

LOOPBACK = ("127.0.0.0/8", "::1/128")


def loopback_policy() -> DestinationPolicy:
    return DestinationPolicy(allowed_networks=parse_networks(LOOPBACK))


def make_http(
    resolver: Resolver | None = None,
    policy: DestinationPolicy | None = None,
    ca_bundle: Path | None = None,
    max_idle_clients: int = 256,
    keepalive_expiry_s: float = 5.0,
) -> HttpLayer:
    return HttpLayer(
        "test-agent",
        policy or loopback_policy(),
        resolver or SystemResolver(),
        ca_bundle=ca_bundle,
        max_idle_clients=max_idle_clients,
        keepalive_expiry_s=keepalive_expiry_s,
    )


def wait_until(predicate: Callable[[], bool], timeout: float = 15.0) -> bool:
    """Poll `predicate` every 20 ms for at most `timeout` seconds."""
    pause = threading.Event()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        pause.wait(0.02)
    return predicate()


@dataclass
class Engine:
    """A store, an HTTP layer and a dispatcher wired as the service wires them."""

    store: MemoryStore
    http: HttpLayer
    dispatcher: Dispatcher
    options: CheckOptions

    def submit(self, urls: Sequence[str], options: CheckOptions | None = None) -> JobHeader:
        chosen = options or self.options
        return self.dispatcher.submit_job(urls, chosen, public_options(chosen))

    def wait_final(self, job_id: str, timeout: float = 20.0) -> JobHeader:
        assert wait_until(lambda: self.store.header(job_id).status.final, timeout), (
            f"job {job_id} did not finish within {timeout} s"
        )
        return self.store.header(job_id)

    def results(self, job_id: str) -> list[CheckResult]:
        """In the order they were recorded, which is the order the checks finished."""
        return self.store.page(job_id, 0, 10_000).results

    def by_url(self, job_id: str) -> dict[str, CheckResult]:
        return {result.url: result for result in self.results(job_id)}

    def recorded(self, job_id: str) -> int:
        return self.store.header(job_id).completed

    def close(self) -> None:
        self.dispatcher.close()
        self.http.abort_in_flight()
        self.http.close()
