"""Rate limits per key and per client address, with the `limits` library's moving window.

Counts live in this process's memory: replicas behind a load balancer each allow the full
rate (the settings' documentation says so).
"""

from __future__ import annotations

import math
import time

from limits import RateLimitItem, parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter


class RateLimits:
    def __init__(self, per_key: str, per_address: str) -> None:
        self._limiter = MovingWindowRateLimiter(MemoryStorage())
        self._per_key = parse(per_key)
        self._per_address = parse(per_address)

    def key(self, key_id: int) -> int | None:
        """None if a call with this key may go on; else the seconds to wait (Retry-After)."""
        return self._hit(self._per_key, "key", str(key_id))

    def address(self, address: str) -> int | None:
        """The same for a call without a valid key, counted by its client address."""
        return self._hit(self._per_address, "address", address)

    def _hit(self, item: RateLimitItem, kind: str, who: str) -> int | None:
        if self._limiter.hit(item, kind, who):
            return None
        reset = self._limiter.get_window_stats(item, kind, who).reset_time
        return max(1, math.ceil(reset - time.time()))
