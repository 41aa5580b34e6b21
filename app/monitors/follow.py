"""Keeping this replica's schedule in step with monitor changes made on other replicas.

A change's transaction announces the monitor's id on the `urlhealth_monitors` wake-up channel
(app/cluster/wakeups.py; "" for a file sync, which may change any number). Woken, this
replica reads those monitors from the database and puts them on its schedule, or takes them
off (deleted, paused). Wake-ups sent while the listening connection was down are lost, so a
full resync runs every `resync_s` as the safety net: it reads only (id, updated_at), and
fetches the monitors whose stamp differs from the one seen last.

The wake-up callback only notes the ids; the work is queued on the monitors' change thread
(`Monitors.later`), in turn with this replica's own changes, so a reload never overtakes one.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import select

from app.db.engine import Database
from app.db.schema import monitors
from app.monitors.definition import MonitorRecord
from app.monitors.service import Monitors

log = logging.getLogger("urlhealth.monitors")

CHANNEL = "urlhealth_monitors"
RESYNC_S = 30.0
_CHUNK = 500


class Follower:
    def __init__(
        self,
        database: Database,
        monitors_facade: Monitors,
        subscribe: Callable[[str, Callable[[str], None]], Callable[[], None]],
        resync_s: float = RESYNC_S,
    ) -> None:
        """`subscribe(channel, callback(key))`: Wakeups.subscribe_channel."""
        self._database = database
        self._monitors = monitors_facade
        self._subscribe = subscribe
        self._resync_s = resync_s
        self._lock = threading.Lock()
        self._pending: set[int] = set()
        self._everything = False
        self._queued = False
        self._seen: dict[int, datetime] = {}  # the change thread's own: stamps read last
        self._unsubscribe: Callable[[], None] | None = None
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._resync, name="monitor-follow", daemon=True)

    def start(self) -> None:
        self._unsubscribe = self._subscribe(CHANNEL, self.woken)
        self._thread.start()
        self.woken("")  # changes made between the first load and the subscription

    def stop(self) -> None:
        self._stopping.set()
        if self._unsubscribe is not None:
            self._unsubscribe()
        if self._thread.ident is not None:
            self._thread.join(5.0)

    def woken(self, key: str) -> None:
        """A monitor changed (its id), or any may have (""): note it, queue one reload."""
        with self._lock:
            if key.isdigit():
                self._pending.add(int(key))
            else:
                self._everything = True
            if self._queued:
                return
            self._queued = True
        if not self._monitors.later(self._reload):
            with self._lock:
                self._queued = False

    def _resync(self) -> None:
        while not self._stopping.wait(self._resync_s):
            self.woken("")

    def _reload(self) -> None:
        """On the change thread: the noted monitors as stored now."""
        with self._lock:
            ids, everything = self._pending, self._everything
            self._pending, self._everything, self._queued = set(), False, False
        try:
            if everything:
                stamps = self._stamps()
                gone = self._seen.keys() - stamps.keys()
                ids |= gone | {i for i, at in stamps.items() if self._seen.get(i) != at}
            records = self._records(ids)
        except Exception:
            log.exception("monitors changed elsewhere could not be read; the resync retries")
            return
        for monitor_id in ids:
            record = records.get(monitor_id)
            if record is None:
                self._seen.pop(monitor_id, None)
            else:
                self._seen[monitor_id] = record.updated_at
            self._monitors.schedule_stored(monitor_id, record)

    def _stamps(self) -> dict[int, datetime]:
        with self._database.engine.connect() as connection:
            rows = connection.execute(select(monitors.c.id, monitors.c.updated_at)).all()
        return {int(row.id): row.updated_at for row in rows}

    def _records(self, ids: set[int]) -> dict[int, MonitorRecord]:
        wanted = sorted(ids)
        found: dict[int, MonitorRecord] = {}
        with self._database.engine.connect() as connection:
            for start in range(0, len(wanted), _CHUNK):
                chunk = wanted[start : start + _CHUNK]
                for row in connection.execute(select(monitors).where(monitors.c.id.in_(chunk))):
                    record = MonitorRecord.from_row(row)
                    found[record.id] = record
        return found
