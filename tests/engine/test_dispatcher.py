"""The dispatcher over a real store, checker and loopback target: parallelism, completion
order, admission limits, cancellation and the shutdown steps."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from app.engine.dispatcher import Overloaded, ShuttingDown
from app.engine.options import CheckOptions
from app.schemas.jobs import JobStatus
from app.schemas.results import ErrorKind
from tests.support.engine import Engine, wait_until
from tests.support.servers import RawServer, ThreadedUvicorn

OPTIONS = CheckOptions(timeout_s=30)


# --- parallelism and order ------------------------------------------------------------------


def test_checks_run_in_parallel_across_workers(
    engine_factory: Callable[..., Engine], target: ThreadedUvicorn
) -> None:
    engine = engine_factory(workers=16)
    urls = [f"{target.url}/delay/200?n={n}" for n in range(32)]
    started = time.monotonic()
    job = engine.submit(urls)
    header = engine.wait_final(job.id)
    elapsed = time.monotonic() - started
    assert header.status is JobStatus.DONE
    assert header.summary.up == 32
    # Ideal is 32/16 x 200 ms = 0.4 s; one at a time would be 6.4 s.
    assert elapsed < 3.2


def test_results_are_recorded_in_completion_order(
    engine_factory: Callable[..., Engine], target: ThreadedUvicorn
) -> None:
    engine = engine_factory(workers=4)
    slow = f"{target.url}/delay/1500"
    fast = [f"{target.url}/delay/0?n={n}" for n in range(3)]
    job = engine.submit([slow, *fast])
    engine.wait_final(job.id)
    recorded = [result.url for result in engine.results(job.id)]
    assert sorted(recorded[:3]) == sorted(fast)
    assert recorded[3] == slow


def test_every_check_of_a_job_gets_exactly_one_result(
    engine_factory: Callable[..., Engine], target: ThreadedUvicorn
) -> None:
    engine = engine_factory(workers=4)
    urls = [f"{target.url}/status/200?n={n}" for n in range(20)] + [
        f"{target.url}/status/500?n={n}" for n in range(5)
    ]
    job = engine.submit(urls)
    header = engine.wait_final(job.id)
    assert header.completed == 25
    assert sorted(result.url for result in engine.results(job.id)) == sorted(urls)
    assert (header.summary.up, header.summary.down) == (20, 5)
    assert header.summary.errors == {"unexpected_status": 5}
    assert header.started_at is not None
    assert header.finished_at is not None


# --- admission ------------------------------------------------------------------------------


def test_job_over_max_queued_is_refused_whole_and_nothing_is_recorded(
    engine_factory: Callable[..., Engine], target: ThreadedUvicorn
) -> None:
    engine = engine_factory(workers=2, max_queued=5)
    with pytest.raises(Overloaded) as refused:
        engine.submit([f"{target.url}/status/200?n={n}" for n in range(6)])
    assert refused.value.retry_after_s >= 1
    assert engine.store.list_jobs(0, 10) == ([], 0)
    assert engine.dispatcher.counters() == (0, 0, 0)


def test_job_exactly_at_max_queued_is_accepted(
    engine_factory: Callable[..., Engine], target: ThreadedUvicorn
) -> None:
    engine = engine_factory(workers=2, max_queued=5)
    job = engine.submit([f"{target.url}/status/200?n={n}" for n in range(5)])
    assert engine.wait_final(job.id).status is JobStatus.DONE


def test_a_job_the_store_fails_to_keep_gives_its_capacity_back(
    engine_factory: Callable[..., Engine], target: ThreadedUvicorn, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No store fails on demand yet (the durable one will, on a full disk): stand one in.
    engine = engine_factory(workers=2, max_queued=5)

    def fail(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(engine.store, "create_job", fail)
    for _ in range(3):
        with pytest.raises(OSError, match="disk full"):
            engine.submit([f"{target.url}/status/200?n={n}" for n in range(5)])
    assert engine.dispatcher.counters() == (0, 0, 0)
    assert engine.dispatcher.idle()
    monkeypatch.undo()
    job = engine.submit([f"{target.url}/status/200?n={n}" for n in range(5)])
    assert engine.wait_final(job.id).status is JobStatus.DONE


def test_capacity_is_held_while_a_job_runs_and_released_when_it_finishes(
    engine_factory: Callable[..., Engine], target: ThreadedUvicorn
) -> None:
    engine = engine_factory(workers=2, max_queued=5)
    first = engine.submit([f"{target.url}/delay/300?n={n}" for n in range(5)])
    with pytest.raises(Overloaded):
        engine.submit([f"{target.url}/status/200?late=1"])
    engine.wait_final(first.id)
    assert engine.dispatcher.wait_drained(5)
    second = engine.submit([f"{target.url}/status/200?m={n}" for n in range(5)])
    assert engine.wait_final(second.id).status is JobStatus.DONE


def test_check_now_results_come_back_in_request_order_and_release_capacity(
    engine_factory: Callable[..., Engine], target: ThreadedUvicorn
) -> None:
    engine = engine_factory(workers=4, max_queued=3)
    urls = [f"{target.url}/delay/300", f"{target.url}/status/404", f"{target.url}/delay/0"]
    futures = engine.dispatcher.check_now(urls, OPTIONS)
    results = [future.result(timeout=15) for future in futures]
    assert [result.url for result in results] == urls
    assert [result.ok for result in results] == [True, False, True]
    assert engine.dispatcher.wait_drained(5)
    assert engine.dispatcher.counters() == (0, 0, 3)
    again = engine.dispatcher.check_now(urls, OPTIONS)  # all three slots are free again
    assert len([future.result(timeout=15) for future in again]) == 3


def test_counters_show_running_and_queued_while_a_job_runs(
    engine_factory: Callable[..., Engine], target: ThreadedUvicorn
) -> None:
    engine = engine_factory(workers=2)
    job = engine.submit([f"{target.url}/delay/1000?n={n}" for n in range(4)])
    seen: list[tuple[int, int, int]] = []

    def two_running() -> bool:
        seen.append(engine.dispatcher.counters())
        return seen[-1][0] == 2

    assert wait_until(two_running), f"counters never showed 2 running: {seen[-5:]}"
    assert seen[-1] == (2, 2, 0)
    engine.wait_final(job.id)
    assert engine.dispatcher.wait_drained(5)
    assert engine.dispatcher.counters() == (0, 0, 4)


# --- cancel ---------------------------------------------------------------------------------


def test_cancel_ends_queued_checks_and_lets_the_running_one_finish(
    engine_factory: Callable[..., Engine], target: ThreadedUvicorn
) -> None:
    engine = engine_factory(workers=1)
    slow = f"{target.url}/delay/1500"
    queued = [f"{target.url}/status/200?n={n}" for n in range(4)]
    job = engine.submit([slow, *queued])
    assert wait_until(lambda: engine.dispatcher.counters()[0] == 1)

    header = engine.dispatcher.cancel(job.id)
    # cancel returns without waiting for the running check; the queued ones are already done.
    assert header.status is JobStatus.RUNNING
    assert header.completed == 4

    final = engine.wait_final(job.id)
    assert final.status is JobStatus.CANCELLED
    results = engine.by_url(job.id)
    assert results[slow].ok is True
    assert results[slow].status_code == 200
    for url in queued:
        error = results[url].error
        assert error is not None
        assert error.kind is ErrorKind.CANCELLED
    assert final.summary.errors == {"cancelled": 4}
    assert engine.dispatcher.wait_drained(5)
    assert engine.dispatcher.counters() == (0, 0, 1)


def test_cancel_of_a_finished_job_leaves_it_done(
    engine_factory: Callable[..., Engine], target: ThreadedUvicorn
) -> None:
    engine = engine_factory()
    job = engine.submit([f"{target.url}/status/200"])
    engine.wait_final(job.id)
    assert engine.dispatcher.cancel(job.id).status is JobStatus.DONE


# --- shutdown steps -------------------------------------------------------------------------


def test_after_stop_accepting_new_work_is_refused(
    engine_factory: Callable[..., Engine], target: ThreadedUvicorn
) -> None:
    engine = engine_factory()
    engine.dispatcher.stop_accepting()
    with pytest.raises(ShuttingDown):
        engine.submit([f"{target.url}/status/200"])
    with pytest.raises(ShuttingDown):
        engine.dispatcher.check_now([f"{target.url}/status/200"], OPTIONS)
    assert engine.store.list_jobs(0, 10) == ([], 0)
    assert engine.dispatcher.wait_drained(0)


def test_wait_drained_is_true_at_once_when_idle(engine_factory: Callable[..., Engine]) -> None:
    assert engine_factory().dispatcher.wait_drained(0) is True


def test_shutdown_steps_cancel_queued_interrupt_running_and_end_the_job_interrupted(
    engine_factory: Callable[..., Engine],
    target: ThreadedUvicorn,
    hang_after_request: tuple[RawServer, threading.Event],
) -> None:
    server, got_request = hang_after_request
    engine = engine_factory(workers=1)
    stuck = f"{server.url}/"
    queued = [f"{target.url}/status/200?n={n}" for n in range(3)]
    job = engine.submit([stuck, *queued])
    assert got_request.wait(10)
    dispatcher = engine.dispatcher

    dispatcher.stop_accepting()
    dispatcher.cancel_all_queued()
    assert engine.store.header(job.id).completed == 3
    assert dispatcher.wait_drained(0.3) is False  # the stuck check is still running

    dispatcher.interrupt_running()
    header = engine.store.header(job.id)
    assert header.status is JobStatus.INTERRUPTED
    assert header.summary.errors == {"cancelled": 3, "interrupted": 1}
    results = engine.by_url(job.id)
    stuck_error = results[stuck].error
    assert stuck_error is not None
    assert stuck_error.kind is ErrorKind.INTERRUPTED
    for url in queued:
        error = results[url].error
        assert error is not None
        assert error.kind is ErrorKind.CANCELLED

    # Aborting the connection frees the worker; its late result does not replace the final one.
    engine.http.abort_in_flight()
    assert dispatcher.wait_drained(10) is True
    after = engine.by_url(job.id)[stuck]
    assert after.error is not None
    assert after.error.kind is ErrorKind.INTERRUPTED
    assert engine.store.header(job.id).completed == 4


def test_shutdown_with_only_queued_work_drains_without_interrupting(
    engine_factory: Callable[..., Engine], target: ThreadedUvicorn
) -> None:
    engine = engine_factory(workers=1)
    running = f"{target.url}/delay/500"
    queued = [f"{target.url}/status/200?n={n}" for n in range(3)]
    job = engine.submit([running, *queued])
    assert wait_until(lambda: engine.dispatcher.counters()[0] == 1)
    engine.dispatcher.stop_accepting()
    engine.dispatcher.cancel_all_queued()
    assert engine.dispatcher.wait_drained(10) is True
    header = engine.store.header(job.id)
    # The job was in progress at shutdown, so it ends interrupted even though its one running
    # check finished in the grace period with a real result.
    assert header.status is JobStatus.INTERRUPTED
    assert engine.by_url(job.id)[running].ok is True


def test_job_refused_because_the_pool_is_closed_leaves_no_job_behind(
    engine_factory: Callable[..., Engine], target: ThreadedUvicorn
) -> None:
    # The pool closes under a request admitted just before (the shutdown race that
    # _submit_all guards against): the refused job must not linger, queued forever.
    engine = engine_factory()
    engine.dispatcher.close()
    with pytest.raises(ShuttingDown):
        engine.submit([f"{target.url}/status/200"])
    assert engine.store.active_job_ids() == []
    assert engine.dispatcher.wait_drained(0)


def test_a_lower_limit_holds_checks_back_and_raising_it_starts_them(
    engine_factory: Callable[..., Engine], hang_after_request: tuple[RawServer, threading.Event]
) -> None:
    server, _ = hang_after_request
    engine = engine_factory(workers=4)
    engine.dispatcher.set_limit(1)
    job = engine.submit([f"{server.url}/{n}" for n in range(3)], CheckOptions(timeout_s=2))
    assert wait_until(lambda: engine.dispatcher.load() == (1, 2))
    engine.dispatcher.set_limit(4)
    assert wait_until(lambda: engine.dispatcher.load() == (3, 0))
    assert engine.wait_final(job.id).completed == 3


# --- a check is released exactly once, whatever ends it ----------------------------------------


def _unfinished(engine: Engine) -> int:
    """Checks of every job still without a final state in the store."""
    store = engine.store
    return sum(len(store.unfinished(job_id)) for job_id in store.active_job_ids())


def _assert_accounted(engine: Engine) -> None:
    """In progress == without a final state, and nothing counted below zero."""
    running, queued, _ = engine.dispatcher.counters()
    assert running >= 0
    assert queued >= 0
    assert running + queued == _unfinished(engine), (running, queued, _unfinished(engine))


def test_repeated_cancel_releases_each_check_once_and_the_limit_still_holds(
    engine_factory: Callable[..., Engine],
    target: ThreadedUvicorn,
    hang_after_request: tuple[RawServer, threading.Event],
) -> None:
    server, got_request = hang_after_request
    engine = engine_factory(workers=1, max_queued=5)
    stuck = f"{server.url}/stuck"
    queued = [f"{target.url}/status/200?n={n}" for n in range(4)]
    job = engine.submit([stuck, *queued], CheckOptions(timeout_s=30))
    assert got_request.wait(10)

    for _ in range(3):
        engine.dispatcher.cancel(job.id)
        _assert_accounted(engine)
    assert engine.dispatcher.counters()[:2] == (1, 0)
    assert engine.store.header(job.id).summary.errors == {"cancelled": 4}
    # Four slots are free, not more: the running check still holds its own.
    with pytest.raises(Overloaded):
        engine.submit([f"{target.url}/status/200?late={n}" for n in range(5)])
    assert engine.store.list_jobs(0, 10)[1] == 1

    engine.http.abort_in_flight()
    assert engine.wait_final(job.id).status is JobStatus.CANCELLED
    assert engine.dispatcher.wait_drained(10)
    assert engine.dispatcher.counters()[:2] == (0, 0)


def test_cancels_racing_completion_release_every_check_once(
    engine_factory: Callable[..., Engine], target: ThreadedUvicorn
) -> None:
    engine = engine_factory(workers=4, max_queued=300)
    urls = [f"{target.url}/delay/5?n={n}" for n in range(300)]
    job = engine.submit(urls)
    assert wait_until(lambda: engine.recorded(job.id) >= 10)
    samples: list[tuple[int, int, int]] = []
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            samples.append(engine.dispatcher.counters())
            done.wait(0.001)

    def cancel_repeatedly() -> None:
        for _ in range(20):
            engine.dispatcher.cancel(job.id)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    cancellers = [threading.Thread(target=cancel_repeatedly, daemon=True) for _ in range(4)]
    for thread in cancellers:
        thread.start()
    for thread in cancellers:
        thread.join(30)
    final = engine.wait_final(job.id)
    drained = engine.dispatcher.wait_drained(10)
    done.set()
    sampler.join(10)

    assert final.status is JobStatus.CANCELLED
    assert final.completed == 300
    assert drained, engine.dispatcher.counters()
    ran = 300 - final.summary.errors.get("cancelled", 0)
    assert engine.dispatcher.counters() == (0, 0, ran)
    assert min(queued for _, queued, _ in samples) >= 0
    assert min(running for running, _, _ in samples) >= 0


def test_cancel_during_shutdown_releases_each_check_once(
    engine_factory: Callable[..., Engine],
    target: ThreadedUvicorn,
    hang_after_request: tuple[RawServer, threading.Event],
) -> None:
    server, got_request = hang_after_request
    engine = engine_factory(workers=1)
    dispatcher = engine.dispatcher
    stuck = f"{server.url}/stuck"
    queued = [f"{target.url}/status/200?n={n}" for n in range(20)]
    job = engine.submit([stuck, *queued], CheckOptions(timeout_s=30))
    assert got_request.wait(10)

    dispatcher.stop_accepting()
    racers = [
        threading.Thread(target=dispatcher.cancel_all_queued, daemon=True),
        *(
            threading.Thread(target=dispatcher.cancel, args=(job.id,), daemon=True)
            for _ in range(3)
        ),
    ]
    for thread in racers:
        thread.start()
    for thread in racers:
        thread.join(10)
    dispatcher.cancel(job.id)
    _assert_accounted(engine)
    assert dispatcher.counters()[:2] == (1, 0)
    assert not dispatcher.wait_drained(0.2)  # the stuck check still runs

    dispatcher.interrupt_running()
    engine.http.abort_in_flight()
    # Drained the moment the stuck check ends, not never (a release counted twice).
    assert dispatcher.wait_drained(10)
    assert dispatcher.counters()[:2] == (0, 0)
    header = engine.store.header(job.id)
    assert header.status is JobStatus.INTERRUPTED
    assert header.summary.errors == {"cancelled": 20, "interrupted": 1}
