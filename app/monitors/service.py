"""`Monitors`: what the API asks of monitor definitions, driving the repository and the
scheduler.

Every change (create, update, delete, reload) runs on one thread of its own, in order: a
change and its scheduler update happen together, so two changes of one monitor can never
reach the scheduler in the other order than they reached the database. Reads run on the
caller's thread. SIGHUP only asks for a reload (`request_reload`, which never blocks); the
same thread does it, and a failed one logs its errors and keeps the monitors as they were.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Collection
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

from pydantic import ValidationError

from app.config import Settings
from app.inputs import InputError
from app.monitors import file as monitors_file
from app.monitors.definition import MonitorRecord, check, public, scheduled
from app.monitors.errors import MonitorNotScheduled, MonitorsFileError, NoMonitorsFile
from app.monitors.masking import mask_data
from app.monitors.merge import patch_definition
from app.monitors.pages import StatusPage
from app.monitors.repository import (
    WRITE_TIMEOUT_S,
    Change,
    MonitorQuery,
    MonitorRepository,
    read_only,
)
from app.monitors.scheduled import Scheduled
from app.monitors.sync import SyncOutcome, SyncRefused, sync_file
from app.schemas.jobs import JobOptions
from app.schemas.monitoring import Source
from app.schemas.monitors import MonitorCreate, MonitorPublic, MonitorsPublic, ReloadReport
from app.schemas.results import CheckResult

log = logging.getLogger("urlhealth.monitors")

T = TypeVar("T")
# A change waits for its turn and its commit; past this the API answers 503.
CHANGE_TIMEOUT_S = WRITE_TIMEOUT_S + 10.0


class Scheduler(Protocol):
    """What the facade needs of the monitor scheduler (app/monitors/scheduler.py)."""

    def put(self, monitor: Scheduled, due_at: datetime | None) -> None: ...

    def remove(self, monitor_id: int) -> None: ...

    def run_now(self, monitor_id: int) -> Future[CheckResult]: ...


def utcnow() -> datetime:
    return datetime.now(UTC)


class Monitors:
    def __init__(
        self,
        settings: Settings,
        repository: MonitorRepository,
        scheduler: Scheduler,
        clock: Callable[[], datetime] = utcnow,
        alert_tables: monitors_file.AlertTables | None = None,
        in_maintenance: Callable[[], Collection[int]] = frozenset,
    ) -> None:
        """`in_maintenance`: the ids of monitors inside a maintenance window now (the
        alerts' windows, handed in by the composition root), shown as `maintenance`."""
        self._settings = settings
        self._in_maintenance = in_maintenance
        self._alert_tables = alert_tables
        self._repository = repository
        self._scheduler = scheduler
        self._clock = clock
        self._changes = ThreadPoolExecutor(max_workers=1, thread_name_prefix="monitor-changes")
        self._reload_asked = threading.Event()
        self.modules: dict[str, JobOptions] = {}  # the file's check profiles, for /probe
        # The file's status pages by slug, for /status/{slug}: in memory only (the file is
        # their one source), replaced as a whole by a reload that succeeds.
        self.status_pages: dict[str, StatusPage] = {}

    # --- lifecycle -----------------------------------------------------------------------
    def start(self) -> None:
        """Load the file (if set; a bad one is logged and the stored monitors kept), then
        hand every unpaused monitor to the scheduler. Waits however long a large file
        takes: each of its writes has its own bound."""
        self._changes.submit(self._start).result()

    def _start(self) -> None:
        if self._settings.monitors_file is not None:
            self._reload_logged(schedule=False)  # every monitor is put just below
        for record in self._repository.all():
            if not record.paused:
                self._put(record, record.next_due_at)

    def stop(self) -> None:
        self._changes.shutdown(wait=True, cancel_futures=True)

    # --- changes made on other replicas (app/monitors/follow.py) -------------------------
    def later(self, work: Callable[[], None]) -> bool:
        """Queue `work` on the change thread, in turn; False once stopping."""
        try:
            self._changes.submit(work)
        except RuntimeError:
            return False
        return True

    def schedule_stored(self, monitor_id: int, record: MonitorRecord | None) -> None:
        """On the change thread: the schedule takes the monitor as stored (None: gone)."""
        if record is None or record.paused:
            self._scheduler.remove(monitor_id)
        else:
            self._put(record, record.next_due_at)

    # --- reads ---------------------------------------------------------------------------
    def get(self, ref: str) -> MonitorPublic:
        record = self._repository.get(ref)
        return public(record, record.id in self._in_maintenance())

    def list(self, query: MonitorQuery, offset: int, limit: int) -> MonitorsPublic:
        records, count = self._repository.page(query, offset, limit)
        covered = self._in_maintenance()
        shown = [public(r, r.id in covered) for r in records]
        return MonitorsPublic(monitors=shown, count=count, offset=offset, limit=limit)

    # --- changes -------------------------------------------------------------------------
    def create(self, body: MonitorCreate) -> MonitorPublic:
        """InputError (422), MonitorConflict (409: name or slug taken, here or in the file)."""
        checked = check(body, self._settings)
        self._check_channels(checked.definition.alerts)

        def change() -> MonitorRecord:
            record = self._repository.create(checked.definition, Source.API, self._clock())
            if not record.paused:
                self._put(record, None)
            return record

        return public(self._in_turn(change))

    def update(self, ref: str, patch: dict[str, Any]) -> MonitorPublic:
        """A JSON merge patch of the definition as written, checked whole again."""

        def change() -> MonitorRecord:
            current = self._repository.get(ref)  # in turn: the patch applies to the latest
            if current.source != Source.API:
                raise read_only(current)
            merged = patch_definition(current.written(), patch)
            try:
                body = MonitorCreate.model_validate(merged)
            except ValidationError as exc:
                raise InputError(_errors(exc)) from None
            try:
                checked = check(body, self._settings)
            except InputError as exc:  # its values may be stored secrets the patch never sent
                raise InputError([_without_input(e) for e in exc.errors]) from None
            self._check_channels(checked.definition.alerts)
            done = self._repository.update(
                current.id, checked.definition, self._clock(), Source.API
            )
            self._apply(done)
            return done.record

        return public(self._in_turn(change))

    def delete(self, ref: str) -> None:
        def change() -> None:
            current = self._repository.get(ref)
            self._repository.delete(current.id, Source.API)
            self._scheduler.remove(current.id)

        self._in_turn(change)

    def check_now(self, ref: str, load: bool = False) -> Future[dict[str, Any]]:
        """Run one check now; its result, secrets masked. MonitorNotScheduled if paused.
        `load`: a monitor this process has not scheduled yet (created through another
        replica) is put on its schedule first."""
        record = self._repository.get(ref)
        if record.paused:
            raise MonitorNotScheduled(f"monitor {record.slug!r} is paused: unpause it to check it")
        secrets = record.secrets()
        masked: Future[dict[str, Any]] = Future()

        def done(future: Future[CheckResult]) -> None:
            if future.cancelled():
                masked.cancel()
            elif (error := future.exception()) is not None:
                masked.set_exception(error)
            else:
                dumped = future.result().model_dump(mode="json")
                masked.set_result(mask_data(dumped, secrets))

        if load:
            self._in_turn(lambda: self._put(record, record.next_due_at))
        try:
            running = self._scheduler.run_now(record.id)
        except KeyError:  # refused by the settings at start: logged then
            raise MonitorNotScheduled(f"monitor {record.slug!r} is not scheduled") from None
        running.add_done_callback(done)
        return masked

    def _check_channels(self, alerts: dict[str, Any] | None) -> None:
        """A monitor's own alert channels must exist, as a rule's must (422 otherwise)."""
        slugs = (alerts or {}).get("channels") or []
        if self._alert_tables is None or not slugs:
            return
        missing = self._alert_tables.unknown_channels(slugs)
        if missing:
            msg = f"no channel with slug {missing[0]!r}"
            loc = ("body", "alerts", "channels")
            raise InputError([{"type": "value_error", "loc": loc, "msg": msg}])

    # --- the file ------------------------------------------------------------------------
    def reload(self) -> ReloadReport:
        """MonitorsFileError (nothing changed) or NoMonitorsFile."""
        return self._in_turn(self._reload)

    def request_reload(self) -> None:
        """Ask for a reload and return at once (a signal handler's call): asks made while
        one is waiting to start are one reload."""
        if self._reload_asked.is_set():
            return
        self._reload_asked.set()
        try:
            self._changes.submit(self._reload_logged)
        except RuntimeError:  # shutting down
            self._reload_asked.clear()

    def _reload_logged(self, schedule: bool = True) -> None:
        self._reload_asked.clear()
        try:
            report = self._reload(schedule)
        except MonitorsFileError as exc:
            log.error(
                "monitors file not loaded, the monitors are unchanged: %s has %d error(s)",
                exc.path,
                len(exc.errors),
            )
            for error in exc.errors:
                log.error("  %s: %s", error["where"], error["msg"])
        except Exception:
            log.exception("monitors file not loaded, the monitors are unchanged")
        else:
            log.info(
                "monitors file loaded: %d created, %d updated, %d deleted, %d unchanged",
                len(report.created),
                len(report.updated),
                len(report.deleted),
                len(report.unchanged),
            )

    def _reload(self, schedule: bool = True) -> ReloadReport:
        path = self._settings.monitors_file
        if path is None:
            raise NoMonitorsFile("no monitors file is set (setting monitors_file)")
        tables = self._alert_tables
        loaded = monitors_file.load(path, self._settings, tables)
        definitions = [checked.definition for checked in loaded.monitors]
        own = monitors_file.own_channels(definitions)
        also = None if tables is None else tables.write(loaded.alerting, own)
        try:
            write = sync_file(definitions, self._clock(), also, self._repository.announce)
            outcome: SyncOutcome = self._repository.run(write)
        except SyncRefused as exc:
            raise MonitorsFileError(str(path), exc.errors) from None
        self.modules = loaded.modules
        self.status_pages = loaded.status_pages
        if schedule:
            self._schedule(outcome)
        return ReloadReport(
            created=[r.slug for r in outcome.created],
            updated=[c.record.slug for c in outcome.updated],
            deleted=[r.slug for r in outcome.deleted],
            unchanged=[r.slug for r in outcome.unchanged],
        )

    # --- the scheduler -------------------------------------------------------------------
    def _schedule(self, outcome: SyncOutcome) -> None:
        for record in outcome.deleted:
            self._scheduler.remove(record.id)
        for record in outcome.created:
            if not record.paused:
                self._put(record, None)
        for change in outcome.updated:
            self._apply(change)

    def _apply(self, change: Change) -> None:
        record = change.record
        if not change.changed:
            return
        if record.paused:
            self._scheduler.remove(record.id)
        else:
            self._put(record, record.next_due_at)

    def _put(self, record: MonitorRecord, due_at: datetime | None) -> None:
        try:
            monitor = scheduled(record, self._settings)
        except InputError as exc:  # a limit lowered since it was written
            log.error("monitor %r is not scheduled: %s", record.slug, exc)
            self._scheduler.remove(record.id)
            return
        self._scheduler.put(monitor, due_at)

    def _in_turn(self, change: Callable[[], T]) -> T:
        return self._changes.submit(change).result(CHANGE_TIMEOUT_S)


def _errors(exc: ValidationError) -> list[dict[str, Any]]:
    return [
        {"type": e["type"], "loc": ("body", *e["loc"]), "msg": e["msg"]}
        for e in exc.errors(include_url=False, include_input=False)
    ]


def _without_input(error: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in error.items() if k != "input"}
