"""The durable store's parts opened and closed in order: the database (opened, migrated), its
writer, this instance's row and heartbeat, crash recovery, then the store; at the end, the
heartbeat stopped, the writer flushed (bounded by a timeout), the database closed."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from app.config import Settings
from app.db.engine import Database, DatabaseError, open_database
from app.db.migrator import upgrade
from app.db.retention import RetentionLoop, RetentionTask
from app.db.url import sqlalchemy_url
from app.db.writer import Writer
from app.store.durable import DurableStore
from app.store.instance import LEASE_S, Instance
from app.store.memory import MemoryStore
from app.store.recovery import recover

log = logging.getLogger("urlhealth.store")

# How long start may wait for one of its writes (the instance row, a recovered job).
START_TIMEOUT_S = 60.0
FLUSH_TIMEOUT_S = 10.0


@dataclass(eq=False)
class Storage:
    database: Database
    writer: Writer
    instance: Instance
    store: DurableStore
    retention: RetentionLoop
    flush_timeout_s: float

    @classmethod
    def open(cls, settings: Settings, retention_tasks: Sequence[RetentionTask] = ()) -> Storage:
        """Raises DatabaseError (the message names the masked URL) if it cannot be used.
        `retention_tasks` prune more than jobs (monitor history) in each retention round."""
        secret = settings.database_url
        url = sqlalchemy_url(secret.get_secret_value() if secret else None, settings.data_dir)
        database = open_database(url)
        try:
            upgrade(database)
        except DatabaseError:
            database.close()
            raise
        except Exception as exc:
            database.close()
            raise DatabaseError(
                f"cannot migrate the database {database.masked_url}: {exc}"
            ) from None
        writer = Writer(
            database,
            settings.db_flush_interval_s,
            settings.db_queue_max,
            retry_max_delay_s=settings.db_retry_max_delay_s,
        ).start()
        instance = Instance(writer)
        try:
            instance.register(START_TIMEOUT_S)
            recover(writer, instance.id, LEASE_S, START_TIMEOUT_S, settings.clustered)
        except Exception as exc:
            instance.stop()
            writer.stop(FLUSH_TIMEOUT_S)
            database.close()
            raise DatabaseError(
                f"cannot start on the database {database.masked_url}: {exc}"
            ) from None
        memory = MemoryStore(
            settings.retention_max_jobs,
            settings.retention_max_age_s,
            max_bytes=settings.retention_max_bytes,
        )
        store = DurableStore(database, writer, memory, instance.id, settings.db_queue_max)
        # After recovery, so it never races a job being finalised; one batch per writer call.
        retention = RetentionLoop(
            writer.submit,
            retention_days=settings.db_retention_days,
            max_jobs=settings.db_retention_max_jobs,
            interval_s=settings.db_retention_interval_s,
            tasks=retention_tasks,
            on_deleted=store.counts.deleted,  # the store's job counts follow what retention deletes
        ).start()
        return cls(database, writer, instance, store, retention, settings.db_flush_timeout_s)

    def close(self) -> None:
        self.retention.stop()
        self.instance.stop()
        if not self.writer.stop(self.flush_timeout_s):
            log.error(
                "the database writer did not finish within %.1f s: what it still held is lost",
                self.flush_timeout_s,
            )
        self.database.close()
