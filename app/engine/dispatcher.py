"""Runs checks on the one shared thread pool and records each result the moment it finishes.

Every check gets a future up front; a gatherer thread per job walks ``as_completed`` over the
job's futures and hands each result to the store, so fast URLs are recorded (and streamed)
before slow ones. A check reaches the process-wide ``ThreadPoolExecutor`` only when its host
has a free slot (see HostGate), so waiting for a busy host never holds a worker. Admission is
bounded: checks accepted but not finished never exceed ``max_queued`` (see CheckLedger).
Monitor checks are the exception: they have workers and per-host slots of their own, go first,
and are never refused for load (see HostGate's reserved lane), so no job delays them.
"""

from __future__ import annotations

import functools
import threading
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import cast

import httpx

from app.engine.checker import Checker, unfinished_result
from app.engine.dnscache import SYNC_OWNER, lookup_owner
from app.engine.hosts import HostGate
from app.engine.ledger import CheckLedger
from app.engine.ledger import DispatchError as DispatchError  # the API's import point
from app.engine.ledger import Overloaded as Overloaded
from app.engine.ledger import ShuttingDown as ShuttingDown
from app.engine.options import CheckOptions
from app.schemas.jobs import CheckOptionsPublic, JobHeader
from app.schemas.results import CheckResult, ErrorKind
from app.store.base import JobNotFound, ResultsStore, StoredResult

_SHUT_DOWN_FIRST = "the service shut down before this check started"
_INTERRUPTED = "still running when the service shut down"
MONITOR_OWNER = "monitors"  # their DNS share (dnscache), apart from jobs' and the sync API's


@dataclass(slots=True, eq=False)
class _Check:
    job_id: str | None
    index: int
    url: str
    host: str
    parsed: httpx.URL | None  # dropped once run: a job's checks live as long as the job
    options: CheckOptions
    # A job's check ends as the StoredResult the store keeps (encoded by the worker, so
    # the job holds its JSON only); a synchronous check ends as the CheckResult itself.
    future: Future[CheckResult | StoredResult]
    started: bool = False  # kept by the CheckLedger, under its lock
    released: bool = False
    reserved: bool = False  # a monitor check: on the reserved capacity


class Dispatcher:
    def __init__(
        self,
        store: ResultsStore,
        checker: Checker,
        workers: int,
        max_queued: int,
        max_per_host: int = 8,
        min_host_interval_s: float = 0.0,
        monitor_workers: int = 0,
        monitor_slots_per_host: int = 0,
    ) -> None:
        self._store = store
        self._checker = checker
        self.workers = workers
        self._ledger = CheckLedger(max_queued)
        # One pool: a monitor check may run on any free worker, and the reserve is only
        # ever the difference between two bounds of the gate.
        self._executor = ThreadPoolExecutor(
            max_workers=workers + monitor_workers, thread_name_prefix="check"
        )
        self._lock = threading.Lock()
        self._gate: HostGate[_Check] = HostGate(
            max_per_host, workers, min_host_interval_s, monitor_workers, monitor_slots_per_host
        )
        self._running = 0  # workers busy with a check (the limiter's load)
        # Checks run, by (outcome, error kind or ""): counted under the lock a worker takes
        # anyway when its check ends (_next_in_slot), so /metrics costs the hot path nothing.
        self._outcomes: Counter[tuple[str, str]] = Counter()
        self._jobs: dict[str, list[_Check]] = {}
        self._sync: set[_Check] = set()
        self._started: set[str] = set()  # jobs whose first check has started
        self._interrupting = False
        self._closing = threading.Event()
        self._pacer_wake = threading.Event()
        self._pacer: threading.Thread | None = None
        if min_host_interval_s > 0:
            self._pacer = threading.Thread(target=self._pace, name="host-pacer", daemon=True)
            self._pacer.start()

    # --- admission ----------------------------------------------------------------------
    def submit_job(
        self,
        urls: Sequence[str],
        options: CheckOptions,
        public_options: CheckOptionsPublic,
        duplicates_removed: int = 0,
        parsed: Sequence[httpx.URL] | None = None,
    ) -> JobHeader:
        """Accept a job and return at once; its checks are scheduled by its gatherer thread,
        so the caller (an API request) is not held while thousands are handed out."""
        # Parsed before anything is counted or stored: what fails after admission must be
        # given back, and a job stored without its checks would stay queued forever.
        urls_parsed = parsed if parsed is not None else [httpx.URL(url) for url in urls]
        self._ledger.admit(len(urls))
        try:
            header = self._store.create_job(urls, public_options, duplicates_removed)
        except BaseException:
            self._ledger.refund(len(urls))
            raise
        checks = self._checks(header.id, urls, options, urls_parsed)
        with self._lock:
            self._jobs[header.id] = checks
        gatherer = threading.Thread(
            target=self._gather, args=(header.id, checks), name=f"gather-{header.id[:8]}"
        )
        gatherer.daemon = True
        gatherer.start()
        return header

    def check_now(
        self,
        urls: Sequence[str],
        options: CheckOptions,
        parsed: Sequence[httpx.URL] | None = None,
    ) -> list[Future[CheckResult]]:
        """Checks outside any job (the synchronous API); the caller waits on the futures."""
        self._ledger.admit(len(urls))
        return self._start_unowned(self._checks(None, urls, options, parsed))

    def check_monitor(
        self, url: str, options: CheckOptions, parsed: httpx.URL | None = None
    ) -> Future[CheckResult]:
        """One monitor check on the reserved capacity. Never Overloaded: monitors are few
        and periodic, and a monitor refused under a job's load is what this exists to avoid.
        Raises ShuttingDown once stopping."""
        self._ledger.admit(1, reserved=True)
        [check] = self._checks(None, [url], options, None if parsed is None else [parsed])
        check.reserved = True
        return self._start_unowned([check])[0]

    def _start_unowned(self, checks: list[_Check]) -> list[Future[CheckResult]]:
        with self._lock:
            self._sync.update(checks)
        for check in checks:
            check.future.add_done_callback(functools.partial(self._sync_done, check))
        self._schedule(checks)
        return [cast("Future[CheckResult]", check.future) for check in checks]

    def _sync_done(self, check: _Check, future: Future[CheckResult | StoredResult]) -> None:
        with self._lock:
            self._sync.discard(check)
        self._ledger.release(check, checked=not future.cancelled())

    @staticmethod
    def _checks(
        job_id: str | None,
        urls: Sequence[str],
        options: CheckOptions,
        parsed: Sequence[httpx.URL] | None,
    ) -> list[_Check]:
        urls_parsed = parsed if parsed is not None else [httpx.URL(url) for url in urls]
        return [
            _Check(job_id, index, url, url_parsed.host, url_parsed, options, Future())
            for index, (url, url_parsed) in enumerate(zip(urls, urls_parsed, strict=True))
        ]

    # --- scheduling -----------------------------------------------------------------------
    def _schedule(self, checks: list[_Check]) -> None:
        now = time.monotonic()
        with self._lock:
            gate = self._gate
            runnable = [c for c in checks if gate.admit(c.host, c, now, reserved=c.reserved)]
        for check in runnable:
            self._submit(check)
        if self._pacer is not None and len(runnable) < len(checks):
            self._pacer_wake.set()

    def _submit(self, check: _Check) -> None:
        try:
            self._executor.submit(self._run, check)
        except RuntimeError:  # the pool closed under work admitted just before
            self._abandon(check)

    def _abandon(self, check: _Check) -> None:
        """End a check that can no longer run, as cancelled, and free what it held."""
        self._finish_slot(check)
        if not check.future.cancel():
            return
        if check.job_id is None:
            return  # the synchronous caller sees the cancelled future; its callback releases
        if not self._ledger.release(check):
            return  # a cancel ended it first, and recorded it
        self._store.mark_interrupted(check.job_id)
        result = unfinished_result(check.url, ErrorKind.CANCELLED, _SHUT_DOWN_FIRST)
        self._store.record(check.job_id, check.index, result)

    def _run(self, first: _Check) -> None:
        """A worker's task: run the check, then whichever check the gate lets start in its
        place, and so on. The gate admits no more checks than there are workers, so nothing
        else can be waiting for this worker; handing each check back through the pool's
        queue would cost a submit per check for the same outcome."""
        check: _Check | None = first
        while check is not None:
            ran: tuple[str, str] | None = None
            try:
                ran = self._run_one(check)
            finally:
                check = self._next_in_slot(check, ran)

    def _run_one(self, check: _Check) -> tuple[str, str] | None:
        """Run `check` unless it was cancelled; its (outcome, error kind or "") if it ran."""
        # A cancelled future becomes CANCELLED_AND_NOTIFIED here, which wakes as_completed.
        if not check.future.set_running_or_notify_cancel():
            return None
        with self._lock:
            self._running += 1
        self._ledger.start(check)
        try:
            if check.job_id is not None and check.job_id not in self._started:
                self._started.add(check.job_id)  # a racing duplicate call is harmless
                self._store.mark_started(check.job_id)
            owner = MONITOR_OWNER if check.reserved else check.job_id or SYNC_OWNER
            with lookup_owner(owner):  # one job's DNS share (dnscache)
                result = self._checker.check(check.url, check.options, check.parsed)
            if self._interrupting and not result.ok:
                # Its connection was aborted at shutdown: the target is not to blame.
                result = unfinished_result(check.url, ErrorKind.INTERRUPTED, _INTERRUPTED)
        except Exception as exc:  # Checker.check never raises; this guards a bug
            message = f"check crashed: {type(exc).__name__}: {exc}"
            result = unfinished_result(check.url, ErrorKind.INTERNAL, message)
        check.parsed = None
        check.future.set_result(result if check.job_id is None else StoredResult.of(result))
        return result.outcome, result.error.kind.value if result.error is not None else ""

    def _next_in_slot(self, check: _Check, ran: tuple[str, str] | None) -> _Check | None:
        with self._lock:
            if ran is not None:
                self._running -= 1
                self._outcomes[ran] += 1
            successor = self._gate.release(check.host, time.monotonic())
        if successor is None and self._pacer is not None:
            self._pacer_wake.set()
        return successor

    def _finish_slot(self, check: _Check) -> None:
        """Free `check`'s slot from outside a worker: its successor goes through the pool."""
        successor = self._next_in_slot(check, ran=None)
        if successor is not None:
            self._submit(successor)

    def _pace(self) -> None:
        """Starts checks that wait only for their host's minimum interval to pass."""
        while not self._closing.is_set():
            with self._lock:
                due = self._gate.due(time.monotonic())
                wake_at = self._gate.next_wakeup()
            for check in due:
                self._submit(check)
            timeout = None if wake_at is None else max(0.0, wake_at - time.monotonic())
            self._pacer_wake.wait(timeout)
            self._pacer_wake.clear()

    def _gather(self, job_id: str, checks: list[_Check]) -> None:
        self._schedule(checks)
        by_future = {check.future: check for check in checks}
        try:
            for future in as_completed(by_future):
                if future.cancelled():
                    continue  # whoever released it recorded its result
                check = by_future[future]
                # Capacity first: a client that sees the job finish may submit at once.
                self._ledger.release(check, checked=True)
                self._store.record(job_id, check.index, future.result())
        finally:
            with self._lock:
                self._jobs.pop(job_id, None)
            self._started.discard(job_id)

    # --- cancelling and stopping ----------------------------------------------------------
    def cancel(self, job_id: str) -> JobHeader:
        """Cancel what has not started; running checks finish. Raises JobNotFound."""
        self._store.request_cancel(job_id)
        self._cancel_waiting(job_id, ErrorKind.CANCELLED, "job cancelled before this check started")
        return self._store.header(job_id)

    def _cancel_waiting(
        self, job_id: str, kind: ErrorKind, message: str, interrupting: bool = False
    ) -> None:
        with self._lock:
            checks = list(self._jobs.get(job_id, ()))
        # cancel() is True again for a future cancelled before: only the release, which
        # happens once per check, says whether this call ended it.
        cancelled = [c for c in checks if c.future.cancel() and self._ledger.release(c)]
        if not cancelled:
            return
        self._purge_cancelled()
        if interrupting:  # before the records that may complete the job
            self._store.mark_interrupted(job_id)
        for check in cancelled:
            self._store.record(job_id, check.index, unfinished_result(check.url, kind, message))

    def stop_accepting(self) -> None:
        self._ledger.stop_accepting()

    def cancel_all_queued(self) -> None:
        """Shutdown step: checks not yet started end `cancelled`, and their jobs will end
        `interrupted`; a job whose checks all started may still end `done`."""
        for job_id in self._store.active_job_ids():
            self._cancel_waiting(job_id, ErrorKind.CANCELLED, _SHUT_DOWN_FIRST, interrupting=True)
        with self._lock:
            sync = list(self._sync)
        for check in sync:
            check.future.cancel()  # the waiting caller reports it as cancelled
        self._purge_cancelled()

    def _purge_cancelled(self) -> None:
        """Take cancelled checks out of the gate, so they hold no host's turn or spacing,
        and wake as_completed for them. A cancelled check already handed to the pool is
        skipped when a worker takes it (see _run_one)."""
        with self._lock:
            purged = self._gate.purge(lambda check: check.future.cancelled())
        for check in purged:
            check.future.set_running_or_notify_cancel()  # CANCELLED -> ..._AND_NOTIFIED

    def wait_drained(self, timeout: float) -> bool:
        """Wait until no accepted check is unfinished; False if `timeout` passed first."""
        return self._ledger.wait_drained(timeout)

    def interrupt_running(self) -> None:
        """Give every check still without a result its final state: interrupted."""
        self._interrupting = True
        for job_id in self._store.active_job_ids():
            try:
                urls = self._store.urls(job_id)
                unfinished = self._store.unfinished(job_id)
            except JobNotFound:
                continue
            if unfinished:
                self._store.mark_interrupted(job_id)
            for index in unfinished:
                result = unfinished_result(urls[index], ErrorKind.INTERRUPTED, _INTERRUPTED)
                self._store.record(job_id, index, result)

    def close(self) -> None:
        self.stop_accepting()
        self._closing.set()
        self._pacer_wake.set()
        self._executor.shutdown(wait=False, cancel_futures=True)

    # --- concurrency -----------------------------------------------------------------------
    def load(self) -> tuple[int, int]:
        """(checks running, checks admitted and waiting for a host slot or a worker)."""
        with self._lock:
            return self._running, self._gate.waiting()

    def idle(self) -> bool:
        """No check accepted and unfinished."""
        return self._ledger.idle()

    def set_limit(self, limit: int) -> None:
        """Bound the checks running at once (at most the workers; monitor checks' reserve is
        not bounded by it); raising it starts waiting checks at once."""
        limit = max(1, min(limit, self.workers))
        with self._lock:
            startable = self._gate.set_max_total(limit, time.monotonic())
        for check in startable:
            self._submit(check)

    # --- status -------------------------------------------------------------------------
    def counters(self) -> tuple[int, int, int]:
        """(running, queued, checked since start)."""
        return self._ledger.counters()

    def outcomes(self) -> dict[tuple[str, str], int]:
        """Checks run since start by (outcome, error kind or ""); a copy."""
        with self._lock:
            return dict(self._outcomes)
