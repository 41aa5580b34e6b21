"""Runs checks on the one shared thread pool and records each result the moment it finishes.

Each job's checks are submitted to the process-wide ``ThreadPoolExecutor``; a gatherer thread
per job walks ``as_completed`` over the job's futures and hands every result to the store, so
fast URLs are recorded (and streamed) before slow ones. Admission is bounded: checks accepted
but not finished never exceed ``max_queued``.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed

from app.engine.checker import Checker, unfinished_result
from app.engine.options import CheckOptions
from app.schemas.jobs import CheckOptionsPublic, JobHeader
from app.schemas.results import CheckResult, ErrorKind
from app.store.base import ResultsStore


class DispatchError(Exception):
    """Root of the reasons a job is refused."""


class ShuttingDown(DispatchError):
    """The service is stopping and takes no new work."""


class Overloaded(DispatchError):
    def __init__(self, pending: int, limit: int, asked: int) -> None:
        super().__init__(
            f"{pending} checks are in progress and the limit is {limit}; {asked} more do not fit"
        )
        # Roughly how long the backlog takes to shrink enough; never less than a second.
        self.retry_after_s = 1


class Dispatcher:
    def __init__(
        self, store: ResultsStore, checker: Checker, workers: int, max_queued: int
    ) -> None:
        self._store = store
        self._checker = checker
        self.workers = workers
        self._max_queued = max_queued
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="check")
        self._lock = threading.Lock()
        self._accepting = True
        self._pending = 0  # accepted and not finished: queued or running
        self._running = 0
        self._checked = 0
        self._jobs: dict[str, list[Future[CheckResult]]] = {}
        self._drained = threading.Event()
        self._drained.set()

    # --- admission ----------------------------------------------------------------------
    def _admit(self, count: int) -> None:
        with self._lock:
            if not self._accepting:
                raise ShuttingDown("the service is shutting down")
            if self._pending + count > self._max_queued:
                raise Overloaded(self._pending, self._max_queued, count)
            self._pending += count
            self._drained.clear()

    def _release(self, count: int, checked: int = 0) -> None:
        with self._lock:
            self._pending -= count
            self._checked += checked
            if self._pending == 0:
                self._drained.set()

    def submit_job(
        self,
        urls: Sequence[str],
        options: CheckOptions,
        public_options: CheckOptionsPublic,
        duplicates_removed: int = 0,
    ) -> JobHeader:
        self._admit(len(urls))
        header = self._store.create_job(urls, public_options, duplicates_removed)
        futures = self._submit_all(header.id, urls, options)
        with self._lock:
            self._jobs[header.id] = futures
        threading.Thread(
            target=self._gather,
            args=(header.id, futures),
            name=f"gather-{header.id[:8]}",
            daemon=True,
        ).start()
        return header

    def check_now(self, urls: Sequence[str], options: CheckOptions) -> list[Future[CheckResult]]:
        """Checks outside any job (the synchronous API); the caller waits on the futures."""
        self._admit(len(urls))
        futures = self._submit_all(None, urls, options)
        for future in futures:
            future.add_done_callback(lambda _: self._release(1, checked=1))
        return futures

    def _submit_all(
        self, job_id: str | None, urls: Sequence[str], options: CheckOptions
    ) -> list[Future[CheckResult]]:
        futures: list[Future[CheckResult]] = []
        try:
            for url in urls:
                futures.append(self._executor.submit(self._run, job_id, url, options))
        except RuntimeError:  # the pool closed under a request that was admitted just before
            self._release(len(urls) - len(futures))
            raise ShuttingDown("the service is shutting down") from None
        return futures

    # --- running ------------------------------------------------------------------------
    def _run(self, job_id: str | None, url: str, options: CheckOptions) -> CheckResult:
        with self._lock:
            self._running += 1
        try:
            if job_id is not None:
                self._store.mark_started(job_id)
            return self._checker.check(url, options)
        finally:
            with self._lock:
                self._running -= 1

    def _gather(self, job_id: str, futures: list[Future[CheckResult]]) -> None:
        index_of = {future: index for index, future in enumerate(futures)}
        urls = self._store.urls(job_id)
        try:
            for future in as_completed(futures):
                if future.cancelled():
                    continue  # whoever cancelled it recorded its result and released it
                index = index_of[future]
                try:
                    result = future.result()
                except Exception as exc:  # Checker.check never raises; this is a bug guard
                    message = f"check crashed: {type(exc).__name__}: {exc}"
                    result = unfinished_result(urls[index], ErrorKind.INTERNAL, message)
                self._store.record(job_id, index, result)
                self._release(1, checked=1)
        finally:
            with self._lock:
                self._jobs.pop(job_id, None)

    # --- cancelling and stopping ----------------------------------------------------------
    def cancel(self, job_id: str) -> JobHeader:
        """Cancel what has not started; running checks finish. Raises JobNotFound."""
        self._store.request_cancel(job_id)
        self._cancel_queued(job_id, ErrorKind.CANCELLED, "job cancelled before this check started")
        return self._store.header(job_id)

    def _cancel_queued(self, job_id: str, kind: ErrorKind, message: str) -> None:
        with self._lock:
            futures = list(self._jobs.get(job_id, ()))
        cancelled = [index for index, future in enumerate(futures) if future.cancel()]
        if not cancelled:
            return
        urls = self._store.urls(job_id)
        for index in cancelled:
            self._store.record(job_id, index, unfinished_result(urls[index], kind, message))
        self._release(len(cancelled))

    def stop_accepting(self) -> None:
        with self._lock:
            self._accepting = False

    def cancel_all_queued(self) -> None:
        """Shutdown step: every job in progress will end interrupted; queued checks end now."""
        for job_id in self._store.active_job_ids():
            self._store.mark_interrupted(job_id)
            self._cancel_queued(job_id, ErrorKind.CANCELLED, "the service shut down first")

    def wait_drained(self, timeout: float) -> bool:
        """Wait until no accepted check is unfinished; False if `timeout` passed first."""
        return self._drained.wait(timeout)

    def interrupt_running(self) -> None:
        """Give every check still without a result its final state: interrupted."""
        for job_id in self._store.active_job_ids():
            self._store.mark_interrupted(job_id)
            urls = self._store.urls(job_id)
            for index in self._store.unfinished(job_id):
                result = unfinished_result(
                    urls[index], ErrorKind.INTERRUPTED, "still running when the service shut down"
                )
                self._store.record(job_id, index, result)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    # --- status -------------------------------------------------------------------------
    def counters(self) -> tuple[int, int, int]:
        """(running, queued, checked since start)."""
        with self._lock:
            return self._running, self._pending - self._running, self._checked
