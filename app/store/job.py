"""A job as the memory store keeps it: its results as JSON, its summary counts, and what it
costs in memory."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from app.schemas.jobs import CheckOptionsPublic, JobStatus
from app.store.base import StoredResult

# What the budget counts beside the JSON itself, estimated from CPython's layout: per result,
# the bytes object's header (33) and its slot in the list (8), rounded up for the allocator;
# per job, the record, its options, timestamps and bookkeeping; per URL, the str
# (sys.getsizeof), its tuple slot and its `recorded` byte. Measured on 100 jobs x 1,000
# blocked results (485 B of JSON each): RSS grew 56.6 MB, the budget counted 63.8 MB.
RESULT_OVERHEAD = 64
JOB_OVERHEAD = 2048
URL_SLOT = 8 + 1

_CANCELLED = "cancelled"
_INTERRUPTED = "interrupted"


@dataclass(slots=True, eq=False)
class JobRecord:
    """Mutable state, guarded by the store's lock."""

    id: str
    urls: tuple[str, ...]
    options: CheckOptionsPublic
    duplicates_removed: int
    created_at: datetime
    status: JobStatus = JobStatus.QUEUED
    started_at: datetime | None = None
    finished_at: datetime | None = None
    results: list[bytes] = field(default_factory=list)  # JSON, in completion order
    recorded: bytearray = field(default_factory=bytearray)
    up: int = 0
    degraded: int = 0
    down: int = 0
    cancelled_checks: int = 0  # never ran: cancelled, or shut down before they started
    interrupted_checks: int = 0  # cut off by shutdown: they say nothing about the target
    errors: dict[str, int] = field(default_factory=dict)
    cancel_requested: bool = False
    interrupted: bool = False
    subscribers: list[Callable[[], None]] = field(default_factory=list)
    size: int = 0  # bytes counted against the store's budget
    # A final job's header never changes: encoded once, on its first read.
    final_header_json: bytes | None = None

    def __post_init__(self) -> None:
        self.recorded = bytearray(len(self.urls))
        self.size = JOB_OVERHEAD + sum(sys.getsizeof(url) + URL_SLOT for url in self.urls)

    def add(self, stored: StoredResult) -> int:
        """Keep a result and count it; returns the bytes it added to the budget. A check that
        never ran or was cut off by shutdown is not evidence that its target is down: it has
        counts of its own."""
        self.results.append(stored.json)
        size = len(stored.json) + RESULT_OVERHEAD
        self.size += size
        kind = stored.error_kind
        if stored.ok:
            self.up += 1
            return size
        if kind is not None:
            self.errors[kind] = self.errors.get(kind, 0) + 1
        if kind == _CANCELLED:
            self.cancelled_checks += 1
        elif kind == _INTERRUPTED:
            self.interrupted_checks += 1
        elif stored.degraded:
            self.degraded += 1
        else:
            self.down += 1
        return size

    def copy_header_fields(self) -> dict[str, Any]:
        """The header's values, copied under the lock; the model is built outside it."""
        return {
            "id": self.id,
            "status": self.status,
            "total": len(self.urls),
            "completed": len(self.results),
            "duplicates_removed": self.duplicates_removed,
            "summary": {
                "up": self.up,
                "degraded": self.degraded,
                "down": self.down,
                "cancelled": self.cancelled_checks,
                "interrupted": self.interrupted_checks,
                "errors": dict(self.errors),
            },
            "options": self.options,
            "created_at": self.created_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
        }
