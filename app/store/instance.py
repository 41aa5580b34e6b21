"""This process as the database knows it: a row in `instances` whose heartbeat is the lease
on the jobs it owns. The heartbeat goes through the writer like every other write (one
thread writes), every HEARTBEAT_S; a job not final whose owner's heartbeat is older than
LEASE_S belongs to a process that is gone (app/store/recovery.py)."""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, delete, insert, update

from app.db.schema import instances
from app.db.writer import Writer, WriterClosed, WriterFull

log = logging.getLogger("urlhealth.store")

HEARTBEAT_S = 5.0
# Three beats missed: a process that is merely slow (a long batch, a paused VM) keeps its jobs.
LEASE_S = 3 * HEARTBEAT_S


class Instance:
    def __init__(self, writer: Writer, heartbeat_s: float = HEARTBEAT_S) -> None:
        self.id = uuid.uuid4().hex
        self._writer = writer
        self._heartbeat_s = heartbeat_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="db-heartbeat", daemon=True)

    def register(self, timeout_s: float) -> None:
        """Insert this instance's row (committed before it returns), and start beating."""
        now = datetime.now(UTC)
        row = {
            "id": self.id,
            "hostname": socket.gethostname()[:255],
            "pid": os.getpid(),
            "started_at": now,
            "heartbeat_at": now,
        }

        def write(connection: Connection) -> None:
            connection.execute(insert(instances), [row])

        self._writer.submit(write).result(timeout_s)
        self._thread.start()

    def stop(self) -> None:
        """Stop beating and queue the row's removal: a clean stop leaves no job to recover."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        instance_id = self.id

        def write(connection: Connection) -> None:
            connection.execute(delete(instances).where(instances.c.id == instance_id))

        self._put(write)

    def _beat(self) -> None:
        instance_id = self.id
        while not self._stop.wait(self._heartbeat_s):

            def write(connection: Connection) -> None:
                connection.execute(
                    update(instances)
                    .where(instances.c.id == instance_id)
                    .values(heartbeat_at=datetime.now(UTC))
                )

            self._put(write)

    def _put(self, write: Any) -> None:
        try:
            self._writer.put(write)
        except (WriterFull, WriterClosed) as exc:
            log.warning("heartbeat not written: %s", exc)
