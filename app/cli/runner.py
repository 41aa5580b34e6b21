"""Runs a plan's checks in this process: the engine's Checker on a thread pool, results handed
back as they complete, and Ctrl-C turned into a flag so what finished is still reported."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from types import FrameType

import httpx

from app.cli.arguments import Plan
from app.config import Settings
from app.engine.checker import Checker
from app.engine.options import RetryPolicy
from app.engine.transport import HttpLayer
from app.schemas.results import CheckResult
from app.services import shared_resolver

# How often the main thread looks at the Ctrl-C flag while checks run.
POLL_S = 0.2
# After Ctrl-C, how long running checks get to end once their connections are broken.
ABORT_GRACE_S = 5.0


class _Stopped(Exception):
    """A check not started because the run was interrupted."""


class CheckRun:
    """One `urlhealth check`: `results()` yields each CheckResult as it completes and stops
    early, with `interrupted` set, on SIGINT."""

    def __init__(self, plan: Plan, settings: Settings, workers: int) -> None:
        self._plan = plan
        self._workers = max(1, min(workers, len(plan.urls)))
        self._interrupt = threading.Event()
        self._stopping = threading.Event()  # cuts retry backoff short
        self._http = HttpLayer(
            settings.user_agent,
            plan.policy,
            shared_resolver(settings),
            ca_bundle=settings.ca_bundle,
            max_idle_clients=2 * self._workers,
        )
        retry = RetryPolicy(base_s=settings.retry_backoff_s, max_delay_s=settings.retry_max_delay_s)
        self._checker = Checker(self._http, retry, self._stopping)
        # As polite as one replica of the service: at most max_connections_per_host_per_replica
        # checks of one host at once. Made up front, one per host, so no lock is needed while
        # checks run.
        self._per_host = {
            _host(parsed): threading.BoundedSemaphore(settings.max_connections_per_host_per_replica)
            for parsed in plan.parsed
        }

    @property
    def interrupted(self) -> bool:
        return self._interrupt.is_set()

    def results(self) -> Iterator[CheckResult]:
        previous = signal.signal(signal.SIGINT, self._on_sigint)
        pool = ThreadPoolExecutor(self._workers, thread_name_prefix="check")
        try:
            pending: set[Future[CheckResult]] = {
                pool.submit(self._check, url, parsed)
                for url, parsed in zip(self._plan.urls, self._plan.parsed, strict=True)
            }
            while pending and not self._interrupt.is_set():
                done, pending = wait(pending, timeout=POLL_S, return_when=FIRST_COMPLETED)
                for future in done:
                    yield future.result()  # the checker never raises
        finally:
            self._finish(pool)
            signal.signal(signal.SIGINT, previous)

    def _check(self, url: str, parsed: httpx.URL) -> CheckResult:
        with self._per_host[_host(parsed)]:
            if self._stopping.is_set():  # Ctrl-C while it waited for its host: nobody reads it
                raise _Stopped(url)
            return self._checker.check(url, self._plan.options, parsed)

    def _on_sigint(self, signum: int, frame: FrameType | None) -> None:
        # Only a flag: the main thread notices it, stops waiting and reports what finished.
        self._interrupt.set()

    def _finish(self, pool: ThreadPoolExecutor) -> None:
        if self._interrupt.is_set():
            self._stopping.set()
            pool.shutdown(wait=False, cancel_futures=True)
            self._http.abort_in_flight()  # a check waiting on a slow target ends now
            _join(pool, ABORT_GRACE_S)
        else:
            pool.shutdown(wait=True)
        self._http.close()


def _host(url: httpx.URL) -> tuple[str, int | None]:
    return url.host, url.port


def _join(pool: ThreadPoolExecutor, timeout_s: float) -> None:
    """Wait, bounded, for the pool's threads to end (connections broken, they end quickly)."""
    done = threading.Event()
    waiter = threading.Thread(target=_shutdown_then(pool, done), daemon=True)
    waiter.start()
    done.wait(timeout_s)


def _shutdown_then(pool: ThreadPoolExecutor, done: threading.Event) -> Callable[[], None]:
    def run() -> None:
        pool.shutdown(wait=True)
        done.set()

    return run
