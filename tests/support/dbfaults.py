"""Real SQLite faults for tests: a database made "full" or read-only for the connections
checked out from now on (`PRAGMA max_page_count`, `PRAGMA query_only`), or an SQLite file
reopened read-only (`mode=ro`)."""

from __future__ import annotations

import sqlite3
from typing import Any

from sqlalchemy import event

from app.db.engine import Database

UNLIMITED_PAGES = 1_073_741_823


class SqliteFault:
    """Makes the database "full" or read-only for every connection checked out from now
    on, or neither: `PRAGMA max_page_count`, `PRAGMA query_only`, or (an SQLite file) every
    connection closed and opened again read-only (`mode=ro`)."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._mode = "none"
        event.listen(db.engine, "checkout", self._apply)
        event.listen(db.engine, "do_connect", self._connect)

    @property
    def mode(self) -> str:
        return self._mode

    @mode.setter
    def mode(self, mode: str) -> None:
        reopen = "reopen" in (mode, self._mode)
        self._mode = mode
        if reopen:  # connections in use are closed when they come back
            self._db.engine.dispose()

    def _connect(self, _dialect: Any, _record: Any, _args: Any, _params: Any) -> Any:
        if self._mode != "reopen":
            return None  # the dialect's own connect
        uri = f"file:{self._db.url.database}?mode=ro"
        return sqlite3.connect(uri, uri=True, check_same_thread=False)

    def _apply(self, dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            # Below the current size SQLite takes the current size: no page can be added.
            pages = 1 if self._mode == "full" else UNLIMITED_PAGES
            cursor.execute(f"PRAGMA max_page_count = {pages}")
            cursor.execute(f"PRAGMA query_only = {'ON' if self._mode == 'readonly' else 'OFF'}")
        finally:
            cursor.close()
