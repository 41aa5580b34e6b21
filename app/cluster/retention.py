"""Retention of the task queue's ended tasks, run by the database's retention loop
(app/db/retention.py) like the jobs' and the monitors' history, in small batches."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from app.cluster.queue import TaskQueue
from app.db.retention import BATCH_ROWS, Pruned, RunBatch

MAX_BATCHES = 10_000  # a bound, not a target


@dataclass(frozen=True, slots=True)
class QueueRetention:
    """A retention task (app.db.retention.RetentionTask): ended tasks older than `days`."""

    days: float
    batch_rows: int = BATCH_ROWS

    def __call__(self, now: datetime, run: RunBatch) -> Pruned | None:
        before = now - timedelta(days=self.days)
        total = 0
        for _ in range(MAX_BATCHES):
            done = run(lambda c: TaskQueue.prune_finished(c, before, self.batch_rows))
            if done is None:
                return None
            total += done
            if done < self.batch_rows:
                break
        return Pruned(rows=total)
