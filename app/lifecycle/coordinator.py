"""The shutdown coordinator: one Event that every part consults, and one drain sequence.

Once shutdown begins the service is not ready (readiness 503, new work 503), queued checks are
cancelled with a result that says so, running checks get `grace_s` to finish, and whatever is
still running then is recorded `interrupted` and its connection aborted. `hurry()` (a second
signal) ends the grace period at once, with the same steps. Every accepted check therefore ends
in a final state, and every open stream ends with its job's status.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from app.engine.dispatcher import Dispatcher
from app.engine.transport import HttpLayer

log = logging.getLogger("urlhealth.lifecycle")

# How often the grace period looks whether it was cut short: a hurried drain ends this soon.
_HURRY_POLL_S = 0.1


class ShutdownCoordinator:
    def __init__(
        self,
        dispatcher: Dispatcher,
        http: HttpLayer,
        grace_s: float,
        stopping: threading.Event | None = None,
        first: Callable[[], None] | None = None,
    ) -> None:
        """`first`: a step that must come before the dispatcher refuses work (the monitor
        scheduler stops handing out checks); it must not wait."""
        self._dispatcher = dispatcher
        self._first = first
        self._http = http
        self._grace_s = grace_s
        self._started = threading.Event()
        # Shared with the checker, so retry backoff ends the moment shutdown begins.
        self._stopping = stopping or threading.Event()
        self._drained = threading.Event()
        self._hurried = threading.Event()
        self._failed = False
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
            if self._first is not None:
                self._first()
            self._stopping.set()
            # Refuse new work before returning, so nothing is accepted after begin().
            self._dispatcher.stop_accepting()
            self._drainer = threading.Thread(target=self._drain, name="shutdown", daemon=True)
        self._drainer.start()

    def hurry(self) -> None:
        """End the grace period now: running checks are interrupted at once. Only sets an
        Event: safe from any thread, before or during the drain, any number of times."""
        self._hurried.set()

    def wait(self, timeout: float) -> bool:
        """Wait for the drain to finish; False if `timeout` passed first."""
        return self._drained.wait(timeout)

    @property
    def clean(self) -> bool:
        """The drain finished without an error: every accepted check has its final state."""
        return self._drained.is_set() and not self._failed

    def _wait_for_running(self) -> bool:
        """True if the running checks finished within the grace period; False if it ran out
        or was cut short."""
        deadline = time.monotonic() + self._grace_s
        while True:
            remaining = deadline - time.monotonic()
            if self._dispatcher.wait_drained(max(0.0, min(remaining, _HURRY_POLL_S))):
                return True
            if remaining <= 0 or self._hurried.is_set():
                return False

    def _drain(self) -> None:
        started = time.monotonic()
        try:
            self._dispatcher.cancel_all_queued()
            if not self._wait_for_running():
                self._dispatcher.interrupt_running()
                aborted = self._http.abort_in_flight()
                if self._hurried.is_set():
                    reason = "grace period cut short"
                else:
                    reason = f"grace period of {self._grace_s:.1f} s over"
                log.warning(
                    "%s: checks still running were interrupted (%d connections aborted)",
                    reason,
                    aborted,
                )
        except Exception:  # the drain must always finish, or shutdown would hang on it
            self._failed = True
            log.exception("shutdown drain failed")
        finally:
            log.info("drained in %.2f s", time.monotonic() - started)
            self._drained.set()
