"""How many checks may run at once, adapted to how promptly the service itself still answers.

Under the GIL, threads that have work queue for the interpreter: past the number needed to keep
the CPU busy, more running checks add no throughput, only waiting (measured on 2 cores:
10,000 checks of 50 ms took 3.55 s with 160 running and 3.72 s with 500, and the status API's
p99 during 100,000 checks fell from 1.2 s to 0.37 s). So the limit follows the event loop's lag,
additive increase while the loop keeps up and work waits, multiplicative decrease when it
falls behind: the classic AIMD rule, bounded by [floor, workers].
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class LimiterConfig:
    ceiling: int  # the pool's workers
    floor: int = 16
    # While only streams are open, lag delays no answer: checks may run until the loop is
    # 10 ms late (S3's throughput was measured so).
    lag_high_s: float = 0.010  # behind by more: back off
    lag_low_s: float = 0.004  # behind by less: room to grow
    # While requests arrive, each waits for the GIL behind the checks, and its tail is several
    # times the median wait. Bench S5 (20 clients submitting, 50 streams, 4 page readers),
    # 2 reps each: status p99 121-173 ms at 10/4 ms, 92-119 at 6/2, 72-90 at 4/1.5, for
    # 10-20% fewer checks done in the time.
    busy_lag_high_s: float = 0.004
    busy_lag_low_s: float = 0.0015
    decrease: float = 0.85
    increase: float = 0.10  # of the current limit, at least 2


class ConcurrencyLimiter:
    """Pure decision logic; the caller measures lag and applies the limit."""

    def __init__(self, config: LimiterConfig) -> None:
        self.config = config
        self.floor = min(config.floor, config.ceiling)
        self.limit = config.ceiling

    def observe(self, lag_s: float, running: int, waiting: int, busy: bool = False) -> int:
        """The new limit after a lag sample, given the checks running and waiting now, and
        whether the API is busy (requests arriving, not only streams open)."""
        config = self.config
        high, low = (
            (config.busy_lag_high_s, config.busy_lag_low_s)
            if busy
            else (
                config.lag_high_s,
                config.lag_low_s,
            )
        )
        if lag_s > high:
            self.limit = max(self.floor, int(self.limit * config.decrease))
        elif lag_s < low and waiting > 0 and running >= self.limit * 0.9:
            step = max(2, int(self.limit * config.increase))
            self.limit = min(config.ceiling, self.limit + step)
        return self.limit
