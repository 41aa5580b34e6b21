"""The worker's side of a call, on a real PostgreSQL, without processes: a call runs once,
only while its caller waits, and its reply (or error) is what the caller reads."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import insert, select

from app.cluster.calls import Calls, Refused, Reply
from app.cluster.replica import Replica
from app.db.engine import Database
from app.db.schema import cluster_calls

CALL = "c" * 32


@pytest.fixture
def database(migrated: Database) -> Database:
    return migrated


@pytest.fixture
def calls(database: Database) -> Calls:
    """A worker's calls, never started: `_run` is what the queue would call."""
    replica = Replica.build(database.url, "worker", 6.0, 2, ("urlhealth_calls",))
    return Calls(database, replica)


def _waiting(database: Database, call_id: str = CALL) -> None:
    with database.write_engine.begin() as connection:
        connection.execute(
            insert(cluster_calls).values(id=call_id, kind="echo", created_at=datetime.now(UTC))
        )


def _row(database: Database, call_id: str = CALL) -> Any:
    with database.engine.connect() as connection:
        found = select(cluster_calls).where(cluster_calls.c.id == call_id)
        return connection.execute(found).first()


def test_a_call_runs_once_and_its_reply_is_stored(database: Database, calls: Calls) -> None:
    seen: list[dict[str, Any]] = []

    def echo(arguments: dict[str, Any]) -> Reply:
        seen.append(arguments)
        return Reply(200, b"pong", "text/plain", {"X-Seen": "1"})

    calls.handle("echo", echo)
    _waiting(database)

    calls._run(CALL, "echo", json.dumps({"ping": 1}))
    calls._run(CALL, "echo", json.dumps({"ping": 2}))  # a retried task finds it taken

    assert seen == [{"ping": 1}]
    row = _row(database)
    assert (row.status, row.body, row.media_type, row.headers, row.detail) == (
        200,
        b"pong",
        "text/plain",
        {"X-Seen": "1"},
        None,
    )
    assert row.taken_by == calls._replica.name


def test_a_call_whose_caller_gave_up_does_not_run(database: Database, calls: Calls) -> None:
    seen: list[dict[str, Any]] = []

    def echo(arguments: dict[str, Any]) -> Reply:
        seen.append(arguments)
        return Reply(200)

    calls.handle("echo", echo)

    calls._run(CALL, "echo", "{}")  # no row: the caller deleted it

    assert seen == []
    assert _row(database) is None


def test_refusals_and_bugs_are_stored_as_the_api_answers_them(
    database: Database, calls: Calls
) -> None:
    def refuse(arguments: dict[str, Any]) -> Reply:
        raise Refused(429, "too many checks in progress: full", {"Retry-After": "1"})

    def bug(arguments: dict[str, Any]) -> Reply:
        raise ValueError("a bug")

    calls.handle("refuse", refuse)
    calls.handle("bug", bug)
    _waiting(database, "a" * 32)
    _waiting(database, "b" * 32)

    calls._run("a" * 32, "refuse", "{}")
    calls._run("b" * 32, "bug", "{}")

    refused, failed = _row(database, "a" * 32), _row(database, "b" * 32)
    assert (refused.status, refused.detail, refused.headers) == (
        429,
        "too many checks in progress: full",
        {"Retry-After": "1"},
    )
    assert (failed.status, failed.detail) == (500, "internal error: ValueError")
