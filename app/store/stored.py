"""Jobs as the database keeps them: what the durable store reads once a job has left memory.
Each read takes a pooled connection of its own (never a lock, never the writer's), and a
database that cannot be read becomes StoreUnavailable, with the driver's reason."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import Connection
from sqlalchemy.exc import SQLAlchemyError

from app.db.engine import Database
from app.store import rows
from app.store.base import JobFilter, JobNotFound, StoreUnavailable

T = TypeVar("T")
Fields = dict[str, Any]


class StoredJobs:
    def __init__(self, database: Database) -> None:
        self._database = database

    def header(self, job_id: str) -> Fields:
        return self._found(job_id, self._read(lambda c: rows.read_header(c, job_id)))

    def page(self, job_id: str, start: int, count: int | None) -> tuple[Fields, list[bytes]]:
        """The job's header fields, and its results seq in [start, start + count) (None:
        to the end)."""

        def read(connection: Connection) -> tuple[Fields | None, list[bytes]]:
            fields = rows.read_header(connection, job_id)
            if fields is None:
                return None, []
            stop = fields["completed"] if count is None else start + count
            return fields, rows.read_results(connection, job_id, start, stop)

        fields, bodies = self._read(read)
        return self._found(job_id, fields), bodies

    def stream(self, job_id: str, start: int, count: int) -> tuple[Fields, list[tuple[int, bytes]]]:
        """The job's header fields, and at most `count` of its results from seq `start` on,
        each with its seq."""

        def read(connection: Connection) -> tuple[Fields | None, list[tuple[int, bytes]]]:
            fields = rows.read_header(connection, job_id)
            if fields is None:
                return None, []
            return fields, rows.read_results_from(connection, job_id, start, count)

        fields, found = self._read(read)
        return self._found(job_id, fields), found

    def listed(self, offset: int, limit: int, where: JobFilter) -> tuple[list[Fields], int]:
        return self._read(lambda c: rows.read_list(c, offset, limit, where))

    def counts_by_status(self) -> dict[str, int]:
        """Jobs by stored status: one GROUP BY, read once at start."""
        return self._read(rows.count_by_status)

    @staticmethod
    def _found(job_id: str, fields: Fields | None) -> Fields:
        if fields is None:
            raise JobNotFound(job_id)
        return fields

    def _read(self, read: Callable[[Connection], T]) -> T:
        try:
            with self._database.engine.connect() as connection:
                return read(connection)
        except SQLAlchemyError as exc:
            reason = reason_of(exc, self._database.url.password)
            raise StoreUnavailable(f"the database cannot be read: {reason}") from None


def reason_of(exc: BaseException, password: str | None) -> str:
    """The driver's first line (SQLAlchemy's own adds the statement, which may be long),
    with the password scrubbed should a driver echo it."""
    original = getattr(exc, "orig", None) or exc
    text = str(original).strip()
    reason = text.splitlines()[0] if text else type(original).__name__
    return reason.replace(str(password), "***") if password else reason
