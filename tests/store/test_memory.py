"""The in-memory results store, as a unit: first-writer-wins recording, job status, summaries,
pagination, retention, subscribers, copies for readers, and thread safety."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import pytest

from app.schemas.jobs import CheckOptionsPublic, JobHeader, JobPublic, JobsPublic, JobStatus
from app.schemas.results import CheckError, CheckResult, ErrorKind
from app.store.base import JobNotFound
from app.store.memory import MemoryStore

OPTIONS = CheckOptionsPublic(
    method="GET",
    timeout_s=10.0,
    follow_redirects=True,
    max_redirects=10,
    expected_status="200-399",
    headers={},
    verify_tls=True,
    max_body_bytes=1_048_576,
)


def store(max_jobs: int = 100, max_age_s: float = 3600.0) -> MemoryStore:
    return MemoryStore(max_jobs=max_jobs, max_age_s=max_age_s)


def urls(count: int, prefix: str = "u") -> list[str]:
    return [f"http://{prefix}{n}.test/" for n in range(count)]


def up(url: str) -> CheckResult:
    return CheckResult(
        url=url, ok=True, outcome="up", status_code=200, checked_at=datetime.now(UTC)
    )


def down(url: str, kind: ErrorKind = ErrorKind.TIMEOUT) -> CheckResult:
    return CheckResult(
        url=url,
        ok=False,
        outcome="down",
        checked_at=datetime.now(UTC),
        error=CheckError(kind=kind, message=kind.value),
    )


def finish(s: MemoryStore, job_id: str) -> None:
    for index, url in enumerate(s.urls(job_id)):
        s.record(job_id, index, up(url))


def new_job(s: MemoryStore, job_urls: Sequence[str] | None = None) -> str:
    return s.create_job(job_urls if job_urls is not None else urls(2), OPTIONS).id


# --- creating and recording -----------------------------------------------------------------


def test_new_job_is_queued_with_nothing_completed() -> None:
    s = store()
    header = s.create_job(urls(3), OPTIONS, duplicates_removed=2)
    assert header.status is JobStatus.QUEUED
    assert (header.total, header.completed, header.duplicates_removed) == (3, 0, 2)
    assert (header.summary.up, header.summary.down, header.summary.errors) == (0, 0, {})
    assert header.started_at is None
    assert header.finished_at is None
    assert header.options == OPTIONS
    assert s.unfinished(header.id) == [0, 1, 2]


def test_job_ids_are_unique() -> None:
    s = store()
    assert len({new_job(s) for _ in range(50)}) == 50


def test_mark_started_makes_a_queued_job_running_once() -> None:
    s = store()
    job_id = new_job(s)
    s.mark_started(job_id)
    first = s.header(job_id)
    assert first.status is JobStatus.RUNNING
    assert first.started_at is not None
    s.mark_started(job_id)
    assert s.header(job_id).started_at == first.started_at


def test_record_is_first_writer_wins() -> None:
    s = store()
    job_id = new_job(s, urls(3))
    assert s.record(job_id, 1, up("http://u1.test/")) is True
    assert s.record(job_id, 1, down("http://u1.test/")) is False
    header = s.header(job_id)
    assert header.completed == 1
    assert (header.summary.up, header.summary.down) == (1, 0)
    [kept] = s.page(job_id, 0, 10).results
    assert kept.ok is True
    assert s.unfinished(job_id) == [0, 2]


def test_record_for_an_unknown_job_is_refused_quietly() -> None:
    assert store().record("no-such-job", 0, up("http://x.test/")) is False


def test_job_is_done_when_every_check_is_recorded() -> None:
    s = store()
    job_id = new_job(s, urls(3))
    s.record(job_id, 0, up("http://u0.test/"))
    s.record(job_id, 2, up("http://u2.test/"))
    assert not s.header(job_id).status.final
    s.record(job_id, 1, down("http://u1.test/"))
    header = s.header(job_id)
    assert header.status is JobStatus.DONE
    assert header.completed == 3
    assert header.started_at is not None  # set even if no check was ever marked started
    assert header.finished_at is not None
    assert header.finished_at >= header.started_at
    assert s.unfinished(job_id) == []


def test_job_with_cancel_requested_ends_cancelled() -> None:
    s = store()
    job_id = new_job(s)
    assert s.request_cancel(job_id).status is JobStatus.QUEUED  # still to finish
    finish(s, job_id)
    assert s.header(job_id).status is JobStatus.CANCELLED


def test_interrupted_job_ends_interrupted_even_if_also_cancelled() -> None:
    s = store()
    job_id = new_job(s)
    s.request_cancel(job_id)
    s.mark_interrupted(job_id)
    finish(s, job_id)
    assert s.header(job_id).status is JobStatus.INTERRUPTED


def test_cancel_or_interrupt_after_the_job_finished_changes_nothing() -> None:
    s = store()
    job_id = new_job(s)
    finish(s, job_id)
    assert s.request_cancel(job_id).status is JobStatus.DONE
    s.mark_interrupted(job_id)
    assert s.header(job_id).status is JobStatus.DONE


def test_summary_counts_outcomes_and_error_kinds() -> None:
    s = store()
    job_urls = urls(5)
    job_id = new_job(s, job_urls)
    s.record(job_id, 0, up(job_urls[0]))
    s.record(job_id, 1, down(job_urls[1], ErrorKind.TIMEOUT))
    s.record(job_id, 2, down(job_urls[2], ErrorKind.DNS))
    s.record(job_id, 3, down(job_urls[3], ErrorKind.TIMEOUT))
    s.record(job_id, 4, up(job_urls[4]))
    summary = s.header(job_id).summary
    assert (summary.up, summary.down) == (2, 3)
    assert summary.errors == {"timeout": 2, "dns": 1}


def test_active_jobs_and_counts_by_status() -> None:
    s = store()
    queued = new_job(s)
    running = new_job(s)
    s.mark_started(running)
    done = new_job(s)
    finish(s, done)
    assert sorted(s.active_job_ids()) == sorted([queued, running])
    counts = s.count_by_status()
    assert counts[JobStatus.QUEUED] == 1
    assert counts[JobStatus.RUNNING] == 1
    assert counts[JobStatus.DONE] == 1
    assert counts[JobStatus.CANCELLED] == 0


# --- reading --------------------------------------------------------------------------------


def test_results_are_kept_in_completion_order_and_paged_by_offset_and_limit() -> None:
    s = store()
    job_urls = urls(5)
    job_id = new_job(s, job_urls)
    order = [3, 1, 4, 0, 2]
    for index in order:
        s.record(job_id, index, up(job_urls[index]))
    everything = s.page(job_id, 0, 100)
    assert [r.url for r in everything.results] == [job_urls[i] for i in order]
    page = s.page(job_id, 1, 2)
    assert [r.url for r in page.results] == [job_urls[1], job_urls[4]]
    assert (page.offset, page.limit, page.total, page.completed) == (1, 2, 5, 5)
    assert s.page(job_id, 5, 10).results == []
    assert s.page(job_id, 4, 10).results[0].url == job_urls[2]


def _urls_of(encoded: list[bytes]) -> list[str]:
    return [CheckResult.model_validate_json(data).url for data in encoded]


def test_results_since_returns_the_rest_as_json_and_the_header_at_that_moment() -> None:
    s = store()
    job_urls = urls(4)
    job_id = new_job(s, job_urls)
    s.record(job_id, 2, up(job_urls[2]))
    s.record(job_id, 0, up(job_urls[0]))
    results, header = s.results_since(job_id, 1)
    assert _urls_of(results) == [job_urls[0]]
    assert header.completed == 2
    assert not header.status.final
    s.record(job_id, 1, up(job_urls[1]))
    s.record(job_id, 3, up(job_urls[3]))
    results, header = s.results_since(job_id, 2)
    assert _urls_of(results) == [job_urls[1], job_urls[3]]
    assert header.status is JobStatus.DONE


def test_list_jobs_is_newest_first_with_the_total_count() -> None:
    s = store()
    first, second, third = new_job(s), new_job(s), new_job(s)
    jobs, count = s.list_jobs(0, 10)
    assert [job.id for job in jobs] == [third, second, first]
    assert count == 3
    jobs, count = s.list_jobs(1, 1)
    assert [job.id for job in jobs] == [second]
    assert count == 3


@pytest.mark.parametrize(
    "read",
    [
        lambda s: s.header("missing"),
        lambda s: s.page("missing", 0, 10),
        lambda s: s.results_since("missing", 0),
        lambda s: s.request_cancel("missing"),
        lambda s: s.subscribe("missing", lambda: None),
        lambda s: s.unfinished("missing"),
        lambda s: s.urls("missing"),
    ],
    ids=["header", "page", "results_since", "request_cancel", "subscribe", "unfinished", "urls"],
)
def test_unknown_job_id_raises_job_not_found(read: Callable[[MemoryStore], object]) -> None:
    s = store()
    new_job(s)
    with pytest.raises(JobNotFound):
        read(s)


def test_readers_get_copies_that_do_not_change_the_store() -> None:
    s = store()
    job_urls = urls(3)
    job_id = new_job(s, job_urls)
    s.record(job_id, 0, down(job_urls[0]))
    s.record(job_id, 1, up(job_urls[1]))

    page = s.page(job_id, 0, 10)
    page.results.clear()
    page.summary.errors["invented"] = 99
    since, header = s.results_since(job_id, 0)
    since.clear()
    header.summary.errors.clear()
    jobs, _ = s.list_jobs(0, 10)
    jobs[0].summary.errors["invented"] = 1
    jobs.clear()
    s.header(job_id).summary.errors["invented"] = 7
    s.unfinished(job_id).clear()

    again = s.page(job_id, 0, 10)
    assert [r.url for r in again.results] == job_urls[:2]
    assert again.summary.errors == {"timeout": 1}
    assert s.unfinished(job_id) == [2]
    assert s.list_jobs(0, 10)[1] == 1


# --- subscribers ----------------------------------------------------------------------------


def test_subscribers_are_called_on_record_and_start_and_not_after_unsubscribe() -> None:
    s = store()
    job_urls = urls(3)
    job_id = new_job(s, job_urls)
    calls: list[str] = []
    unsubscribe = s.subscribe(job_id, lambda: calls.append("a"))
    s.subscribe(job_id, lambda: calls.append("b"))
    s.mark_started(job_id)
    assert sorted(calls) == ["a", "b"]
    s.record(job_id, 0, up(job_urls[0]))
    assert sorted(calls) == ["a", "a", "b", "b"]
    unsubscribe()
    s.record(job_id, 1, up(job_urls[1]))
    assert sorted(calls) == ["a", "a", "b", "b", "b"]
    s.record(job_id, 1, up(job_urls[1]))  # refused: nothing changed, nobody is called
    assert len(calls) == 5
    unsubscribe()  # a second call is harmless


def test_subscriber_may_read_the_store_from_its_callback() -> None:
    # Callbacks run with no lock held: reading back the job from inside one must not deadlock.
    s = store()
    job_urls = urls(1)
    job_id = new_job(s, job_urls)
    seen: list[int] = []
    s.subscribe(job_id, lambda: seen.append(s.header(job_id).completed))
    done = threading.Event()

    def record() -> None:
        s.record(job_id, 0, up(job_urls[0]))
        done.set()

    threading.Thread(target=record, daemon=True).start()
    assert done.wait(5), "record() deadlocked calling a subscriber that reads the store"
    assert seen == [1]


# --- retention ------------------------------------------------------------------------------


def test_oldest_finished_jobs_are_evicted_past_max_jobs() -> None:
    s = store(max_jobs=2)
    a, b, c = new_job(s), new_job(s), new_job(s)
    # Finish out of creation order: retention goes by when a job finished.
    finish(s, b)
    finish(s, a)
    finish(s, c)
    jobs, count = s.list_jobs(0, 10)
    assert count == 2
    assert {job.id for job in jobs} == {a, c}
    with pytest.raises(JobNotFound):
        s.header(b)


def test_jobs_in_progress_are_never_evicted_even_past_max_jobs() -> None:
    s = store(max_jobs=1)
    queued = [new_job(s) for _ in range(3)]
    running = new_job(s)
    s.mark_started(running)
    finished = [new_job(s) for _ in range(3)]
    for job_id in finished:
        finish(s, job_id)
    s.expire()
    _, count = s.list_jobs(0, 100)
    assert count == 4 + 1  # every unfinished job, and the newest finished one
    for job_id in [*queued, running, finished[-1]]:
        s.header(job_id)
    for job_id in finished[:-1]:
        with pytest.raises(JobNotFound):
            s.header(job_id)


def test_finished_jobs_older_than_max_age_are_evicted() -> None:
    s = store(max_age_s=0.05)
    old = new_job(s)
    finish(s, old)
    in_progress = new_job(s)
    threading.Event().wait(0.2)
    assert s.expire() == 1
    with pytest.raises(JobNotFound):
        s.header(old)
    assert s.header(in_progress).status is JobStatus.QUEUED


def test_listing_jobs_applies_max_age() -> None:
    s = store(max_age_s=0.05)
    finish(s, new_job(s))
    threading.Event().wait(0.2)
    assert s.list_jobs(0, 10) == ([], 0)


def test_finished_job_within_max_age_is_kept() -> None:
    s = store(max_age_s=3600)
    job_id = new_job(s)
    finish(s, job_id)
    assert s.expire() == 0
    assert s.header(job_id).status is JobStatus.DONE


# --- concurrency ----------------------------------------------------------------------------


def test_concurrent_records_from_8_threads_all_land_exactly_once() -> None:
    s = store()
    threads, per_thread = 8, 500
    job_urls = urls(threads * per_thread)
    job_id = new_job(s, job_urls)
    start = threading.Barrier(threads)
    accepted = [0] * threads

    def worker(t: int) -> None:
        start.wait(10)
        for index in range(t, len(job_urls), threads):
            result = up(job_urls[index]) if index % 3 else down(job_urls[index])
            accepted[t] += s.record(job_id, index, result)

    workers = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(30)
    assert not any(w.is_alive() for w in workers)
    assert accepted == [per_thread] * threads
    header = s.header(job_id)
    assert header.completed == 4000
    assert header.status is JobStatus.DONE
    assert header.summary.up + header.summary.down == 4000
    assert header.summary.errors == {"timeout": header.summary.down}
    assert header.summary.down == len(range(0, 4000, 3))
    results = s.page(job_id, 0, 10_000).results
    assert sorted(r.url for r in results) == sorted(job_urls)


def test_racing_records_of_the_same_checks_keep_exactly_one_each() -> None:
    s = store()
    threads = 8
    job_urls = urls(500)
    job_id = new_job(s, job_urls)
    start = threading.Barrier(threads)
    accepted = [0] * threads

    def worker(t: int) -> None:
        start.wait(10)
        for index, url in enumerate(job_urls):
            accepted[t] += s.record(job_id, index, up(url))

    workers = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(30)
    assert sum(accepted) == 500
    header = s.header(job_id)
    assert header.completed == 500
    assert header.summary.up == 500
    assert header.status is JobStatus.DONE
    assert len(s.page(job_id, 0, 10_000).results) == 500


# --- the summary: cancelled and interrupted checks are not `down` ---------------------------


def test_summary_counts_cancelled_and_interrupted_checks_apart_from_down() -> None:
    # A check that never ran, or was cut off by shutdown, says nothing about its target.
    s = store()
    job_urls = urls(5)
    job_id = new_job(s, job_urls)
    s.record(job_id, 0, up(job_urls[0]))
    s.record(job_id, 1, down(job_urls[1], ErrorKind.TIMEOUT))
    s.record(job_id, 2, down(job_urls[2], ErrorKind.CANCELLED))
    s.record(job_id, 3, down(job_urls[3], ErrorKind.CANCELLED))
    s.record(job_id, 4, down(job_urls[4], ErrorKind.INTERRUPTED))
    summary = s.header(job_id).summary
    assert (summary.up, summary.degraded, summary.down) == (1, 0, 1)
    assert (summary.cancelled, summary.interrupted) == (2, 1)
    assert summary.errors == {"timeout": 1, "cancelled": 2, "interrupted": 1}
    counted = summary.up + summary.degraded + summary.down
    assert counted + summary.cancelled + summary.interrupted == s.header(job_id).completed


# --- retention by bytes ---------------------------------------------------------------------


def sized_store(max_bytes: int, max_jobs: int = 1000) -> MemoryStore:
    return MemoryStore(max_jobs=max_jobs, max_age_s=3600.0, max_bytes=max_bytes)


def bulky(url: str, size: int = 2000) -> CheckResult:
    """A down result whose JSON is at least `size` bytes."""
    return CheckResult(
        url=url,
        ok=False,
        outcome="down",
        checked_at=datetime.now(UTC),
        error=CheckError(kind=ErrorKind.BLOCKED, message="x" * size),
    )


def finish_bulky(s: MemoryStore, job_id: str, size: int = 2000) -> None:
    for index, url in enumerate(s.urls(job_id)):
        s.record(job_id, index, bulky(url, size))


def test_retained_bytes_count_the_stored_json_of_every_kept_result() -> None:
    s = sized_store(max_bytes=10**9)
    empty = s.retained_bytes()
    job_id = new_job(s, urls(10))
    with_job = s.retained_bytes()
    assert with_job > empty  # a job costs its overhead before any result
    finish_bulky(s, job_id, size=3000)
    grown = s.retained_bytes() - with_job
    json_bytes = sum(len(r.model_dump_json()) for r in s.page(job_id, 0, 100).results)
    assert json_bytes <= grown <= json_bytes + 10 * 200  # the JSON, plus a small overhead each


def test_oldest_finished_jobs_are_evicted_past_the_byte_budget() -> None:
    # Each job: 10 results of >2 KB, so > 20 KB; a 70 KB budget holds three of them.
    s = sized_store(max_bytes=70_000)
    jobs = [new_job(s, urls(10, prefix=f"j{n}-")) for n in range(6)]
    for job_id in jobs:
        finish_bulky(s, job_id)
    assert s.retained_bytes() <= 70_000
    kept = {job.id for job in s.list_jobs(0, 100)[0]}
    assert jobs[-1] in kept
    assert jobs[0] not in kept
    # Oldest first: what is kept is a suffix of the finishing order.
    assert kept == set(jobs[len(jobs) - len(kept) :])
    with pytest.raises(JobNotFound):
        s.header(jobs[0])


def test_jobs_in_progress_are_never_evicted_for_bytes() -> None:
    s = sized_store(max_bytes=30_000)
    older, newer = new_job(s, urls(5, prefix="f")), new_job(s, urls(5, prefix="g"))
    finish_bulky(s, older)
    finish_bulky(s, newer)
    running = new_job(s, urls(30, prefix="r"))
    s.mark_started(running)
    for index, url in enumerate(s.urls(running)[:-1]):  # 29 of 30: still running
        s.record(running, index, bulky(url))
    # Over budget with the running job alone: finished jobs go, oldest first, but the one
    # that finished last stays (its client may be about to read it); the running one stays.
    assert s.retained_bytes() > 30_000
    with pytest.raises(JobNotFound):
        s.header(older)
    assert s.header(newer).status is JobStatus.DONE
    assert s.header(running).completed == 29
    # Once the running job finishes, it is the newest finished job: the other one goes.
    s.record(running, 29, bulky(s.urls(running)[29]))
    assert s.header(running).status is JobStatus.DONE
    with pytest.raises(JobNotFound):
        s.header(newer)


def test_evicting_for_bytes_gives_the_bytes_back() -> None:
    s = sized_store(max_bytes=50_000)
    baseline = s.retained_bytes()
    for n in range(20):
        finish_bulky(s, new_job(s, urls(10, prefix=f"k{n}-")))
        assert s.retained_bytes() <= 50_000
    # Every job is finished and over budget but the newest ones: their count stays small.
    _, count = s.list_jobs(0, 100)
    assert 1 <= count <= 3
    assert s.retained_bytes() > baseline


# --- pages and lists as JSON, assembled from the stored bytes -------------------------------


def test_page_json_is_the_page_with_each_result_as_stored() -> None:
    s = store()
    job_urls = urls(5)
    job_id = new_job(s, job_urls)
    for index in (3, 1, 4):
        s.record(job_id, index, down(job_urls[index]) if index == 1 else up(job_urls[index]))
    stored, _ = s.results_since(job_id, 0)

    for offset, limit in ((0, 10), (1, 1), (3, 5)):
        body = s.page_json(job_id, offset, limit)
        assert JobPublic.model_validate_json(body) == s.page(job_id, offset, limit)
        # The stored bytes themselves, not a re-encoding: nothing is rebuilt per read.
        raw = body[body.index(b'"results":[') + len(b'"results":[') : body.rindex(b"]")]
        assert raw == b",".join(stored[offset : offset + limit])


def test_page_json_of_a_finished_job_matches_its_header() -> None:
    s = store()
    job_id = new_job(s)
    finish(s, job_id)
    page = JobPublic.model_validate_json(s.page_json(job_id, 0, 100))
    assert JobHeader.model_validate(page.model_dump()) == s.header(job_id)
    assert page.status is JobStatus.DONE
    with pytest.raises(JobNotFound):
        s.page_json("missing", 0, 10)


def test_list_json_is_the_job_list() -> None:
    s = store()
    ids = [new_job(s) for _ in range(3)]
    finish(s, ids[1])
    for offset, limit in ((0, 10), (1, 1), (5, 2)):
        listing = JobsPublic.model_validate_json(s.list_json(offset, limit))
        jobs, count = s.list_jobs(offset, limit)
        assert listing == JobsPublic(jobs=jobs, count=count, offset=offset, limit=limit)
