"""The durable store's behaviour, over memory://, an SQLite file and a real PostgreSQL: a job
is on disk before create_job returns, results follow, a finished job leaves memory and reads
the same from the database, lists filter there, and jobs a crash left unfinished end
`interrupted` at the next start."""

from __future__ import annotations

import itertools
import json
import logging
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update

from app.db.engine import open_database
from app.db.schema import instances, jobs, results
from app.schemas.jobs import JobStatus
from app.schemas.results import ErrorKind
from app.store.base import JobFilter, JobNotFound, StoredResult, StoreUnavailable
from app.store.durable import DurableStore
from app.store.instance import Instance
from app.store.recovery import MESSAGE, interrupted, interrupted_results
from app.store.storage import Storage
from tests.conftest import make_settings
from tests.store.test_memory import OPTIONS, down, up, urls
from tests.support.backends import BACKENDS, url_for
from tests.support.dbfaults import SqliteFault
from tests.support.process import wait_until


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return url_for(request.param, tmp_path, request)


@pytest.fixture
def storage(database_url: str) -> Iterator[Storage]:
    opened = Storage.open(make_settings(database_url=database_url))
    yield opened
    opened.close()


def open_storage_with(database_url: str, **settings: Any) -> Storage:
    return Storage.open(make_settings(database_url=database_url, **settings))


def open_storage(database_url: str) -> Storage:
    return Storage.open(make_settings(database_url=database_url))


def finish(store: DurableStore, job_id: str) -> None:
    for index, url in enumerate(store.urls(job_id)):
        store.record(job_id, index, up(url) if index % 2 == 0 else down(url))


def on_disk(store: DurableStore, job_id: str) -> bool:
    """The job has left memory: what is read of it now comes from the database."""
    return job_id not in store.memory.statuses()


def stored_count(storage: Storage, job_id: str) -> int:
    with storage.database.engine.connect() as connection:
        query = select(func.count()).select_from(results).where(results.c.job_id == job_id)
        return int(connection.execute(query).scalar() or 0)


def test_a_created_job_is_committed_before_create_returns(storage: Storage) -> None:
    header = storage.store.create_job(urls(3), OPTIONS, duplicates_removed=1)
    with storage.database.engine.connect() as connection:
        row = connection.execute(select(jobs).where(jobs.c.id == header.id)).one()
    assert row.status == "queued"
    assert row.total == 3
    assert row.duplicates_removed == 1
    assert row.owner == storage.instance.id


def test_a_job_that_cannot_be_kept_is_refused_and_nothing_stays_behind(storage: Storage) -> None:
    storage.writer.stop(10.0)  # what a database that went away looks like to the store
    with pytest.raises(StoreUnavailable, match="the job could not be kept"):
        storage.store.create_job(urls(2), OPTIONS)
    assert storage.store.memory.statuses() == {}
    assert storage.store.active_job_ids() == []


def test_a_finished_job_leaves_memory_and_reads_the_same_from_disk(storage: Storage) -> None:
    store = storage.store
    job_id = store.create_job(urls(5), OPTIONS).id
    store.mark_started(job_id)
    finish(store, job_id)
    assert store.record(job_id, 0, down("late")) is False or on_disk(store, job_id)
    from_memory = store.memory.page_json(job_id, 0, 100) if not on_disk(store, job_id) else None
    assert wait_until(lambda: on_disk(store, job_id), 10.0)
    page = store.page_json(job_id, 0, 100)
    if from_memory is not None:
        assert page == from_memory  # byte for byte
    document = json.loads(page)
    assert document["status"] == "done"
    assert document["completed"] == 5
    assert document["summary"]["up"] == 3
    assert document["summary"]["down"] == 2
    assert [r["url"] for r in document["results"]] == urls(5)
    assert store.header(job_id).status is JobStatus.DONE
    assert stored_count(storage, job_id) == 5


def test_first_writer_wins_on_disk_too(storage: Storage) -> None:
    store = storage.store
    job_id = store.create_job(urls(2), OPTIONS).id
    assert store.record(job_id, 0, up("first")) is True
    assert store.record(job_id, 0, down("second")) is False
    store.record(job_id, 1, up("x"))
    assert wait_until(lambda: on_disk(store, job_id), 10.0)
    assert json.loads(store.page_json(job_id, 0, 10))["results"][0]["url"] == "first"
    assert store.record(job_id, 1, down("after")) is False


def test_pages_of_a_job_on_disk_are_ranges_in_completion_order(storage: Storage) -> None:
    store = storage.store
    job_id = store.create_job(urls(250), OPTIONS).id
    order = list(range(250))[::-1]  # completion order differs from index order
    for index in order:
        store.record(job_id, index, up(f"http://u{index}.test/"))
    assert wait_until(lambda: on_disk(store, job_id), 10.0)
    seen = []
    for offset in range(0, 250, 100):
        page = store.page(job_id, offset, 100)
        assert page.offset == offset
        seen += [result.url for result in page.results]
    assert seen == [f"http://u{index}.test/" for index in order]
    assert store.page(job_id, 1000, 10).results == []


def test_a_stream_of_a_job_on_disk_gets_every_result_then_its_header(storage: Storage) -> None:
    store = storage.store
    job_id = store.create_job(urls(7), OPTIONS).id
    finish(store, job_id)
    assert wait_until(lambda: on_disk(store, job_id), 10.0)
    unsubscribe = store.subscribe(job_id, lambda: None)
    unsubscribe()
    bodies, next_start, header = store.results_since_json(job_id, 3)
    assert [json.loads(b)["url"] for b in bodies] == urls(7)[3:]
    assert next_start == 7
    assert header is not None
    assert json.loads(header)["status"] == "done"
    assert store.results_since(job_id, 0)[1].completed == 7


def test_unknown_jobs_are_not_found(storage: Storage) -> None:
    store = storage.store
    for read in (store.header, lambda j: store.page_json(j, 0, 1), store.request_cancel):
        with pytest.raises(JobNotFound):
            read("f" * 32)
    with pytest.raises(JobNotFound):
        store.subscribe("f" * 32, lambda: None)


def test_lists_come_from_disk_newest_first_with_live_states_and_filters(storage: Storage) -> None:
    store = storage.store
    done_id = store.create_job(urls(1), OPTIONS).id
    finish(store, done_id)
    running_id = store.create_job(urls(2), OPTIONS).id
    store.mark_started(running_id)
    queued_id = store.create_job(urls(2), OPTIONS).id
    assert wait_until(lambda: on_disk(store, done_id), 10.0)

    listed, count = store.list_jobs(0, 10)
    assert [h.id for h in listed] == [queued_id, running_id, done_id]
    assert [h.status for h in listed] == [JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.DONE]
    assert count == 3
    document = json.loads(store.list_json(1, 1))
    assert [j["id"] for j in document["jobs"]] == [running_id]
    assert document["count"] == 3

    done, count = store.list_jobs(0, 10, JobFilter(status=JobStatus.DONE))
    assert ([h.id for h in done], count) == ([done_id], 1)
    created = store.header(running_id).created_at
    since, _ = store.list_jobs(0, 10, JobFilter(created_since=created))
    assert [h.id for h in since] == [queued_id, running_id]
    until, _ = store.list_jobs(0, 10, JobFilter(created_until=created))
    assert [h.id for h in until] == [done_id]
    later = datetime.now(UTC) + timedelta(days=1)
    assert store.list_jobs(0, 10, JobFilter(created_since=later)) == ([], 0)

    counts = store.count_by_status()
    assert counts[JobStatus.DONE] == 1
    assert counts[JobStatus.RUNNING] == 1
    assert counts[JobStatus.QUEUED] == 1


def test_memory_holds_running_jobs_not_history(storage: Storage) -> None:
    store = storage.store
    finished = []
    for _ in range(20):
        job_id = store.create_job(urls(3), OPTIONS).id
        finish(store, job_id)
        finished.append(job_id)
    running = store.create_job(urls(3), OPTIONS).id
    assert wait_until(lambda: set(store.memory.statuses()) == {running}, 10.0)
    assert store.list_jobs(0, 100)[1] == 21
    assert all(store.header(job_id).status is JobStatus.DONE for job_id in finished)


def test_cancelling_a_job_on_disk_returns_it_unchanged(storage: Storage) -> None:
    store = storage.store
    job_id = store.create_job(urls(1), OPTIONS).id
    finish(store, job_id)
    assert wait_until(lambda: on_disk(store, job_id), 10.0)
    assert store.request_cancel(job_id).status is JobStatus.DONE
    assert store.unfinished(job_id) == []


def test_interrupted_and_cancelled_checks_are_counted_apart_on_disk(storage: Storage) -> None:
    store = storage.store
    job_id = store.create_job(urls(3), OPTIONS).id
    store.mark_interrupted(job_id)
    store.record(job_id, 0, up("a"))
    store.record(job_id, 1, down("b", ErrorKind.CANCELLED))
    store.record(job_id, 2, down("c", ErrorKind.INTERRUPTED))
    live = store.header(job_id).model_dump_json()
    assert wait_until(lambda: on_disk(store, job_id), 10.0)
    assert store.header(job_id).model_dump_json() == live
    summary = store.header(job_id).summary
    assert (summary.up, summary.down, summary.cancelled, summary.interrupted) == (1, 0, 1, 1)
    assert store.header(job_id).status is JobStatus.INTERRUPTED


def crash(storage: Storage) -> None:
    """What SIGKILL leaves: everything queued for the writer written, then nothing more;
    the instance row stays, the job is not final."""
    storage.instance._stop.set()  # no further heartbeat
    storage.writer.stop(10.0)
    storage.database.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_jobs_a_crash_left_unfinished_end_interrupted_at_the_next_start(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = url_for(backend, tmp_path, request)
    first = open_storage(url)
    job_id = first.store.create_job(urls(4), OPTIONS).id
    first.store.mark_started(job_id)
    first.store.record(job_id, 2, up("http://u2.test/"))
    first.store.record(job_id, 0, down("http://u0.test/"))
    crash(first)

    if backend == "postgresql":
        # Its owner's lease is still fresh: another instance leaves the job alone ...
        second = open_storage(url)
        assert second.store.header(job_id).status is JobStatus.RUNNING
        with second.database.engine.begin() as connection:
            connection.execute(
                update(instances)
                .where(instances.c.id == first.instance.id)
                .values(heartbeat_at=datetime.now(UTC) - timedelta(minutes=5))
            )
        second.close()  # ... until the lease runs out

    again = open_storage(url)
    try:
        page = again.store.page(job_id, 0, 10)
        assert page.status is JobStatus.INTERRUPTED
        assert page.completed == page.total == 4
        assert page.finished_at is not None
        by_url = {result.url: result for result in page.results}
        assert by_url["http://u2.test/"].ok
        assert by_url["http://u0.test/"].error is not None
        assert by_url["http://u0.test/"].error.kind is ErrorKind.TIMEOUT
        for missing in ("http://u1.test/", "http://u3.test/"):
            error = by_url[missing].error
            assert error is not None
            assert error.kind is ErrorKind.INTERRUPTED
            assert error.message == MESSAGE
        summary = page.summary
        assert (summary.up, summary.down, summary.interrupted) == (1, 1, 2)
        assert [r.url for r in page.results][:2] == ["http://u2.test/", "http://u0.test/"]
    finally:
        again.close()


def test_a_large_job_on_disk_pages_correctly(tmp_path: Path) -> None:
    """100,000 results (their time is measured in bench/, not here)."""
    storage = open_storage(f"sqlite:///{tmp_path / 'big.db'}")
    try:
        store = storage.store
        total = 100_000
        job_id = store.create_job([f"http://h{i}.test/" for i in range(total)], OPTIONS).id
        body = up("http://h.test/")
        for index in range(total):
            stored = StoredResult.of(body.model_copy(update={"url": f"http://h{index}.test/"}))
            store.record(job_id, index, stored)
        assert wait_until(lambda: on_disk(store, job_id), 120.0)
        for offset in (0, 54_321, total - 50):
            page = store.page(job_id, offset, 100)
            expected = [f"http://h{i}.test/" for i in range(offset, min(offset + 100, total))]
            assert [r.url for r in page.results] == expected
        assert store.header(job_id).completed == total
    finally:
        storage.close()


def test_a_burst_of_results_waits_for_room_in_the_writers_queue(database_url: str) -> None:
    # A queue of 10 writes and 500 results at once (a large job cancelled): none is lost.
    storage = Storage.open(make_settings(database_url=database_url, db_queue_max=10))
    try:
        store = storage.store
        job_id = store.create_job(urls(500), OPTIONS).id
        for index, url in enumerate(urls(500)):
            store.record(job_id, index, down(url, ErrorKind.CANCELLED))
        assert wait_until(lambda: on_disk(store, job_id), 30.0)
        assert stored_count(storage, job_id) == 500
        assert store.lost == 0
    finally:
        storage.close()


def test_results_wait_for_a_slow_database_however_long_and_none_is_lost(database_url: str) -> None:
    # A writer behind for longer than the commit timeout (starved of the GIL by hundreds of
    # check threads) had the results past it counted lost, the database being there.
    storage = open_storage_with(database_url, db_queue_max=5)
    store = storage.store
    store.commit_timeout_s = 0.2
    held = threading.Event()
    try:
        job_id = store.create_job(urls(20), OPTIONS).id
        storage.writer.submit(lambda _connection: held.wait(10.0))  # the writer waits for us
        recorded = threading.Event()

        def record_all() -> None:
            for index, url in enumerate(urls(20)):
                store.record(job_id, index, up(url))
            recorded.set()

        threading.Thread(target=record_all, daemon=True).start()
        assert not recorded.wait(1.0)  # 20 results, room for 5: recording waits
        held.set()
        assert recorded.wait(10.0)
        assert wait_until(lambda: on_disk(store, job_id), 10.0)
        assert stored_count(storage, job_id) == 20
        assert store.lost == 0
    finally:
        held.set()
        storage.close()


def test_results_waiting_for_the_writer_log_one_line_per_commit_timeout_not_one_each(
    tmp_path: Path, request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture
) -> None:
    storage = open_storage_with(url_for("sqlite", tmp_path, request), db_queue_max=2)
    store = storage.store
    store.commit_timeout_s = 0.2
    held = threading.Event()
    try:
        job_id = store.create_job(urls(16), OPTIONS).id
        storage.writer.submit(lambda _connection: held.wait(10.0))  # the writer waits for us

        def record(index: int) -> None:
            store.record(job_id, index, up(urls(16)[index]))

        threads = [threading.Thread(target=record, args=(i,), daemon=True) for i in range(16)]
        with caplog.at_level(logging.WARNING, logger="urlhealth.store"):
            for thread in threads:
                thread.start()
            assert wait_until(lambda: "writer is behind" in caplog.text, 10.0)
            held.wait(0.5)  # 14 threads wait past the timeout meanwhile
            held.set()
            for thread in threads:
                thread.join(10.0)
        lines = [r.created for r in caplog.records if "writer is behind" in r.getMessage()]
        # One line, then at most one a commit timeout (it was one per waiting result: 14).
        assert lines
        assert all(b - a >= 0.19 for a, b in itertools.pairwise(lines)), lines
        assert wait_until(lambda: on_disk(store, job_id), 10.0)
        assert store.lost == 0
    finally:
        held.set()
        storage.close()


class ReleaseOnLog(logging.Handler):
    """Sets `event` when a record containing `text` is logged."""

    def __init__(self, event: threading.Event, text: str) -> None:
        super().__init__()
        self.event, self.text, self.seen = event, text, False

    def emit(self, record: logging.LogRecord) -> None:
        if self.text in record.getMessage():
            self.seen = True
            self.event.set()


def job_rows(storage: Storage) -> int:
    with storage.database.engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(jobs)).scalar() or 0)


def test_a_job_whose_write_had_begun_when_time_ran_out_is_kept_not_refused(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    # It was refused (503) and committed a moment later: a job its client was told was not kept.
    storage = open_storage_with(url_for("sqlite", tmp_path, request), db_flush_interval_s=5.0)
    store = storage.store
    store.commit_timeout_s = 3.0
    held = threading.Event()
    waiting_again = ReleaseOnLog(held, "waiting once more")
    logging.getLogger("urlhealth.store").addHandler(waiting_again)
    try:
        # Waits for company: the job's write joins its transaction, begun, and waits with it
        # until create_job's first wait has run out (then the handler lets it go).
        storage.writer.put(lambda _connection: held.wait(30.0))
        header = store.create_job(urls(2), OPTIONS)
        assert waiting_again.seen
        assert store.header(header.id).total == 2
        assert job_rows(storage) == 1
    finally:
        logging.getLogger("urlhealth.store").removeHandler(waiting_again)
        held.set()
        storage.close()


def test_a_job_refused_after_its_write_had_begun_is_taken_back_when_it_commits(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    storage = open_storage_with(url_for("sqlite", tmp_path, request), db_flush_interval_s=5.0)
    store = storage.store
    store.commit_timeout_s = 0.2
    held = threading.Event()
    try:
        storage.writer.put(lambda _connection: held.wait(10.0))
        with pytest.raises(StoreUnavailable, match="did not confirm it within"):
            store.create_job(urls(2), OPTIONS)
        held.set()  # now it commits, and is deleted after
        assert wait_until(lambda: storage.writer.stats().written >= 3, 10.0)
        assert wait_until(lambda: job_rows(storage) == 0, 10.0)
        assert store.active_job_ids() == []
    finally:
        held.set()
        storage.close()


def test_an_instance_beats_while_it_runs_and_leaves_no_row_when_stopped(storage: Storage) -> None:
    instance = Instance(storage.writer, heartbeat_s=0.05)
    instance.register(10.0)

    def row() -> Any:
        with storage.database.engine.connect() as connection:
            query = select(instances).where(instances.c.id == instance.id)
            return connection.execute(query).first()

    first = row()
    assert first is not None
    assert wait_until(lambda: row().heartbeat_at > first.heartbeat_at, 10.0)
    instance.stop()
    assert wait_until(lambda: row() is None, 10.0)
    assert storage.instance.id != instance.id


def test_a_stream_of_a_job_on_disk_ends_even_if_results_were_lost(storage: Storage) -> None:
    store = storage.store
    job_id = store.create_job(urls(3), OPTIONS).id
    finish(store, job_id)
    assert wait_until(lambda: on_disk(store, job_id), 10.0)
    with storage.database.engine.begin() as connection:  # as if it never reached the disk
        connection.execute(results.delete().where(results.c.job_id == job_id, results.c.seq == 2))
    bodies, _, header = store.results_since_json(job_id, 2)
    assert bodies == []
    assert header is not None  # the end line: no stream waits for results that will not come


def test_a_stream_of_a_job_on_disk_sends_no_result_twice_past_lost_ones(
    storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Reads went on from `start + how many came`: past a lost seq, the next read began inside
    # the previous one (results twice) and the stream ended short (4 jobs of 25,000 at once).
    monkeypatch.setattr("app.store.durable.STREAM_BATCH", 5)
    store = storage.store
    job_id = store.create_job(urls(12), OPTIONS).id
    finish(store, job_id)
    assert wait_until(lambda: on_disk(store, job_id), 10.0)
    with storage.database.engine.begin() as connection:  # as if they never reached the disk
        connection.execute(
            results.delete().where(results.c.job_id == job_id, results.c.seq.in_([3, 7]))
        )
    sent: list[str] = []
    start, header = 0, None
    for _ in range(10):  # bounded: a stream that never ends fails here
        bodies, start, header = store.results_since_json(job_id, start)
        sent += [json.loads(body)["url"] for body in bodies]
        if header is not None:
            break
    assert header is not None
    assert sent == [url for seq, url in enumerate(urls(12)) if seq not in (3, 7)]


def test_a_job_reads_byte_for_byte_the_same_from_disk_as_from_memory(storage: Storage) -> None:
    store = storage.store
    options = OPTIONS.model_copy(update={"headers": {"X-B": "2", "X-A": "1"}, "timeout_s": 2.5})
    job_id = store.create_job(urls(4), options, duplicates_removed=2).id
    store.mark_started(job_id)
    held = threading.Event()
    storage.writer.submit(lambda _connection: held.wait(10.0))  # the writer waits for us
    store.record(job_id, 0, up("http://u0.test/"))
    store.record(job_id, 1, down("http://u1.test/", ErrorKind.TIMEOUT))
    store.record(job_id, 2, down("http://u2.test/", ErrorKind.DNS))
    store.record(job_id, 3, down("http://u3.test/", ErrorKind.TIMEOUT))
    assert not on_disk(store, job_id)
    page = store.page_json(job_id, 1, 2)
    since = store.results_since_json(job_id, 0)
    assert since.next_start == 4
    listed = store.list_json(0, 10)
    held.set()
    assert wait_until(lambda: on_disk(store, job_id), 10.0)
    assert store.page_json(job_id, 1, 2) == page
    assert store.results_since_json(job_id, 0) == since
    assert store.list_json(0, 10) == listed


@pytest.mark.parametrize("backend", ["memory", "sqlite"])  # a fault SQLite can be given
def test_while_the_database_is_away_results_are_counted_lost_not_waited_for(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    storage = open_storage_with(url_for(backend, tmp_path, request), db_queue_max=10)
    fault = SqliteFault(storage.database)
    try:
        store = storage.store
        job_id = store.create_job(urls(50), OPTIONS).id
        fault.mode = "readonly"  # a real outage: every write the writer tries now fails
        store.record(job_id, 0, up(urls(50)[0]))
        assert wait_until(lambda: not storage.writer.healthy, 10.0)
        recorded = threading.Event()

        def record_rest() -> None:
            for index, url in enumerate(urls(50)[1:], start=1):
                store.record(job_id, index, up(url))
            recorded.set()

        threading.Thread(target=record_rest, daemon=True).start()
        # Waiting for room would take commit_timeout_s (10 s) per result past the tenth.
        assert recorded.wait(8.0), "recording waited for a database that is away"
        assert store.lost > 0  # counted, not silent (how many: what the queue held)
        assert store.header(job_id).completed == 50  # memory has them all
        fault.mode = "none"
        assert wait_until(lambda: storage.writer.healthy, 15.0)  # and the writer catches up
    finally:
        fault.mode = "none"
        storage.close()


def stored_statuses(storage: Storage) -> dict[JobStatus, int]:
    """A fresh GROUP BY of the jobs on disk, every status present."""
    with storage.database.engine.connect() as connection:
        query = select(jobs.c.status, func.count()).group_by(jobs.c.status)
        found = {JobStatus(status): int(n) for status, n in connection.execute(query)}
    return {status: found.get(status, 0) for status in JobStatus}


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_job_counts_kept_in_memory_equal_the_databases_after_every_kind_of_ending(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = url_for(backend, tmp_path, request)
    first = open_storage(url)
    crashed = first.store.create_job(urls(4), OPTIONS).id
    first.store.mark_started(crashed)
    first.store.record(crashed, 1, up("http://u1.test/"))
    crash(first)
    if backend == "postgresql":  # its owner's lease runs out, so the next start recovers it
        with open_database(first.database.url) as database, database.engine.begin() as c:
            stale = datetime.now(UTC) - timedelta(minutes=5)
            c.execute(update(instances).values(heartbeat_at=stale))

    # Recovery finalises `crashed` at start; retention keeps the newest 5 jobs, every
    # 0.05 s, so it deletes finished jobs while others are created and finish.
    storage = open_storage_with(url, db_retention_max_jobs=5, db_retention_interval_s=0.05)
    try:
        store = storage.store
        assert store.count_by_status() == stored_statuses(storage)
        for _ in range(2):
            finish(store, store.create_job(urls(3), OPTIONS).id)
        cancelled = store.create_job(urls(3), OPTIONS).id
        store.mark_started(cancelled)
        store.record(cancelled, 0, up("http://u0.test/"))
        store.request_cancel(cancelled)
        for index in (1, 2):
            store.record(cancelled, index, down(f"http://u{index}.test/", ErrorKind.CANCELLED))
        interrupted = store.create_job(urls(2), OPTIONS).id
        store.mark_started(interrupted)
        store.mark_interrupted(interrupted)
        store.record(interrupted, 0, up("http://u0.test/"))
        store.record(interrupted, 1, down("http://u1.test/", ErrorKind.INTERRUPTED))
        never_started = store.create_job(urls(2), OPTIONS).id  # cancelled while queued
        store.request_cancel(never_started)
        for index in (0, 1):
            store.record(never_started, index, down(f"http://u{index}.test/", ErrorKind.CANCELLED))
        running = store.create_job(urls(2), OPTIONS).id
        store.mark_started(running)
        store.record(running, 0, up("http://u0.test/"))
        store.create_job(urls(2), OPTIONS)  # stays queued

        # The newest 5 stay (queued, running, cancelled twice, interrupted); the 2 done jobs
        # and the one recovery ended interrupted were deleted by retention.
        expected = {
            JobStatus.QUEUED: 1,
            JobStatus.RUNNING: 1,
            JobStatus.DONE: 0,
            JobStatus.CANCELLED: 2,
            JobStatus.INTERRUPTED: 1,
        }
        assert wait_until(lambda: stored_statuses(storage) == expected, 20.0), stored_statuses(
            storage
        )
        assert store.count_by_status() == expected
    finally:
        storage.close()

    again = open_storage(url)  # loaded at start: the same figures
    try:
        assert again.store.count_by_status() == stored_statuses(again)
    finally:
        again.close()


def test_interrupted_results_made_at_recovery_are_each_models_json_byte_for_byte() -> None:
    # Recovery encodes one model per job and puts each URL in: the bytes must not differ.
    now = datetime.now(UTC)
    tricky = [
        "http://a.test/",
        'http://b.test/"q"\\',
        "http://ü.test/ß?x=1&y=<>",
        "http://c/\u2028",
    ]
    assert list(interrupted_results(tricky, now)) == [
        StoredResult.of(interrupted(url, now)) for url in tricky
    ]
