"""The delivery thread against a real webhook receiver on loopback: sent once under the
transition's key, retried with backoff, batched and paced per channel, never twice from two
deliverers, re-sent after a killed sender's lease, and given back on stop."""

from __future__ import annotations

import functools
import itertools
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Connection, select, update

from app.alerts import admin, claims
from app.alerts.claims import Claimed
from app.alerts.delivery import Delivery
from app.alerts.outbox import AlertHook
from app.alerts.policy import retry_at
from app.db.engine import open_database
from app.db.schema import alert_attempts, alert_outbox, maintenance_windows
from app.db.writer import Writer
from app.monitors.recorder import Recorder
from tests.support.alerts import FAST, Receiver, add_channel, add_rule, delivery, record
from tests.support.monitors import HistoryStore, add_monitor, check

DEADLINE_S = 30.0


def wait_for(predicate: Callable[[], bool], timeout_s: float = DEADLINE_S) -> bool:
    pause = threading.Event()
    for _ in range(int(timeout_s / 0.05)):
        if predicate():
            return True
        pause.wait(0.05)
    return predicate()


def outbox_rows(store: HistoryStore) -> list[Any]:
    with store.database.engine.connect() as connection:
        return list(connection.execute(select(alert_outbox).order_by(alert_outbox.c.id)))


def attempts_of(store: HistoryStore, outbox_id: int) -> list[Any]:
    a = alert_attempts.c
    with store.database.engine.connect() as connection:
        query = select(alert_attempts).where(a.outbox_id == outbox_id).order_by(a.id)
        return list(connection.execute(query))


def all_sent(store: HistoryStore) -> Callable[[], bool]:
    return lambda: all(r.status == "sent" for r in outbox_rows(store))


def downs(store: HistoryStore, receiver: Receiver, monitors: int = 1, **channel: Any) -> int:
    """`monitors` monitors confirmed down, alerting one channel to `receiver`; its id."""
    channel_id = add_channel(store.database, store.writer, "Ops", receiver.url, **channel)
    add_rule(store.writer, "all", ["ops"])
    recorder = Recorder(store.writer, on_transition=AlertHook())
    for n in range(monitors):
        record(recorder, add_monitor(store.database, f"m{n}"), ["down"] * 3)
    return channel_id


@contextmanager
def running(*deliveries: Delivery) -> Iterator[None]:
    for d in deliveries:
        d.start()
    try:
        yield
    finally:
        for d in deliveries:
            d.stop(10)


def test_a_down_reaches_the_webhook_once_under_its_key(
    store: HistoryStore, receiver: Receiver, http: httpx.Client
) -> None:
    downs(store, receiver)
    with running(delivery(store.database, store.writer, http, "one")):
        assert wait_for(all_sent(store))
    (row,) = outbox_rows(store)
    assert receiver.accepted_keys() == [row.key]
    assert receiver.requests[0]["keys"] == row.key
    (message,) = receiver.messages()
    assert (message["kind"], message["to_state"], message["monitor_slug"]) == ("down", "down", "m0")
    assert (row.attempts, row.claimed_by, row.last_error) == (1, None, None)
    assert [(a.ok, a.status_code) for a in attempts_of(store, row.id)] == [(True, 200)]


def test_a_receiver_failing_twice_gets_it_on_the_third_attempt(
    store: HistoryStore, http: httpx.Client
) -> None:
    receiver = Receiver(fail_first=2)
    try:
        downs(store, receiver)
        with running(delivery(store.database, store.writer, http, "one")):
            assert wait_for(all_sent(store))
    finally:
        receiver.stop()
    (row,) = outbox_rows(store)
    assert len(receiver.requests) == 3
    assert {r["keys"] for r in receiver.requests} == {row.key}  # the same key each time
    tried = attempts_of(store, row.id)
    assert [(a.ok, a.status_code) for a in tried] == [(False, 500), (False, 500), (True, 200)]
    assert tried[0].error == "status 500"
    assert (row.status, row.attempts, row.last_error) == ("sent", 3, None)


def test_a_receiver_that_keeps_failing_is_given_up_after_max_attempts(
    store: HistoryStore, http: httpx.Client
) -> None:
    receiver = Receiver(fail_first=100)
    try:
        downs(store, receiver)
        config = replace(FAST, max_attempts=3)
        deliverer = delivery(store.database, store.writer, http, "one", config)
        with running(deliverer):
            assert wait_for(lambda: outbox_rows(store)[0].status == "failed")
    finally:
        receiver.stop()
    (row,) = outbox_rows(store)
    assert (row.attempts, row.last_error) == (3, "status 500")
    assert deliverer.counts() == {row.channel_id: (0, 1)}
    assert len(attempts_of(store, row.id)) == 3 == len(receiver.requests)


def test_a_burst_to_one_channel_is_batched_and_paced(
    store: HistoryStore, receiver: Receiver, http: httpx.Client
) -> None:
    downs(store, receiver, monitors=25, max_batch=10, min_interval_s=0.3)
    with running(delivery(store.database, store.writer, http, "one")):
        assert wait_for(all_sent(store))
    assert [len(r["body"]["messages"]) for r in receiver.requests] == [10, 10, 5]
    assert sorted(receiver.accepted_keys()) == sorted(r.key for r in outbox_rows(store))
    arrivals = [r["at"] for r in receiver.requests]
    # Paced: never closer than min_interval_s at the receiver, whatever the jitter (the next
    # message starts min_interval_s after the previous one was answered).
    assert min(b - a for a, b in itertools.pairwise(arrivals)) >= 0.3


def test_a_paced_channels_next_batch_is_claimed_early_and_sent_only_when_its_time_comes(
    store: HistoryStore, receiver: Receiver, http: httpx.Client
) -> None:
    # Claimed while the pacing runs, so the claim's write (behind every queued result in a
    # busy writer) overlaps the wait rather than adding to it; held until the channel's time.
    downs(store, receiver, monitors=20, max_batch=10, min_interval_s=20.0)
    deliverer = delivery(store.database, store.writer, http, "one").start()
    try:
        claimed_early = wait_for(
            lambda: Counter(r.status for r in outbox_rows(store)) == {"sent": 10, "sending": 10},
            timeout_s=10.0,  # well inside the 20 s the second batch must wait
        )
        assert claimed_early
        assert len(receiver.requests) == 1
    finally:
        deliverer.stop(10)
    # Stopped before its time: the waiting batch is given back, its claim undone.
    statuses = Counter((r.status, r.attempts, r.claimed_by) for r in outbox_rows(store))
    assert statuses == {("sent", 1, None): 10, ("pending", 0, None): 10}
    assert len(receiver.requests) == 1


def test_a_paced_channels_partial_batch_is_claimed_only_when_its_time_comes(
    store: HistoryStore, receiver: Receiver, http: httpx.Client
) -> None:
    # Not a burst: the rows written while the channel waits should join its next message.
    downs(store, receiver, monitors=15, max_batch=10, min_interval_s=20.0)
    deliverer = delivery(store.database, store.writer, http, "one").start()
    try:
        assert wait_for(lambda: Counter(r.status for r in outbox_rows(store))["sent"] == 10)
        threading.Event().wait(1.0)  # rounds that must leave the five alone
        statuses = Counter((r.status, r.attempts) for r in outbox_rows(store))
        assert statuses == {("sent", 1): 10, ("pending", 0): 5}
    finally:
        deliverer.stop(10)


@pytest.fixture
def second_writer(
    store: HistoryStore, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Writer]:
    """Another replica's writer: its own connection pool on PostgreSQL; the same database
    and writer on memory:// and SQLite (one process per file), where the claims still race."""
    if store.database.dialect != "postgresql":
        yield store.writer
        return
    database = open_database(store.database.url)
    writer = Writer(database, 0.001, 100_000).start()
    yield writer
    writer.stop(10)
    database.close()


def test_two_deliverers_never_send_one_row_twice(
    store: HistoryStore, receiver: Receiver, http: httpx.Client, second_writer: Writer
) -> None:
    downs(store, receiver, monitors=40, max_batch=3)
    first = delivery(store.database, store.writer, http, "replica-1")
    second = delivery(store.database, second_writer, http, "replica-2")
    with running(first, second):
        assert wait_for(all_sent(store))
    keys = Counter(receiver.accepted_keys())
    assert len(keys) == 40
    assert set(keys.values()) == {1}
    assert {r.attempts for r in outbox_rows(store)} == {1}


def test_a_stale_sending_claim_is_sent_again_under_the_same_key(
    store: HistoryStore, receiver: Receiver, http: httpx.Client
) -> None:
    downs(store, receiver, monitors=2)
    stale, fresh = (r.id for r in outbox_rows(store))
    now = datetime.now(UTC)
    # A sender killed mid-send two leases ago, and one claiming right now (alive).
    lease = FAST.lease_s
    long_ago = now - timedelta(seconds=2 * lease)
    for row_id, owner in ((stale, "killed"), (fresh, "alive")):
        taken = store.writer.submit(
            functools.partial(_claim, row_id=row_id, owner=owner, now=now, lease=lease)
        )
        assert [c.id for c in taken.result(10)] == [row_id]
    set_claimed_at = update(alert_outbox).where(alert_outbox.c.id == stale)
    store.writer.submit(lambda c: c.execute(set_claimed_at.values(claimed_at=long_ago))).result(10)
    with running(delivery(store.database, store.writer, http, "restarted")):
        assert wait_for(lambda: outbox_rows(store)[0].status == "sent")
        threading.Event().wait(3 * FAST.scan_interval_s)  # scans that must leave `fresh`
    rows = outbox_rows(store)
    assert receiver.accepted_keys() == [rows[0].key]
    assert (rows[0].attempts, rows[1].status, rows[1].claimed_by) == (2, "sending", "alive")


def test_stop_waits_for_sends_in_flight_and_gives_back_claims_not_sent(
    store: HistoryStore, http: httpx.Client
) -> None:
    receiver = Receiver(hold=True)
    try:
        for name in ("A", "B"):
            add_channel(store.database, store.writer, name, receiver.url)
        add_rule(store.writer, "both", ["a", "b"])
        recorder = Recorder(store.writer, on_transition=AlertHook())
        record(recorder, add_monitor(store.database, "m"), ["down"] * 3)
        one_worker = replace(FAST, workers=1)
        first = delivery(store.database, store.writer, http, "before", one_worker).start()
        assert receiver.arrived.wait(DEADLINE_S)  # one batch in flight, the other queued
        stopped: list[bool] = []
        stopper = threading.Thread(target=lambda: stopped.append(first.stop(DEADLINE_S)))
        stopper.start()
        assert wait_for(lambda: first.stopping)
        receiver.release.set()
        stopper.join(DEADLINE_S)
        assert stopped == [True]
        statuses = sorted((r.status, r.attempts, r.claimed_by) for r in outbox_rows(store))
        assert statuses == [("pending", 0, None), ("sent", 1, None)]
        with running(delivery(store.database, store.writer, http, "after")):
            assert wait_for(all_sent(store))
        keys = Counter(receiver.accepted_keys())
        assert sorted(keys) == sorted(r.key for r in outbox_rows(store))
        assert set(keys.values()) == {1}
    finally:
        receiver.stop()


def test_backoff_doubles_honours_retry_after_and_ends() -> None:
    t0 = datetime(2026, 12, 1, tzinfo=UTC)

    def at(attempts: int, retry_after: float | None = None, age_s: float = 0) -> float | None:
        now = t0 + timedelta(seconds=age_s)
        when = retry_at(attempts, t0, now, retry_after, 5, 600, 10, 3600)
        return None if when is None else (when - now).total_seconds()

    assert [at(1), at(2), at(3), at(9)] == [5, 10, 20, 600]
    assert at(1, retry_after=30) == 30
    assert at(1, retry_after=1) == 5
    assert at(10) is None  # max attempts
    assert at(1, age_s=3599) is None  # past max age


def test_a_monitor_still_down_when_its_window_ends_alerts_then(
    store: HistoryStore, receiver: Receiver, http: httpx.Client
) -> None:
    add_channel(store.database, store.writer, "Ops", receiver.url)
    add_rule(store.writer, "all", ["ops"])
    m = add_monitor(store.database, "m")
    now = datetime.now(UTC)
    end = now + timedelta(seconds=1.5)
    window = {
        "name": "deploy",
        "monitor_id": m,
        "match_labels": {},
        "starts_at": now - timedelta(hours=1),
        "ends_at": end,
    }
    store.writer.submit(lambda c: admin.add(c, maintenance_windows, window)).result(10)
    recorder = Recorder(store.writer, on_transition=AlertHook())
    for n in range(3):
        at = now - timedelta(minutes=3 - n)
        recorder.submit(m, 1, at, check("down", at=at)).result(10)
    with running(delivery(store.database, store.writer, http, "one")):
        assert wait_for(all_sent(store))
    assert datetime.now(UTC) >= end
    (row,) = outbox_rows(store)
    assert row.sent_at >= end  # held through the window, sent once it ended
    assert receiver.accepted_keys() == [row.key]


def test_a_hanging_receiver_holds_up_only_its_own_channel(
    store: HistoryStore, receiver: Receiver, http: httpx.Client
) -> None:
    hanging = Receiver(hold=True)
    try:
        # One message at a time to the stuck channel: its second row waits, due, behind it.
        add_channel(store.database, store.writer, "Stuck", hanging.url, max_batch=1)
        add_channel(store.database, store.writer, "Fine", receiver.url)
        add_rule(store.writer, "both", ["stuck", "fine"])
        recorder = Recorder(store.writer, on_transition=AlertHook())
        for name in ("m1", "m2"):
            record(recorder, add_monitor(store.database, name), ["down"] * 3)
        deliverer = delivery(store.database, store.writer, http, "one")
        with running(deliverer):
            assert hanging.arrived.wait(DEADLINE_S)
            assert wait_for(lambda: len(receiver.accepted_keys()) == 2)
            before = deliverer.rounds
            threading.Event().wait(1.0)  # the stuck row is due all along: no spinning on it
            assert deliverer.rounds - before <= 1.0 / FAST.scan_interval_s + 3
            hanging.release.set()
            assert wait_for(all_sent(store))
    finally:
        hanging.stop()


def _claim(
    connection: Connection, row_id: int, owner: str, now: datetime, lease: float
) -> list[Claimed]:
    return claims.claim(connection, [row_id], owner, now, lease)
