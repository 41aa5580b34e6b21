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
    # The loop's lag is its wait for the GIL, and a request's tail is several times the
    # median wait. Bench S5 (20 clients submitting, 50 streams, 4 page readers), 2 reps each:
    # status p99 121-173 ms with 10/4 ms, 92-119 ms with 6/2 ms, 72-90 ms with 4/1.5 ms, for
    # 10-20% fewer checks done in the time; S3's wall time moved within its noise.
    lag_high_s: float = 0.004  # behind by more: back off
    lag_low_s: float = 0.0015  # behind by less: room to grow
    decrease: float = 0.85
    increase: float = 0.10  # of the current limit, at least 2


class ConcurrencyLimiter:
    """Pure decision logic; the caller measures lag and applies the limit."""

    def __init__(self, config: LimiterConfig) -> None:
        self.config = config
        self.floor = min(config.floor, config.ceiling)
        self.limit = config.ceiling

    def observe(self, lag_s: float, running: int, waiting: int) -> int:
        """The new limit after a lag sample, given the checks running and waiting now."""
        config = self.config
        if lag_s > config.lag_high_s:
            self.limit = max(self.floor, int(self.limit * config.decrease))
        elif lag_s < config.lag_low_s and waiting > 0 and running >= self.limit * 0.9:
            step = max(2, int(self.limit * config.increase))
            self.limit = min(config.ceiling, self.limit + step)
        return self.limit
