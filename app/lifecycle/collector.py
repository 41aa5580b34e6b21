"""When the cyclic garbage collector may stop the world.

A full (generation 2) collection walks every live object holding the GIL: measured during
100,000 checks, 17 of them paused every thread for 100-300 ms each and freed nothing, and
they made the status API's p99. Young generations stay automatic, so short-lived cycles
(exceptions with their tracebacks) are still freed at once; full collections run when no
check is running, or at the latest every `max_interval_s`.
"""

from __future__ import annotations

import asyncio
import gc
import threading
import time
from collections.abc import Callable

# gc.set_threshold's third value counts generation-1 collections between full ones.
_NEVER_BY_ITSELF = 1_000_000_000


class _Deferral:
    """Counts the apps of this process that asked to defer (tests run several at once), so
    the thresholds come back only when the last of them stops."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.holders = 0
        self.saved: tuple[int, int, int] | None = None


_deferral = _Deferral()


def defer_full_collections() -> None:
    """Stop automatic full collections until the matching restore()."""
    with _deferral.lock:
        _deferral.holders += 1
        if _deferral.holders > 1:
            return
        _deferral.saved = gc.get_threshold()
        gc.freeze()  # what start-up built lives as long as the process: never walk it again
        gc.set_threshold(_deferral.saved[0], _deferral.saved[1], _NEVER_BY_ITSELF)


def restore() -> None:
    with _deferral.lock:
        _deferral.holders -= 1
        if _deferral.holders > 0 or _deferral.saved is None:
            return
        gc.set_threshold(*_deferral.saved)
        gc.unfreeze()
        _deferral.saved = None


async def collect_when_idle(
    is_idle: Callable[[], bool],
    max_interval_s: float = 300.0,
    min_interval_s: float = 10.0,
    period_s: float = 1.0,
    collect: Callable[[int], int] = gc.collect,
) -> None:
    """Runs until cancelled: a full collection when idle (at most every `min_interval_s`),
    or when `max_interval_s` passed without one, so memory stays bounded under endless load."""
    last = time.monotonic()
    while True:
        await asyncio.sleep(period_s)
        since = time.monotonic() - last
        if (since >= min_interval_s and is_idle()) or since >= max_interval_s:
            collect(2)
            last = time.monotonic()
