"""Monitor checks on the shared pool: reserved workers and per-host slots a batch job cannot
take, no admission limit (never Overloaded), and the same shutdown steps as every other check.

The batch jobs here hang on a loopback server that reads each request and never answers; the
monitor checks go to the loopback target, which the gate counts as the same host (127.0.0.1).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from app.engine.dispatcher import Overloaded, ShuttingDown
from app.engine.options import CheckOptions
from app.schemas.results import ErrorKind
from tests.support.engine import Engine, wait_until
from tests.support.servers import RawServer, ThreadedUvicorn

MONITOR = CheckOptions(timeout_s=10)
HANGING_JOB = CheckOptions(timeout_s=60)  # longer than any test: its checks end at teardown


def _hanging_job(engine: Engine, server: RawServer, count: int) -> str:
    job = engine.submit([f"{server.url}/{n}" for n in range(count)], HANGING_JOB)
    return job.id


@pytest.mark.parametrize(
    ("workers", "max_per_host"),
    [
        (2, 8),  # the job holds every ordinary worker: the monitor needs a reserved one
        (4, 2),  # the job holds every ordinary slot of the host: it needs a reserved slot
    ],
)
def test_a_monitor_check_runs_while_a_job_hangs_on_every_ordinary_slot_of_its_host(
    engine_factory: Callable[..., Engine],
    target: ThreadedUvicorn,
    hang_after_request: tuple[RawServer, threading.Event],
    workers: int,
    max_per_host: int,
) -> None:
    server, _ = hang_after_request
    engine = engine_factory(
        workers=workers, max_per_host=max_per_host, monitor_workers=1, monitor_slots_per_host=1
    )
    dispatcher = engine.dispatcher
    job_id = _hanging_job(engine, server, 200)
    held = min(workers, max_per_host)
    assert wait_until(lambda: dispatcher.load() == (held, 200 - held))

    for n in range(3):  # one after another, each through the reserve
        result = dispatcher.check_monitor(f"{target.url}/status/200?n={n}", MONITOR).result(15)
        assert result.ok is True
    # Every check of the job is still hanging: none ended, none more started.
    assert engine.recorded(job_id) == 0
    assert dispatcher.load() == (held, 200 - held)


def test_without_a_reserve_a_monitor_check_waits_for_the_job_but_goes_first(
    engine_factory: Callable[..., Engine],
    target: ThreadedUvicorn,
    hang_after_request: tuple[RawServer, threading.Event],
) -> None:
    # The reserve is what lets it start; its place in the queue is ahead of the job's checks.
    server, got_request = hang_after_request
    engine = engine_factory(workers=1, max_per_host=8)
    dispatcher = engine.dispatcher
    # Its timeout frees the one worker; everything below is queued well before that.
    stuck = dispatcher.check_now([f"{server.url}/stuck"], CheckOptions(timeout_s=5))[0]
    assert got_request.wait(10)
    job_id = engine.submit([f"{target.url}/status/200?job={n}" for n in range(5)]).id
    monitor = dispatcher.check_monitor(f"{target.url}/status/200?monitor", MONITOR)
    assert wait_until(lambda: dispatcher.load() == (1, 6))
    assert not stuck.done()

    assert stuck.result(15).ok is False  # timed out; its worker takes the monitor first
    assert monitor.result(15).ok is True
    engine.wait_final(job_id)
    first_job_check = min(result.checked_at for result in engine.results(job_id))
    assert monitor.result().checked_at <= first_job_check


def test_the_limiter_lowering_the_ordinary_bound_never_throttles_the_reserve(
    engine_factory: Callable[..., Engine], hang_after_request: tuple[RawServer, threading.Event]
) -> None:
    server, _ = hang_after_request
    engine = engine_factory(workers=3, monitor_workers=1, monitor_slots_per_host=1)
    dispatcher = engine.dispatcher
    dispatcher.set_limit(1)
    _hanging_job(engine, server, 5)
    assert wait_until(lambda: dispatcher.load() == (1, 4))
    monitors = [dispatcher.check_monitor(f"{server.url}/m{n}", MONITOR) for n in range(4)]
    # workers + monitor_workers = 4 run: the job's one and three monitor checks; the fourth
    # monitor check waits for a worker, not for the limiter.
    assert wait_until(lambda: dispatcher.load() == (4, 5))
    assert [future.running() for future in monitors] == [True, True, True, False]


def test_check_monitor_is_accepted_when_max_queued_is_full_and_counts_as_checked(
    engine_factory: Callable[..., Engine],
    target: ThreadedUvicorn,
    hang_after_request: tuple[RawServer, threading.Event],
) -> None:
    server, _ = hang_after_request
    engine = engine_factory(workers=2, max_queued=3, monitor_workers=1)
    dispatcher = engine.dispatcher
    _hanging_job(engine, server, 3)
    with pytest.raises(Overloaded):
        dispatcher.check_now([f"{target.url}/status/200"], MONITOR)
    checked_before = dispatcher.counters()[2]

    results = [
        dispatcher.check_monitor(f"{target.url}/status/200?n={n}", MONITOR).result(15)
        for n in range(5)
    ]
    assert all(result.ok for result in results)
    assert wait_until(lambda: dispatcher.counters()[2] == checked_before + 5)
    # Once done they count no more: the job's 3 are all that stay in progress.
    running, queued, _ = dispatcher.counters()
    assert running + queued == 3


def test_check_monitor_takes_the_parsed_url_it_is_given(
    engine_factory: Callable[..., Engine], target: ThreadedUvicorn
) -> None:
    import httpx

    engine = engine_factory(monitor_workers=1)
    url = f"{target.url}/status/503"
    result = engine.dispatcher.check_monitor(url, MONITOR, httpx.URL(url)).result(15)
    assert (result.ok, result.status_code) == (False, 503)


def test_check_monitor_is_refused_once_the_service_stops_accepting(
    engine_factory: Callable[..., Engine], target: ThreadedUvicorn
) -> None:
    engine = engine_factory(monitor_workers=1)
    engine.dispatcher.stop_accepting()
    with pytest.raises(ShuttingDown):
        engine.dispatcher.check_monitor(f"{target.url}/status/200", MONITOR)
    assert engine.dispatcher.wait_drained(0)


def test_shutdown_cancels_waiting_monitor_checks_and_interrupts_running_ones(
    engine_factory: Callable[..., Engine], hang_after_request: tuple[RawServer, threading.Event]
) -> None:
    server, _ = hang_after_request
    engine = engine_factory(workers=1, monitor_workers=1)
    dispatcher = engine.dispatcher
    futures = [dispatcher.check_monitor(f"{server.url}/m{n}", MONITOR) for n in range(3)]
    assert wait_until(lambda: dispatcher.load() == (2, 1))
    running, waiting = futures[:2], futures[2]

    dispatcher.stop_accepting()
    dispatcher.cancel_all_queued()
    assert waiting.cancelled()
    assert dispatcher.wait_drained(0.3) is False  # two are still running

    dispatcher.interrupt_running()
    engine.http.abort_in_flight()
    assert dispatcher.wait_drained(10) is True
    for future in running:
        error = future.result(0).error
        assert error is not None
        assert error.kind is ErrorKind.INTERRUPTED
    assert dispatcher.counters()[:2] == (0, 0)


def test_monitor_checks_in_flight_take_no_admission_capacity_from_jobs(
    engine_factory: Callable[..., Engine],
    target: ThreadedUvicorn,
    hang_after_request: tuple[RawServer, threading.Event],
) -> None:
    server, got_request = hang_after_request
    engine = engine_factory(workers=4, max_queued=3, monitor_workers=1)
    monitor = engine.dispatcher.check_monitor(f"{server.url}/monitor", MONITOR)
    assert got_request.wait(10)
    job = engine.submit([f"{target.url}/status/200?n={n}" for n in range(3)])  # exactly the limit
    assert engine.wait_final(job.id).completed == 3
    assert not monitor.done()
