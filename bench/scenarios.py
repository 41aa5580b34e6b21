"""The scenarios, the URLs they check, and what the target was told to answer for each."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from target import HOSTS

# The service's default expected_status is 200-399: anything else is "down".
OK_RANGE = (200, 399)


@dataclass(frozen=True)
class Targets:
    """The issue's targets, for the full-size scenario (medians)."""

    min_checks_per_s: float | None = None
    max_wall_s: float | None = None
    max_reported_p99_ms: float | None = None
    max_peak_rss_mb: float | None = None
    max_status_p99_ms: float | None = None


@dataclass(frozen=True)
class Load:
    """A scenario of many clients at once for a fixed time, instead of one job (S5)."""

    submitters: int
    streams: int  # open at once: the submitters' own and watchers'
    page_readers: int
    duration_s: float
    idle_s: float = 2.0  # status sampled this long before the load: the same run's baseline
    warmup_s: float = 3.0  # load running, not yet sampled: streams opening, first jobs


@dataclass(frozen=True)
class Scenario:
    name: str
    urls: int
    delay_ms: int
    workers: int
    reps: int
    description: str
    targets: Targets
    status_every: int = 0  # every Nth URL is a /status/<code> URL (0: none)
    poll_status: bool = False  # poll GET /v1/status while the job runs
    baseline: bool = True
    load: Load | None = None  # S5: `urls` is then the size of each client's jobs

    @property
    def ideal_s(self) -> float:
        """The floor for N workers: ceil(M/N) waves of the delay (none for a load)."""
        if self.load is not None:
            return 0.0
        return math.ceil(self.urls / self.workers) * self.delay_ms / 1000.0

    def scaled(self, factor: int) -> Scenario:
        """A smaller copy for --quick (targets do not apply to it)."""
        return Scenario(
            name=self.name,
            urls=max(self.urls // factor, 1),
            delay_ms=self.delay_ms,
            workers=self.workers,
            reps=self.reps,
            description=self.description,
            targets=Targets(),
            status_every=self.status_every,
            poll_status=self.poll_status,
            baseline=self.baseline,
            load=None
            if self.load is None
            else Load(
                self.load.submitters,
                self.load.streams,
                self.load.page_readers,
                duration_s=max(5.0, self.load.duration_s / factor),
            ),
        )


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            "S1",
            2_000,
            0,
            64,
            3,
            "overhead per check: 0 ms delay, 5% 404/500",
            Targets(min_checks_per_s=2_200),
            status_every=20,
        ),
        Scenario(
            "S2",
            2_000,
            100,
            200,
            3,
            "scheduling: 100 ms delay",
            Targets(max_wall_s=1.25, max_reported_p99_ms=130),
        ),
        Scenario(
            "S3",
            10_000,
            50,
            500,
            3,
            "scale: 50 ms delay",
            Targets(max_wall_s=4.0, max_reported_p99_ms=100),
        ),
        Scenario(
            "S4",
            100_000,
            10,
            500,
            1,
            "memory and the store at scale: 10 ms delay",
            Targets(max_peak_rss_mb=500, max_status_p99_ms=50),
            poll_status=True,
            baseline=False,
        ),
        Scenario(
            "S5",
            1_000,
            20,
            64,
            3,
            "API under load: 20 clients submitting 1,000-URL jobs, 50 streams, "
            "4 readers of 1,000-result pages, for 20 s",
            Targets(max_status_p99_ms=100),
            poll_status=True,
            baseline=False,
            load=Load(submitters=20, streams=50, page_readers=4, duration_s=20.0),
        ),
    )
}

STATUS_CODES = (404, 500)
# nginx's timers run off its cached clock, so a sleep can end a little early in real time.
DELAY_SLACK_MS = 2.0


@dataclass(frozen=True)
class Expected:
    """What the target was told to answer for one URL."""

    status: int
    delay_ms: int | None  # None for /status URLs

    @property
    def ok(self) -> bool:
        return OK_RANGE[0] <= self.status <= OK_RANGE[1]


def build_urls(scenario: Scenario, port: int, run_tag: str) -> tuple[list[str], list[Expected]]:
    """Unique URLs, round-robin over the eight hosts, with what each should answer."""
    urls: list[str] = []
    expected: list[Expected] = []
    n_status = 0
    for i in range(scenario.urls):
        host = HOSTS[i % len(HOSTS)]
        if scenario.status_every and i % scenario.status_every == scenario.status_every - 1:
            code = STATUS_CODES[n_status % len(STATUS_CODES)]
            n_status += 1
            urls.append(f"http://{host}:{port}/status/{code}?r={run_tag}&i={i}")
            expected.append(Expected(code, None))
        else:
            urls.append(f"http://{host}:{port}/delay/{scenario.delay_ms}?r={run_tag}&i={i}")
            expected.append(Expected(200, scenario.delay_ms))
    return urls, expected


def check_result(result: dict[str, Any], want: Expected) -> str | None:
    """None when a service result matches what the target answered, else what is wrong."""
    problems = []
    if result.get("status_code") != want.status:
        problems.append(f"status_code {result.get('status_code')!r} != {want.status}")
    if result.get("ok") is not want.ok:
        problems.append(f"ok {result.get('ok')!r} != {want.ok}")
    error = result.get("error")
    if want.ok and error is not None:
        problems.append(f"error {error!r} on a healthy URL")
    if not want.ok and (not isinstance(error, dict) or error.get("kind") != "unexpected_status"):
        problems.append(f"error {error!r}, want kind unexpected_status")
    elapsed = result.get("elapsed_ms")
    if not isinstance(elapsed, int | float):
        problems.append(f"elapsed_ms {elapsed!r} is not a number")
    elif want.delay_ms is not None and elapsed < want.delay_ms - DELAY_SLACK_MS:
        problems.append(f"elapsed_ms {elapsed} below the true delay {want.delay_ms}")
    return "; ".join(problems) or None
