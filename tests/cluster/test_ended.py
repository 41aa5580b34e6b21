"""The chunk's collector of ended checks (app/cluster/ended.py): a batch at a time."""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future

from app.cluster.ended import Ended


def _futures(n: int) -> list[Future[int]]:
    return [Future() for _ in range(n)]


def test_nothing_ended_returns_empty_after_the_timeout() -> None:
    ended = Ended(_futures(3), batch=10, wait_s=0.01)
    assert ended.take(0.01) == []


def test_a_full_batch_is_taken_at_once() -> None:
    futures = _futures(5)
    ended = Ended(futures, batch=2, wait_s=60.0)
    futures[0].set_result(0)
    futures[1].set_result(1)
    futures[2].set_result(2)
    assert ended.take(60.0) == futures[:3]  # full: no wait for the batch's time


def test_the_last_check_ends_the_wait() -> None:
    futures = _futures(2)
    ended = Ended(futures, batch=100, wait_s=60.0)
    futures[0].set_result(0)
    futures[1].cancel()  # a cancel ends it too
    assert ended.take(60.0) == futures


def test_a_partial_batch_waits_its_time_then_comes_whole() -> None:
    futures = _futures(10)
    ended = Ended(futures, batch=100, wait_s=0.2)
    futures[0].set_result(0)
    later = threading.Timer(0.05, futures[1].set_result, args=(1,))
    later.start()
    began = time.monotonic()
    taken = ended.take(60.0)
    later.join()
    assert taken == futures[:2]
    assert time.monotonic() - began < 30.0  # bounded by the batch's time, not the timeout


def test_a_result_arriving_while_waiting_wakes_the_taker() -> None:
    futures = _futures(3)
    ended = Ended(futures, batch=100, wait_s=0.0)
    threading.Timer(0.05, futures[2].set_result, args=(2,)).start()
    assert ended.take(60.0) == [futures[2]]
    assert ended.take(0.01) == []
