"""The checks of a chunk that ended, handed to the chunk's thread a batch at a time.

A chunk waits for up to 100 checks. Woken at every check's end (a queue's `get` per
result), its thread cost ~1.4 wake-ups and a pass of its loop per check in bench S3, more
than a tenth of a worker replica's CPU. Here a check's end only appends to a list; the
waiting thread is woken when the first of a batch arrives (its clock starts), when the batch
is full, or when the last check ends; otherwise it sleeps until the batch's time is up.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from concurrent.futures import Future
from typing import Generic, TypeVar

T = TypeVar("T")


class Ended(Generic[T]):
    def __init__(self, futures: Iterable[Future[T]], batch: int, wait_s: float) -> None:
        self._batch = batch
        self._wait_s = wait_s
        self._cond = threading.Condition(threading.Lock())
        self._ended: list[Future[T]] = []
        self._first_at = 0.0  # when the oldest future in `_ended` ended
        futures = list(futures)
        self._waiting = len(futures)  # not yet ended
        for future in futures:
            future.add_done_callback(self._end)  # also called by cancel()

    def _end(self, future: Future[T]) -> None:
        with self._cond:
            self._ended.append(future)
            self._waiting -= 1
            taken = len(self._ended)
            if taken == 1:
                self._first_at = time.monotonic()
            if taken == 1 or taken >= self._batch or self._waiting == 0:
                self._cond.notify()

    def take(self, timeout_s: float) -> list[Future[T]]:
        """The futures that ended: once a batch is full, or its first waited `wait_s`,
        or none is left to wait for; nothing after `timeout_s` if none ended meanwhile."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while True:
                now = time.monotonic()
                if self._ended:
                    due = self._first_at + self._wait_s
                    if len(self._ended) >= self._batch or self._waiting == 0 or now >= due:
                        break
                    self._cond.wait(due - now)
                elif now >= deadline:
                    return []
                else:
                    self._cond.wait(deadline - now)
            taken, self._ended = self._ended, []
            return taken
