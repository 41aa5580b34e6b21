"""The task queue replicas share, on PostgreSQL: procrastinate, behind this one module.

Nothing else imports procrastinate, so that the engine can be replaced without touching the
rest (its README asks for maintainers). What procrastinate gives: tasks fetched with
`FOR UPDATE SKIP LOCKED` and woken by LISTEN/NOTIFY, worker heartbeats, retries. What it
leaves to us, done here: running its worker beside our own threads (its own event loop in
one thread, its sync tasks on a pool of the size asked for, no signal handlers: the
service's shutdown order stays the one in app/lifecycle/), and handing a dead worker's tasks
to the living (`recover_stalled`, a recipe its documentation gives, not automatic).

Its schema is part of our Alembic history (revision 0006); an upgrade of procrastinate that
changes its schema needs a revision of ours applying its migration files.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import procrastinate
from procrastinate import exceptions as procrastinate_errors
from procrastinate import worker as procrastinate_worker
from procrastinate.retry import RetryStrategy
from sqlalchemy import Connection, text
from sqlalchemy.engine import URL

log = logging.getLogger("urlhealth.cluster")

CHECKS_QUEUE = "checks"
# How often an idle worker looks for tasks without being woken. procrastinate 3.10's worker
# clears its wake-up flag after a fetch that found nothing: a task deferred while that fetch
# ran (its snapshot taken before the commit) waits for this look, not for the wake-up. 5 s by
# default; a call waited for by a client (app/cluster/calls.py) cannot wait that long.
_FETCH_POLL_S = 1.0


class QueueError(RuntimeError):
    """The queue could not be reached or refused an operation; the message says which."""


class HandBack(Exception):
    """Raised by a task that stopped before its end (its process is shutting down): the
    queue runs it again, on whichever worker takes it, from where it stopped."""


@dataclass(frozen=True, slots=True)
class TaskSpec:
    name: str
    func: Callable[..., Any]
    # How many times a task that raised HandBack is taken up again: a cluster restarted
    # many times over still finishes its work.
    hand_backs: int = 1000
    # Taken before queued tasks of a lower priority (a call waited for before job chunks).
    priority: int = 0


def conninfo(url: URL) -> str:
    """psycopg's connection string for the service's SQLAlchemy URL."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


class TaskQueue:
    def __init__(self, url: URL, tasks: Sequence[TaskSpec] = ()) -> None:
        self._conninfo = conninfo(url)
        self.app = procrastinate.App(
            connector=procrastinate.PsycopgConnector(conninfo=self._conninfo)
        )
        self._opened = False
        self._thread: threading.Thread | None = None
        self._worker_stop: Callable[[], None] | None = None
        self._worker_ready = threading.Event()
        self._stop_requested = threading.Event()
        self.worker_failure: str | None = None  # why the worker is restarting, if it is
        for spec in tasks:
            self.register(spec)

    def register(self, spec: TaskSpec) -> None:
        retry = RetryStrategy(max_attempts=spec.hand_backs, retry_exceptions={HandBack})
        self.app.task(name=spec.name, queue=CHECKS_QUEUE, retry=retry, priority=spec.priority)(
            spec.func
        )

    # --- deferring, from any thread -------------------------------------------------------
    def open(self) -> TaskQueue:
        """Open the connection pool used to defer and cancel from our own threads."""
        if not self._opened:
            self.app.open()
            self._opened = True
        return self

    def defer(self, task: str, arguments: Sequence[dict[str, Any]]) -> list[int]:
        """Queue one task per argument set, in one statement; their queue ids."""
        if not arguments:
            return []
        try:
            return self.app.tasks[task].batch_defer(*arguments)
        except procrastinate_errors.ProcrastinateException as exc:
            raise QueueError(f"tasks could not be queued: {exc}") from exc

    def cancel(self, queue_ids: Sequence[int]) -> list[int]:
        """Cancel the tasks not yet started; the ids of those it cancelled. A task running
        is not stopped here (it watches for the cancel itself)."""
        cancelled = []
        for queue_id in queue_ids:
            try:
                if self.app.job_manager.cancel_job_by_id(queue_id):
                    cancelled.append(queue_id)
            except procrastinate_errors.ProcrastinateException as exc:
                raise QueueError(f"tasks could not be cancelled: {exc}") from exc
        return cancelled

    # --- in a transaction of ours: procrastinate's SQL functions and table, here only --------
    @staticmethod
    def defer_in(
        connection: Connection, task: str, arguments: Sequence[dict[str, Any]]
    ) -> list[int]:
        """`defer`, in the caller's transaction: the tasks exist if and only if it commits
        (a job and its chunks are kept together or not at all). procrastinate's own
        function inserts them; its trigger wakes the workers at commit."""
        if not arguments:
            return []
        rows = connection.execute(
            text(
                "SELECT unnest(procrastinate_defer_jobs_v1(ARRAY("
                " SELECT ROW(:queue, :task, 0, NULL, NULL, args, NULL)"
                "::procrastinate_job_to_defer_v1"
                " FROM jsonb_array_elements(CAST(:arguments AS jsonb)) AS args))) AS id"
            ),
            {"queue": CHECKS_QUEUE, "task": task, "arguments": json.dumps(list(arguments))},
        )
        return [int(queue_id) for (queue_id,) in rows]

    @staticmethod
    def prune_finished(connection: Connection, before: datetime, limit: int) -> int:
        """Delete up to `limit` tasks that ended (done, failed, cancelled) with no event since
        `before`, and their events; how many. Done tasks are deleted as they finish; the others
        stay for a while to be looked at, then go. Nothing on SQLite (no queue there)."""
        if connection.dialect.name != "postgresql":
            return 0
        deleted = connection.execute(
            text(
                "DELETE FROM procrastinate_jobs WHERE id IN ("
                " SELECT j.id FROM procrastinate_jobs j"
                " WHERE j.status IN ('succeeded', 'failed', 'cancelled', 'aborted')"
                " AND NOT EXISTS (SELECT 1 FROM procrastinate_events e"
                "  WHERE e.job_id = j.id AND e.at >= :before)"
                " LIMIT :limit)"
            ),
            {"before": before, "limit": limit},
        )
        return max(0, deleted.rowcount)

    @staticmethod
    def waiting(
        connection: Connection, task: str, key: str, value: str
    ) -> list[tuple[int, dict[str, Any]]]:
        """(queue id, kwargs) of the tasks of `task` not started whose kwargs[key] is
        `value`; to cancel them (`cancel`) and know what they were to do."""
        rows = connection.execute(
            text(
                "SELECT id, args FROM procrastinate_jobs WHERE task_name = :task"
                " AND status = 'todo' AND args ->> :key = :value ORDER BY id"
            ),
            {"task": task, "key": key, "value": value},
        )
        return [(int(queue_id), dict(args)) for queue_id, args in rows]

    def close(self) -> None:
        if self._opened:
            self.app.close()
            self._opened = False

    # --- the worker: procrastinate's loop in a thread of its own --------------------------
    def start_worker(
        self,
        concurrency: int,
        lease_s: float,
        name: str,
        graceful_timeout_s: float | None = None,
    ) -> None:
        """Take tasks from the queue, `concurrency` at once (each a sync task on a thread of
        its own). Heartbeats every third of `lease_s`: a worker silent for `lease_s` is dead
        to the others. Returns once the worker is registered (or failed to start)."""
        self._thread = threading.Thread(
            target=self._run_worker,
            args=(concurrency, lease_s, name, graceful_timeout_s),
            name="queue-worker",
            daemon=True,
        )
        self._thread.start()
        self._worker_ready.wait(30.0)

    def _run_worker(
        self, concurrency: int, lease_s: float, name: str, graceful_timeout_s: float | None
    ) -> None:
        """Run the worker until asked to stop; started again after an error (its own bug,
        or one of procrastinate's), waits doubling up to a minute, so that a replica never
        goes on serving while silently taking no task. Readiness says so meanwhile."""
        delay = 1.0
        while not self._stop_requested.is_set():
            error = self._run_once(concurrency, lease_s, name, graceful_timeout_s)
            if error is None:
                break
            self.worker_failure = f"the queue worker stopped on an error ({error}); restarting"
            if self._stop_requested.wait(delay):
                break
            delay = min(60.0, delay * 2)
        self._worker_ready.set()

    def _run_once(
        self, concurrency: int, lease_s: float, name: str, graceful_timeout_s: float | None
    ) -> str | None:
        loop = asyncio.new_event_loop()
        # asgiref runs sync tasks on the loop's default executor: sized for them, or it
        # would run min(32, cores + 4) at once whatever the concurrency.
        loop.set_default_executor(
            ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="queue-task")
        )
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(
                self._worker(concurrency, lease_s, name, graceful_timeout_s, loop)
            )
            return None
        except Exception as exc:
            log.exception("the queue worker stopped on an error")
            return f"{type(exc).__name__}: {exc}"
        finally:
            self._worker_ready.set()
            loop.run_until_complete(loop.shutdown_default_executor())
            loop.close()

    async def _worker(
        self,
        concurrency: int,
        lease_s: float,
        name: str,
        graceful_timeout_s: float | None,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        async with self.app.open_async():
            worker = procrastinate_worker.Worker(
                app=self.app,
                queues=[CHECKS_QUEUE],
                name=name,
                concurrency=concurrency,
                wait=True,
                install_signal_handlers=False,
                update_heartbeat_interval=max(1.0, lease_s / 3),
                stalled_worker_timeout=lease_s,
                shutdown_graceful_timeout=graceful_timeout_s,
                listen_notify=True,
                fetch_job_polling_interval=_FETCH_POLL_S,
                delete_jobs="successful",
            )

            def stop() -> None:
                with contextlib.suppress(RuntimeError):  # the loop closed: stopped already
                    loop.call_soon_threadsafe(worker.stop)

            self._worker_stop = stop
            self.worker_failure = None
            self._worker_ready.set()
            if self._stop_requested.is_set():  # asked before the worker existed
                stop()
            recovery = asyncio.create_task(self._recover_stalled(lease_s), name="recovery")
            try:
                await worker.run()  # type: ignore[no-untyped-call]
            finally:
                recovery.cancel()

    async def _recover_stalled(self, lease_s: float) -> None:
        """Put back in the queue the tasks of workers that sent no heartbeat for `lease_s`
        (killed, cut off), every third of a lease. Every worker does it: a task retried by
        two at once is harmless (the second finds it queued again, not doing)."""
        manager = self.app.job_manager
        while True:
            await asyncio.sleep(max(1.0, lease_s / 3))
            try:
                stalled = list(await manager.get_stalled_jobs(seconds_since_heartbeat=lease_s))
                for job in stalled:
                    await manager.retry_job(job)
                if stalled:
                    log.warning("%d tasks of silent workers put back in the queue", len(stalled))
                await manager.prune_stalled_workers(lease_s)
            except Exception as exc:  # the database away: the next round tries again
                log.warning("stalled tasks not recovered this round: %s", exc)

    def request_stop(self) -> None:
        """Take no more tasks; those running go on. Does not wait."""
        self._stop_requested.set()
        if self._worker_stop is not None:
            self._worker_stop()

    def stop_worker(self, timeout_s: float) -> bool:
        """Take no more tasks; wait for those running (they hand back what they did not
        start) up to `timeout_s`. False if the worker outlived it."""
        if self._thread is None:
            return True
        self.request_stop()
        self._thread.join(timeout_s)
        return not self._thread.is_alive()
