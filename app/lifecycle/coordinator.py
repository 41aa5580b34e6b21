"""The shutdown coordinator: one Event that every part consults, and one drain sequence.

Once shutdown begins the service is not ready (readiness 503, new work 503), queued checks are
cancelled with a result that says so, running checks get `grace_s` to finish, and whatever is
still running then is recorded `interrupted` and its connection aborted. Every accepted check
therefore ends in a final state, and every open stream ends with its job's status.
"""

from __future__ import annotations

import logging
import threading
import time

from app.engine.dispatcher import Dispatcher
from app.engine.transport import HttpLayer

log = logging.getLogger("urlhealth.lifecycle")


class ShutdownCoordinator:
    def __init__(
        self,
        dispatcher: Dispatcher,
        http: HttpLayer,
        grace_s: float,
        stopping: threading.Event | None = None,
    ) -> None:
        self._dispatcher = dispatcher
        self._http = http
        self._grace_s = grace_s
        self._started = threading.Event()
        # Shared with the checker, so retry backoff ends the moment shutdown begins.
        self._stopping = stopping or threading.Event()
        self._drained = threading.Event()
        self._lock = threading.Lock()
        self._drainer: threading.Thread | None = None

    @property
    def ready(self) -> bool:
        return self._started.is_set() and not self._stopping.is_set()

    @property
    def shutting_down(self) -> bool:
        return self._stopping.is_set()

    def mark_started(self) -> None:
        self._started.set()

    def begin(self) -> None:
        """Start the drain in the background; safe to call more than once, from any thread."""
        with self._lock:
            if self._drainer is not None:
                return
            self._stopping.set()
            # Refuse new work before returning, so nothing is accepted after begin().
            self._dispatcher.stop_accepting()
            self._drainer = threading.Thread(target=self._drain, name="shutdown", daemon=True)
        self._drainer.start()

    def wait(self, timeout: float) -> bool:
        """Wait for the drain to finish; False if `timeout` passed first."""
        return self._drained.wait(timeout)

    def _drain(self) -> None:
        started = time.monotonic()
        try:
            self._dispatcher.cancel_all_queued()
            if not self._dispatcher.wait_drained(self._grace_s):
                self._dispatcher.interrupt_running()
                aborted = self._http.abort_in_flight()
                log.warning(
                    "grace period of %.1f s over: checks still running were interrupted "
                    "(%d connections aborted)",
                    self._grace_s,
                    aborted,
                )
        except Exception:  # the drain must always finish, or shutdown would hang on it
            log.exception("shutdown drain failed")
        finally:
            log.info("drained in %.2f s", time.monotonic() - started)
            self._drained.set()
