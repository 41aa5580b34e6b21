"""The monitors' running parts put together: the scheduler hands due checks to the
dispatcher's reserved capacity, the recorder keeps each result (state, incidents, rollups in
one writer transaction), and the facade drives the schedule from the API and the file.

As one replica of several (`replica` given): a replica that runs checks claims each tick's
due checks (app/monitors/claims.py), so each runs once across the cluster; an API replica
runs no scheduler thread (its facade still changes monitors, and its readiness does not
depend on a schedule it does not keep); every replica follows changes made elsewhere
(app/monitors/follow.py), announced in each change's transaction."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Collection
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, update

from app.cluster.queue import conninfo
from app.cluster.replica import Replica
from app.cluster.wakeups import notify
from app.config import Settings
from app.db.engine import Database
from app.db.schema import monitors as monitors_table
from app.db.writer import Writer, WriterClosed, WriterFull
from app.engine.dispatcher import Dispatcher
from app.monitors.claims import DueClaims
from app.monitors.file import AlertTables
from app.monitors.follow import CHANNEL, Follower
from app.monitors.recorder import OnTransition, Recorder
from app.monitors.repository import MonitorRepository
from app.monitors.scheduler import MonitorScheduler, Scheduled
from app.monitors.service import Monitors
from app.schemas.results import CheckResult

log = logging.getLogger("urlhealth.monitors")


@dataclass(eq=False)
class Monitoring:
    scheduler: MonitorScheduler
    recorder: Recorder
    monitors: Monitors
    stall_s: float = 30.0
    stop_timeout_s: float = 5.0
    runs_checks: bool = True  # False on an API replica: no scheduler thread
    follower: Follower | None = None  # replicas: changes made on the others
    claims: DueClaims | None = None

    @classmethod
    def build(
        cls,
        settings: Settings,
        database: Database,
        writer: Writer,
        dispatcher: Dispatcher,
        on_transition: OnTransition | None = None,
        alert_tables: AlertTables | None = None,
        in_maintenance: Callable[[], Collection[int]] = frozenset,
        replica: Replica | None = None,
    ) -> Monitoring:
        """`on_transition`: called in the transaction of each confirmed state change (the
        alerts' outbox); `alert_tables`: the file's channels and alert rules;
        `in_maintenance`: the ids of monitors inside a maintenance window now."""
        recorder = Recorder(writer, on_transition)

        def run(monitor: Scheduled) -> Future[CheckResult]:
            return dispatcher.check_monitor(monitor.url, monitor.options, monitor.parsed)

        def record(monitor: Scheduled, started_at: datetime, result: CheckResult) -> None:
            recorder.record(monitor.id, monitor.generation, started_at, result)

        claims = None
        if replica is not None and replica.runs_checks:  # they keep next_due_at then
            claims = DueClaims(conninfo(database.url))
        # Replicas: only the claims write next_due_at (an API replica's puts must not).
        saver = _due_saver(writer) if replica is None else _no_save
        scheduler = MonitorScheduler(run, record, saver, claim=claims)
        announce = None if replica is None else _announce
        repository = MonitorRepository(database, writer, on_change=announce)
        monitors = Monitors(
            settings,
            repository,
            scheduler,
            alert_tables=alert_tables,
            in_maintenance=in_maintenance,
        )
        if replica is None:
            return cls(scheduler, recorder, monitors, stall_s=settings.monitor_stall_s)
        follower = Follower(database, monitors, replica.wakeups.subscribe_channel)
        return cls(
            scheduler,
            recorder,
            monitors,
            settings.monitor_stall_s,
            runs_checks=replica.runs_checks,
            follower=follower,
            claims=claims,
        )

    def start(self) -> None:
        """Load the file and the stored monitors onto the schedule, then start it."""
        self.monitors.start()
        if self.follower is not None:
            self.follower.start()
        if self.runs_checks:
            self.scheduler.start()

    def stalled(self) -> str | None:
        """Why monitors are not being checked on time, or None: the scheduler's own hand-off
        stalls, or its recent checks started more than `stall_s` after they were due (the
        engine, not the scheduler, held them). None on a replica that keeps no schedule."""
        if not self.runs_checks:
            return None
        reason = self.scheduler.stalled(self.stall_s)
        if reason is not None:
            return reason
        stats = self.scheduler.stats()
        if stats.scheduled and stats.lag_samples and stats.lag_p99_s > self.stall_s:
            return (
                f"recent monitor checks started {stats.lag_p99_s:.1f} s after they were due "
                f"(p99; the limit is monitor_stall_s = {self.stall_s:g} s)"
            )
        return None

    def halt(self) -> None:
        """Hand out no more checks; those going finish. Shutdown calls this first, so that
        no due monitor meets a dispatcher that refuses work. Waits for nothing."""
        self.scheduler.stop(0.0)

    def stop(self) -> None:
        if self.follower is not None:
            self.follower.stop()
        if not self.scheduler.stop(self.stop_timeout_s):
            log.warning("the monitor scheduler did not stop within %.1f s", self.stop_timeout_s)
        self.monitors.stop()
        if self.claims is not None:
            self.claims.close()


def _announce(connection: Connection, monitor_id: int | None) -> None:
    """Other replicas hear of a monitor's change at commit ("": any number changed)."""
    notify(connection, CHANNEL, "" if monitor_id is None else str(monitor_id))


def _due_saver(writer: Writer) -> Callable[[int, datetime], None]:
    """The next due time goes to the monitor's row, so a restart keeps the schedule. A
    cache of the grid (app/monitors/timing.py): when the writer cannot take it, the next
    start recomputes it, so it is dropped rather than waited for."""

    def save(monitor_id: int, due: datetime) -> None:
        def write(connection: Connection) -> None:
            statement = update(monitors_table).where(monitors_table.c.id == monitor_id)
            connection.execute(statement.values(next_due_at=due))

        with contextlib.suppress(WriterFull, WriterClosed):
            writer.put(write)

    return save


def _no_save(monitor_id: int, due: datetime) -> None:
    """Replicas: next_due_at is the claims' (app/monitors/claims.py)."""
