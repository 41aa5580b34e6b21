"""The tables hold what the store needs, on every backend: a job with its URLs, its results
paged in completion order, jobs listed newest first by status and created range, an
instance's unfinished jobs; deleting a job takes its rows with it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError, StatementError

from app.db.engine import Database
from app.db.migrator import upgrade
from app.db.schema import UNFINISHED, job_urls, jobs, results

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def db(database: Database) -> Database:
    upgrade(database)
    return database


def _add_job(
    db: Database,
    job_id: str,
    *,
    created_at: datetime = T0,
    status: str = "queued",
    urls: int = 3,
    owner: str | None = "instance-a",
) -> None:
    with db.write_engine.begin() as connection:
        connection.execute(
            insert(jobs).values(
                id=job_id,
                status=status,
                options={"method": "GET", "timeout_s": 5.0},
                total=urls,
                created_at=created_at,
                errors={},
                owner=owner,
            )
        )
        if urls:
            connection.execute(
                insert(job_urls),
                [{"job_id": job_id, "idx": i, "url": f"http://u{i}.test/"} for i in range(urls)],
            )


def _result(job_id: str, idx: int, seq: int) -> dict[str, object]:
    body = json.dumps({"url": f"http://u{idx}.test/", "ok": idx % 2 == 0}).encode()
    return {
        "job_id": job_id,
        "idx": idx,
        "seq": seq,
        "ok": idx % 2 == 0,
        "outcome": "up" if idx % 2 == 0 else "down",
        "error_kind": None if idx % 2 == 0 else "timeout",
        "body": body,
    }


def test_a_job_round_trips_with_its_options_urls_and_aware_times(db: Database) -> None:
    _add_job(db, "a" * 32, created_at=T0 + timedelta(microseconds=123))

    with db.engine.connect() as connection:
        row = connection.execute(select(jobs).where(jobs.c.id == "a" * 32)).one()
        urls = connection.execute(
            select(job_urls.c.url).where(job_urls.c.job_id == "a" * 32).order_by(job_urls.c.idx)
        ).scalars()
        url_list = list(urls)

    assert row.options == {"method": "GET", "timeout_s": 5.0}
    assert row.created_at == T0 + timedelta(microseconds=123)
    assert row.created_at.tzinfo is not None
    assert (row.completed, row.up, row.errors, row.cancel_requested) == (0, 0, {}, False)
    assert url_list == ["http://u0.test/", "http://u1.test/", "http://u2.test/"]


def test_results_page_in_completion_order_as_stored_bytes(db: Database) -> None:
    job = "b" * 32
    _add_job(db, job, urls=50)
    order = [(i * 7) % 50 for i in range(50)]  # completion order differs from URL order
    with db.write_engine.begin() as connection:
        connection.execute(
            insert(results), [_result(job, idx, seq) for seq, idx in enumerate(order)]
        )

    def page(offset: int, limit: int) -> list[bytes]:
        with db.engine.connect() as connection:
            rows = connection.execute(
                select(results.c.body)
                .where(
                    results.c.job_id == job,
                    results.c.seq >= offset,
                    results.c.seq < offset + limit,
                )
                .order_by(results.c.seq)
            )
            return [bytes(body) for body in rows.scalars()]

    pages = [page(offset, 20) for offset in (0, 20, 40)]

    assert [len(p) for p in pages] == [20, 20, 10]
    assert [json.loads(body)["url"] for p in pages for body in p] == [
        f"http://u{idx}.test/" for idx in order
    ]


def test_a_checks_first_result_wins(db: Database) -> None:
    job = "c" * 32
    _add_job(db, job)
    with db.write_engine.begin() as connection:
        connection.execute(insert(results).values(**_result(job, 1, 0)))

    with pytest.raises(IntegrityError), db.write_engine.begin() as connection:
        connection.execute(insert(results).values(**_result(job, 1, 1)))


def test_jobs_list_newest_first_by_status_and_created_range(db: Database) -> None:
    statuses = ["done", "running", "done", "cancelled", "done"]
    for n, status in enumerate(statuses):
        _add_job(db, f"{n:032d}", created_at=T0 + timedelta(minutes=n), status=status, urls=0)

    with db.engine.connect() as connection:
        newest_first = connection.execute(
            select(jobs.c.id).order_by(jobs.c.created_at.desc(), jobs.c.id.desc())
        ).scalars()
        done_in_range = connection.execute(
            select(jobs.c.id)
            .where(
                jobs.c.status == "done",
                jobs.c.created_at >= T0 + timedelta(minutes=1),
                jobs.c.created_at < T0 + timedelta(minutes=5),
            )
            .order_by(jobs.c.created_at.desc(), jobs.c.id.desc())
        ).scalars()
        newest, done = list(newest_first), list(done_in_range)

    assert newest == [f"{n:032d}" for n in (4, 3, 2, 1, 0)]
    assert done == [f"{n:032d}" for n in (4, 2)]


def test_an_instances_unfinished_jobs(db: Database) -> None:
    _add_job(db, "1" * 32, status="running", owner="instance-a")
    _add_job(db, "2" * 32, status="queued", owner="instance-a")
    _add_job(db, "3" * 32, status="done", owner="instance-a")
    _add_job(db, "4" * 32, status="running", owner="instance-b")

    with db.engine.connect() as connection:
        found = connection.execute(
            select(jobs.c.id)
            .where(jobs.c.owner == "instance-a", jobs.c.status.in_(UNFINISHED))
            .order_by(jobs.c.id)
        ).scalars()
        ids = list(found)

    assert ids == ["1" * 32, "2" * 32]


def test_deleting_a_job_deletes_its_urls_and_results(db: Database) -> None:
    job = "d" * 32
    _add_job(db, job)
    with db.write_engine.begin() as connection:
        connection.execute(insert(results).values(**_result(job, 0, 0)))
        connection.execute(update(jobs).where(jobs.c.id == job).values(completed=1))

    with db.write_engine.begin() as connection:
        connection.execute(delete(jobs).where(jobs.c.id == job))

    with db.engine.connect() as connection:
        left = [
            connection.execute(select(func.count()).select_from(table)).scalar()
            for table in (job_urls, results)
        ]
    assert left == [0, 0]


def test_naive_datetimes_are_refused(db: Database) -> None:
    with pytest.raises(StatementError, match="naive datetime"):
        _add_job(db, "e" * 32, created_at=datetime(2026, 12, 1, 12, 0))


@pytest.mark.parametrize("database_url", ["memory"], indirect=True)
def test_sqlite_pages_results_through_the_seq_index(db: Database) -> None:
    query = (
        select(results.c.body)
        .where(results.c.job_id == "x", results.c.seq >= 100, results.c.seq < 200)
        .order_by(results.c.seq)
    )
    with db.engine.connect() as connection:
        compiled = query.compile(connection, compile_kwargs={"literal_binds": True})
        plan = " ".join(
            str(row[-1]) for row in connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}")
        )

    assert "USING INDEX ix_results_job_id_seq (job_id=? AND seq>? AND seq<?)" in plan
    assert "TEMP B-TREE" not in plan  # no sort: the index gives completion order
