"""The monitor scheduler: due times on each monitor's grid (start to start, spread by slug),
no self-overlap, manual runs, rescheduling, removal, stall reports and a prompt stop.

`run` is either a real dispatcher on loopback, or `Runs` below, whose checks are real threads
that take a set time (or wait for the test to let them go) and return a real CheckResult.
Assertions are on the due times the scheduler computed and on the order of events, never on
how precisely the machine kept time.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from app.engine.checker import Checker
from app.engine.dispatcher import Dispatcher
from app.engine.options import CheckOptions
from app.monitors.scheduler import MonitorScheduler, Scheduled
from app.monitors.timing import offset_s
from app.schemas.results import CheckError, CheckResult, ErrorKind
from app.store.memory import MemoryStore
from tests.support.engine import make_http, wait_until
from tests.support.servers import RawServer, ThreadedUvicorn, hang_until

OPTIONS = CheckOptions(timeout_s=10)


def monitor(
    monitor_id: int, interval_s: float, url: str = "http://127.0.0.1:9/", slug: str = ""
) -> Scheduled:
    return Scheduled(
        id=monitor_id,
        slug=slug or f"monitor-{monitor_id}",
        interval_s=interval_s,
        generation=1,
        url=url,
        options=OPTIONS,
        parsed=httpx.URL(url),
    )


class Runs:
    """A `run` whose checks take `duration_s` on threads of their own; `hold` keeps them
    going until released. Counts how many of each monitor ran at once."""

    def __init__(self, duration_s: float = 0.0, kind: ErrorKind | None = None) -> None:
        self.duration_s = duration_s
        self.kind = kind
        self.released = threading.Event()
        self.released.set()
        self.block_calls = threading.Event()  # cleared: run() itself blocks (a stuck hand-off)
        self.block_calls.set()
        self._lock = threading.Lock()
        self.calls: list[tuple[int, float]] = []
        self._active: dict[int, int] = {}
        self.most_at_once: dict[int, int] = {}
        self._threads: list[threading.Thread] = []

    def __call__(self, scheduled: Scheduled) -> Future[CheckResult]:
        self.block_calls.wait(30)
        started = datetime.now(UTC)
        with self._lock:
            self.calls.append((scheduled.id, started.timestamp()))
            active = self._active.get(scheduled.id, 0) + 1
            self._active[scheduled.id] = active
            self.most_at_once[scheduled.id] = max(active, self.most_at_once.get(scheduled.id, 0))
        future: Future[CheckResult] = Future()
        thread = threading.Thread(target=self._finish, args=(scheduled, started, future))
        thread.daemon = True
        self._threads.append(thread)
        thread.start()
        return future

    def _finish(self, scheduled: Scheduled, started: datetime, future: Future[CheckResult]) -> None:
        threading.Event().wait(self.duration_s)
        self.released.wait(30)
        with self._lock:
            self._active[scheduled.id] -= 1
        future.set_running_or_notify_cancel()
        error = None if self.kind is None else CheckError(kind=self.kind, message="test")
        future.set_result(
            CheckResult(
                url=scheduled.url,
                ok=error is None,
                outcome="up" if error is None else "down",
                status_code=200,
                checked_at=started,
                error=error,
            )
        )

    def count(self, monitor_id: int | None = None) -> int:
        with self._lock:
            return sum(1 for mid, _ in self.calls if monitor_id in (None, mid))


class Sink:
    """What the scheduler hands back: records and due times, per monitor."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.records: list[tuple[Scheduled, datetime, CheckResult]] = []
        self.dues: dict[int, list[datetime]] = {}
        self.skips: list[int] = []

    def record(self, scheduled: Scheduled, started_at: datetime, result: CheckResult) -> None:
        with self._lock:
            self.records.append((scheduled, started_at, result))

    def save_due(self, monitor_id: int, due: datetime) -> None:
        with self._lock:
            self.dues.setdefault(monitor_id, []).append(due)

    def on_skip(self, monitor_id: int) -> None:
        with self._lock:
            self.skips.append(monitor_id)

    def recorded(self, monitor_id: int | None = None) -> int:
        with self._lock:
            return sum(1 for s, _, _ in self.records if monitor_id in (None, s.id))

    def due_times(self, monitor_id: int) -> list[float]:
        with self._lock:
            return [due.timestamp() for due in self.dues.get(monitor_id, [])]


@pytest.fixture
def sink() -> Sink:
    return Sink()


@pytest.fixture
def scheduler_factory(sink: Sink) -> Iterator[Callable[..., MonitorScheduler]]:
    built: list[MonitorScheduler] = []

    def build(run: Callable[[Scheduled], Future[CheckResult]]) -> MonitorScheduler:
        scheduler = MonitorScheduler(run, sink.record, sink.save_due, on_skip=sink.on_skip)
        built.append(scheduler)
        return scheduler

    yield build
    for scheduler in built:
        scheduler.stop(5)


def on_grid(due: float, interval_s: float, slug: str) -> bool:
    steps = (due - offset_s(slug, interval_s)) / interval_s
    return abs(steps - round(steps)) < 1e-4


def whole_intervals_apart(dues: list[float], interval_s: float) -> bool:
    """Consecutive due times a whole number (at least one) of intervals apart: no drift. More
    than one only where the scheduler fell behind by an interval and let a slot go."""
    steps = [(b - a) / interval_s for a, b in itertools.pairwise(dues)]
    return all(step > 0.5 and abs(step - round(step)) < 1e-4 for step in steps)


# --- the grid -------------------------------------------------------------------------------


def test_checks_start_on_a_fixed_grid_start_to_start_without_drift(
    scheduler_factory: Callable[..., MonitorScheduler], sink: Sink
) -> None:
    # Each check takes a third of the interval: measured end to start, the schedule would
    # slip by that much every time.
    runs = Runs(duration_s=0.1)
    scheduler = scheduler_factory(runs)
    scheduler.put(monitor(1, 0.3))
    scheduler.start()
    assert wait_until(lambda: sink.recorded(1) >= 6, timeout=20)
    scheduler.stop(5)

    dues = sink.due_times(1)
    assert len(dues) >= 6
    assert all(on_grid(due, 0.3, "monitor-1") for due in dues)
    # Measured end to start they would be 0.4 s apart, and off the grid.
    assert whole_intervals_apart(dues, 0.3)
    # The first check started no earlier than its due time (clocks may differ by a hair).
    assert runs.calls[0][1] >= dues[0] - 0.01
    stats = scheduler.stats()
    assert stats.started == runs.count()
    assert stats.lag_samples >= 6
    assert 0.0 <= stats.lag_p50_s <= stats.lag_p99_s <= stats.lag_max_s


def test_records_carry_the_scheduled_monitor_and_the_checks_start(
    scheduler_factory: Callable[..., MonitorScheduler], sink: Sink
) -> None:
    scheduler = scheduler_factory(Runs())
    scheduled = monitor(7, 0.2)
    scheduler.put(scheduled)
    scheduler.start()
    assert wait_until(lambda: sink.recorded(7) >= 2)
    for recorded, started_at, result in sink.records[:2]:
        assert recorded == scheduled
        assert started_at == result.checked_at


def test_100_monitors_of_one_interval_are_spread_over_distinct_offsets(
    scheduler_factory: Callable[..., MonitorScheduler], sink: Sink
) -> None:
    scheduler = scheduler_factory(Runs())
    before = time.time()
    for n in range(100):
        scheduler.put(monitor(n, 60.0))
    dues = [sink.due_times(n)[0] for n in range(100)]
    assert len(set(dues)) == 100
    assert all(before < due <= before + 61.0 for due in dues)
    # Every tenth of the minute gets some, instead of all firing at :00.
    assert {int((due % 60.0) // 6) for due in dues} == set(range(10))
    assert scheduler.stats().scheduled == 100


def test_a_stored_due_time_is_honoured_and_an_overdue_one_runs_once_soon(
    scheduler_factory: Callable[..., MonitorScheduler], sink: Sink
) -> None:
    runs = Runs()
    scheduler = scheduler_factory(runs)
    kept = datetime.now(UTC) + timedelta(seconds=30)
    scheduler.put(monitor(1, 60.0), due_at=kept)
    due = scheduler.due(1)
    assert due is not None
    assert abs((due - kept).total_seconds()) < 1e-5
    assert 1 not in sink.dues  # nothing new to save

    # Down for an hour: one check now, then back on the grid, not one per missed interval.
    before = time.time()
    scheduler.put(monitor(2, 0.4), due_at=datetime.now(UTC) - timedelta(hours=1))
    scheduler.start()
    assert wait_until(lambda: sink.recorded(2) >= 3)
    first, *later = sink.due_times(2)
    assert before <= first <= before + 5.0
    # Then the next slot of its grid after that check started.
    assert first < later[0] <= runs.calls[0][1] + 0.4 + 1e-5
    assert all(on_grid(due, 0.4, "monitor-2") for due in later)
    assert whole_intervals_apart(later, 0.4)


# --- overlap and manual runs ----------------------------------------------------------------


def test_a_monitor_never_overlaps_itself_and_a_run_still_going_is_skipped(
    scheduler_factory: Callable[..., MonitorScheduler], sink: Sink
) -> None:
    runs = Runs(duration_s=0.5)  # longer than the interval
    scheduler = scheduler_factory(runs)
    scheduler.put(monitor(1, 0.2))
    scheduler.start()
    assert wait_until(lambda: scheduler.stats().skipped >= 3 and sink.recorded(1) >= 2, 20)
    scheduler.stop(5)
    assert runs.most_at_once[1] == 1
    assert sink.skips.count(1) == scheduler.stats().skipped
    # Skipped due times still advance on the grid.
    assert whole_intervals_apart(sink.due_times(1), 0.2)


def test_a_manual_run_is_recorded_keeps_the_schedule_and_counts_against_overlap(
    scheduler_factory: Callable[..., MonitorScheduler], sink: Sink
) -> None:
    runs = Runs()
    runs.released.clear()  # every check runs until the test lets it finish
    scheduler = scheduler_factory(runs)
    scheduler.put(monitor(1, 0.2))
    planned = sink.due_times(1)[0]
    manual = scheduler.run_now(1)
    assert scheduler.run_now(1) is manual  # still going: the same check, not a second one
    assert scheduler.due(1) == datetime.fromtimestamp(planned, UTC)
    scheduler.start()
    assert wait_until(lambda: scheduler.stats().skipped >= 2)  # the manual run was going
    assert runs.count(1) == 1

    runs.released.set()
    assert manual.result(10).ok is True
    assert wait_until(lambda: sink.recorded(1) >= 3)
    assert runs.most_at_once[1] == 1
    assert sink.records[0][2] is manual.result()
    dues = sink.due_times(1)
    assert dues[0] == pytest.approx(planned, abs=1e-6)
    assert all(on_grid(due, 0.2, "monitor-1") for due in dues)


def test_run_now_of_an_unknown_monitor_raises_key_error(
    scheduler_factory: Callable[..., MonitorScheduler],
) -> None:
    with pytest.raises(KeyError):
        scheduler_factory(Runs()).run_now(404)


# --- changes ---------------------------------------------------------------------------------


def test_changing_the_interval_reschedules_from_now_and_keeping_it_keeps_the_due_time(
    scheduler_factory: Callable[..., MonitorScheduler], sink: Sink
) -> None:
    scheduler = scheduler_factory(Runs())
    scheduler.put(monitor(1, 3600.0))
    first = scheduler.due(1)
    scheduler.put(monitor(1, 3600.0, url="http://127.0.0.1:8/other"))  # same interval
    assert scheduler.due(1) == first
    assert len(sink.due_times(1)) == 1

    before = time.time()
    scheduler.put(monitor(1, 30.0))
    due = sink.due_times(1)[-1]
    assert len(sink.due_times(1)) == 2
    assert before < due <= time.time() + 30.0
    assert on_grid(due, 30.0, "monitor-1")
    assert scheduler.due(1) == datetime.fromtimestamp(due, UTC)


def test_a_changed_monitor_runs_with_its_new_definition(
    scheduler_factory: Callable[..., MonitorScheduler], sink: Sink
) -> None:
    scheduler = scheduler_factory(Runs())
    scheduler.put(monitor(1, 0.2, url="http://127.0.0.1:9/old"))
    scheduler.start()
    assert wait_until(lambda: sink.recorded(1) >= 1)
    scheduler.put(monitor(1, 0.2, url="http://127.0.0.1:9/new"))
    seen = sink.recorded(1)
    assert wait_until(lambda: sink.recorded(1) >= seen + 2)
    assert sink.records[-1][0].url == "http://127.0.0.1:9/new"


def test_a_removed_monitor_is_not_checked_again(
    scheduler_factory: Callable[..., MonitorScheduler], sink: Sink
) -> None:
    runs = Runs()
    scheduler = scheduler_factory(runs)
    scheduler.put(monitor(1, 0.2))
    scheduler.put(monitor(2, 0.2))
    scheduler.start()
    assert wait_until(lambda: sink.recorded(1) >= 2)
    scheduler.remove(1)
    calls = runs.count(1)
    # Three more checks of the other monitor: three of the removed one's due times passed.
    seen = sink.recorded(2)
    assert wait_until(lambda: sink.recorded(2) >= seen + 3)
    assert runs.count(1) == calls
    assert scheduler.due(1) is None
    assert scheduler.stats().scheduled == 1
    with pytest.raises(KeyError):
        scheduler.run_now(1)


# --- failures the scheduler must survive ---------------------------------------------------


def test_a_record_that_raises_is_counted_and_the_schedule_goes_on(
    scheduler_factory: Callable[..., MonitorScheduler],
) -> None:
    calls: list[int] = []

    def record(scheduled: Scheduled, started_at: datetime, result: CheckResult) -> None:
        calls.append(scheduled.id)
        raise RuntimeError("the database is gone")

    scheduler = MonitorScheduler(Runs(), record, lambda monitor_id, due: None)
    scheduler.put(monitor(1, 0.2))
    scheduler.start()
    try:
        assert wait_until(lambda: len(calls) >= 3)
        assert scheduler.stats().errors >= 3
    finally:
        assert scheduler.stop(5)


def test_checks_cut_short_by_the_shutdown_are_not_recorded(
    scheduler_factory: Callable[..., MonitorScheduler], sink: Sink
) -> None:
    # Interrupted says nothing about the target: it must not count as the monitor down.
    runs = Runs(kind=ErrorKind.INTERRUPTED)
    scheduler = scheduler_factory(runs)
    scheduler.put(monitor(1, 0.2))
    scheduler.start()
    assert wait_until(lambda: runs.count(1) >= 3 and scheduler.stats().running == 0)
    assert sink.recorded() == 0


def test_a_run_that_raises_fails_the_manual_check_and_the_schedule_goes_on(
    scheduler_factory: Callable[..., MonitorScheduler], sink: Sink
) -> None:
    attempts: list[int] = []

    def refusing(scheduled: Scheduled) -> Future[CheckResult]:
        attempts.append(scheduled.id)
        raise RuntimeError("refused")

    scheduler = scheduler_factory(refusing)
    scheduler.put(monitor(1, 0.2))
    with pytest.raises(RuntimeError):
        scheduler.run_now(1).result(5)
    scheduler.start()
    assert wait_until(lambda: len(attempts) >= 3)
    assert scheduler.stats().errors >= 3
    assert scheduler.stats().running == 0


# --- stalls and stopping ----------------------------------------------------------------------


def test_stalled_reports_a_hand_off_that_blocks_and_clears_once_it_moves(
    scheduler_factory: Callable[..., MonitorScheduler],
) -> None:
    runs = Runs()
    scheduler = scheduler_factory(runs)
    scheduler.put(monitor(1, 0.2))
    scheduler.start()
    assert wait_until(lambda: runs.count(1) >= 1)
    runs.block_calls.clear()  # the next hand-off blocks inside run()
    assert wait_until(lambda: scheduler.stalled(0.5) is not None)
    reason = scheduler.stalled(0.5)
    assert reason is not None
    assert "monitor" in reason
    assert scheduler.stalled(3600) is None
    runs.block_calls.set()
    assert wait_until(lambda: scheduler.stalled(0.5) is None)


def test_stalled_reports_a_scheduler_not_running(
    scheduler_factory: Callable[..., MonitorScheduler],
) -> None:
    scheduler = scheduler_factory(Runs())
    assert scheduler.stalled(30) is not None  # not started
    scheduler.start()
    assert scheduler.stalled(30) is None
    assert scheduler.stop(5)
    assert scheduler.stalled(30) is not None


def test_stalled_reports_a_scheduler_thread_that_died(sink: Sink) -> None:
    broken = threading.Event()

    def clock() -> float:  # fails in the scheduler's own thread only, once broken
        if broken.is_set() and threading.current_thread().name == "monitor-scheduler":
            raise RuntimeError("a bug")
        return time.time()

    scheduler = MonitorScheduler(Runs(), sink.record, sink.save_due, clock=clock)
    scheduler.put(monitor(1, 0.2))
    scheduler.start()
    try:
        assert scheduler.stalled(30) is None
        broken.set()
        assert wait_until(lambda: "died" in (scheduler.stalled(30) or ""))
    finally:
        scheduler.stop(5)


def test_stop_ends_a_thread_sleeping_until_a_distant_due_time(
    scheduler_factory: Callable[..., MonitorScheduler],
) -> None:
    scheduler = scheduler_factory(Runs())
    scheduler.put(monitor(1, 3600.0))
    scheduler.start()
    assert scheduler.stop(5) is True
    assert scheduler.stop(5) is True  # again: harmless


# --- on the real engine -----------------------------------------------------------------------


@pytest.fixture
def dispatcher() -> Iterator[Dispatcher]:
    http = make_http()
    engine = Dispatcher(
        MemoryStore(max_jobs=10, max_age_s=3600),
        Checker(http),
        workers=1,
        max_queued=1000,
        monitor_workers=2,
        monitor_slots_per_host=2,
    )
    yield engine
    engine.close()
    http.abort_in_flight()
    http.close()


def test_monitors_run_on_the_dispatchers_reserve_while_a_job_hangs_on_their_host(
    scheduler_factory: Callable[..., MonitorScheduler],
    sink: Sink,
    dispatcher: Dispatcher,
    target: ThreadedUvicorn,
) -> None:
    from app.api.validation import public_options

    stop = threading.Event()
    hanging = RawServer(hang_until(stop))
    try:
        job = CheckOptions(timeout_s=60)
        dispatcher.submit_job([f"{hanging.url}/{n}" for n in range(50)], job, public_options(job))
        assert wait_until(lambda: dispatcher.load() == (1, 49))

        def run(scheduled: Scheduled) -> Future[CheckResult]:
            return dispatcher.check_monitor(scheduled.url, scheduled.options, scheduled.parsed)

        scheduler = scheduler_factory(run)
        up, down = f"{target.url}/status/200", f"{target.url}/status/500"
        scheduler.put(monitor(1, 0.3, url=up))
        scheduler.put(monitor(2, 0.3, url=down))
        scheduler.start()
        assert wait_until(lambda: sink.recorded(1) >= 3 and sink.recorded(2) >= 3, 20)
        results = {s.id: result for s, _, result in sink.records}
        assert results[1].ok is True
        assert (results[2].ok, results[2].status_code) == (False, 500)
        assert dispatcher.load()[1] == 49  # the job's checks are still all waiting or hanging
        assert scheduler.stats().lag_samples >= 6
    finally:
        stop.set()
        hanging.stop()
