"""A batch of writes, as the writer thread runs them inside one transaction."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Table, insert

Write = Callable[[Connection], Any]


@dataclass(frozen=True, slots=True)
class Row:
    table: Table
    values: dict[str, Any]


@dataclass(slots=True)
class Item:
    write: Write | Row
    future: Future[Any] | None
    queued_at: float = field(default_factory=time.monotonic)


def apply(connection: Connection, batch: list[Item]) -> list[Any]:
    """Run the batch's writes in order; consecutive rows for one table as one executemany."""
    outcomes: list[Any] = []
    start = 0
    while start < len(batch):
        write = batch[start].write
        if not isinstance(write, Row):
            outcomes.append(write(connection))
            start += 1
            continue
        rows = [write.values]
        for item in batch[start + 1 :]:
            if not isinstance(item.write, Row) or item.write.table is not write.table:
                break
            rows.append(item.write.values)
        connection.execute(insert(write.table), rows)
        outcomes.extend([None] * len(rows))
        start += len(rows)
    return outcomes
