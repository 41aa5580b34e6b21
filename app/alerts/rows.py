"""What the alerts facades share: rows found by id or slug, pages, and writes through the
writer, with a unique name's clash turned into Conflict."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Connection, Row, Table
from sqlalchemy.exc import IntegrityError

from app.alerts import admin
from app.alerts.errors import Conflict, NotFound
from app.db.engine import Database
from app.db.writer import Writer

T = TypeVar("T")
WRITE_TIMEOUT_S = 30.0


class Rows:
    def __init__(self, database: Database, writer: Writer, clock: Callable[[], datetime]) -> None:
        self._database = database
        self._writer = writer
        self._clock = clock

    def _get(self, table: Table, ref: str, what: str) -> Row[Any]:
        with self._database.engine.connect() as connection:
            row = admin.find(connection, table, ref)
        if row is None:
            raise NotFound(f"no {what} with id or slug {ref!r}")
        return row

    def _editable(self, table: Table, ref: str, what: str) -> Row[Any]:
        row = self._get(table, ref, what)
        if row.source == "file":
            raise Conflict(f"the {what} {row.slug!r} comes from the monitors file: edit it there")
        return row

    def _page(self, table: Table, offset: int, limit: int) -> list[Row[Any]]:
        with self._database.engine.connect() as connection:
            return admin.page(connection, table, offset, limit)

    def _write(self, fn: Callable[[Connection], T]) -> T:
        return self._writer.submit(fn).result(WRITE_TIMEOUT_S)

    def _unique(self, fn: Callable[[Connection], T], what: str) -> T:
        try:
            return self._write(fn)
        except IntegrityError:
            raise Conflict(f"{what} exists already") from None
