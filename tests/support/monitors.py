"""Monitor rows and check results for the history tests: rows inserted directly (the
definitions' repository is another module's), results built as the engine would."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import insert, update

from app.db.engine import Database, open_database
from app.db.migrator import upgrade
from app.db.schema import monitors
from app.db.url import sqlalchemy_url
from app.db.writer import Writer
from app.monitors.states import RESTART
from app.schemas.monitoring import Outcome
from app.schemas.results import CheckError, CheckResult, ErrorKind, Timings

T0 = datetime(2026, 12, 1, tzinfo=UTC)


@dataclass(eq=False)
class HistoryStore:
    database: Database
    writer: Writer


@contextmanager
def history_store(database_url: str, tmp_path: Path) -> Iterator[HistoryStore]:
    database = open_database(sqlalchemy_url(database_url, tmp_path))
    upgrade(database)
    writer = Writer(database, 0.001, 100_000).start()
    try:
        yield HistoryStore(database, writer)
    finally:
        writer.stop(10.0)
        database.close()


def add_monitor(database: Database, slug: str, **values: Any) -> int:
    row: dict[str, Any] = {
        "slug": slug,
        "name": slug.replace("-", " ").title(),
        "source": "api",
        "url": f"http://user:secret@127.0.0.1:9/{slug}?token=secret",
        "options": {},
        "interval_s": 60.0,
        "group_name": None,
        "labels": {},
        "paused": False,
        "failure_threshold": 3,
        "success_threshold": 2,
        "created_at": T0,
        "updated_at": T0,
        "generation": 1,
        "state": "unknown",
        "pending_count": 0,
        "skipped": 0,
        **values,
    }
    with database.write_engine.begin() as connection:
        return int(
            connection.execute(insert(monitors).values(**row).returning(monitors.c.id)).scalar_one()
        )


def bump_generation(database: Database, monitor_id: int) -> None:
    """What editing a monitor's url or options does to its row."""
    with database.write_engine.begin() as connection:
        connection.execute(
            update(monitors)
            .where(monitors.c.id == monitor_id)
            .values(generation=monitors.c.generation + 1, **RESTART)
        )


def check(outcome: Outcome, elapsed_ms: float = 20.0, at: datetime = T0) -> CheckResult:
    """A result as the engine makes it: `down` is a 500, `degraded` a slow 200."""
    error = None
    if outcome == "down":
        error = CheckError(kind=ErrorKind.UNEXPECTED_STATUS, message="status 500")
    return CheckResult(
        url="http://user:secret@127.0.0.1:9/x?token=secret",
        ok=outcome == "up",
        outcome=outcome,
        status_code=500 if outcome == "down" else 200,
        elapsed_ms=elapsed_ms,
        final_url="http://127.0.0.1:9/x?token=secret",
        timings_ms=Timings(dns=0.5, connect=1.0, ttfb=elapsed_ms - 2.0, transfer=0.5),
        checked_at=at,
        error=error,
    )
