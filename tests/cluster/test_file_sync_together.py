"""The monitors file synced by replicas starting together (app/monitors/sync.py) on a real
PostgreSQL: the advisory lock lets one create the monitors; the others wait for its commit
and find them there, so none is created twice and no sync fails on a duplicate (without the
lock, the writer's retry of a failed batch write by write hides the clash, at a cost)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select

from app.config import Settings
from app.db.engine import Database, open_database
from app.db.migrator import upgrade
from app.db.schema import monitors
from app.db.url import sqlalchemy_url
from app.db.writer import Writer
from app.monitors import file as monitors_file
from app.monitors.sync import SyncOutcome, sync_file

COUNT = 200


def test_replicas_syncing_one_file_at_once_create_each_monitor_once(
    pg_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "monitors.toml"
    path.write_text(
        "".join(
            f'[[monitors]]\nname = "M{n}"\nslug = "m-{n}"\nurl = "http://127.0.0.1:9/{n}"\n'
            for n in range(COUNT)
        ),
        encoding="utf-8",
    )
    settings = Settings(database_url=pg_url, monitors_file=path)
    definitions = [c.definition for c in monitors_file.load(path, settings).monitors]
    replicas = 3
    databases: list[Database] = [
        open_database(sqlalchemy_url(pg_url, tmp_path)) for _ in range(replicas)
    ]
    upgrade(databases[0])
    writers = [Writer(database, 0.01, 1000).start() for database in databases]
    barrier = threading.Barrier(replicas)
    outcomes: list[SyncOutcome | BaseException] = []

    def sync(writer: Writer) -> None:
        barrier.wait(timeout=30)
        try:
            outcomes.append(writer.submit(sync_file(definitions, datetime.now(UTC))).result(60))
        except BaseException as exc:  # reported through outcomes
            outcomes.append(exc)

    threads = [threading.Thread(target=sync, args=(w,)) for w in writers]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=90)
        with databases[0].engine.connect() as connection:
            stored = connection.execute(select(func.count()).select_from(monitors)).scalar()
    finally:
        for writer in writers:
            writer.stop(10)
        for database in databases:
            database.close()
    assert all(isinstance(o, SyncOutcome) for o in outcomes), outcomes
    created = sorted(len(o.created) for o in outcomes if isinstance(o, SyncOutcome))
    assert created == [0] * (replicas - 1) + [COUNT]
    assert stored == COUNT
    # Not even a batch that failed on a duplicate and was retried write by write.
    assert "retrying them one by one" not in caplog.text
