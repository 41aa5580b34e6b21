"""Per-host politeness, measured at the target: at most K checks of one host in flight (and K
connections open) across all jobs, hosts counted separately, checks waiting for a busy host do
not hold a worker, and min_host_interval_s spaces out the requests a host receives."""

from __future__ import annotations

import itertools
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from app.engine.options import CheckOptions
from app.schemas.jobs import JobHeader, JobStatus
from tests.support.engine import Engine, wait_until
from tests.support.servers import RawServer

OPTIONS = CheckOptions(timeout_s=30)
HOLD_S = 0.2


# --- a target that counts what it sees ------------------------------------------------------


class Tally:
    """Counters shared by one or more CountingTargets (so totals across hosts are seen too)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.in_flight = 0
        self.max_in_flight = 0


class CountingTarget:
    """A keep-alive HTTP/1.1 server on a loopback address that counts open connections and
    requests in flight (from the request's arrival until its answer is sent), and records when
    each request arrived. `hold(path)` runs for each request before it is answered."""

    def __init__(
        self,
        hold: Callable[[str], None],
        host: str = "127.0.0.1",
        tally: Tally | None = None,
    ) -> None:
        self._hold = hold
        self.tally = tally or Tally()
        self._lock = threading.Lock()
        self.open = 0
        self.max_open = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.arrivals: list[tuple[float, str]] = []
        self.server = RawServer(self._handle, host=host)

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def connections(self) -> int:
        """Connections accepted so far."""
        return self.server.connections

    def paths(self) -> list[str]:
        with self._lock:
            return [path for _, path in self.arrivals]

    def times(self) -> list[float]:
        with self._lock:
            return [at for at, _ in self.arrivals]

    def _handle(self, conn: socket.socket) -> None:
        with self._lock:
            self.open += 1
            self.max_open = max(self.max_open, self.open)
        try:
            buffered = b""
            while True:
                while b"\r\n\r\n" not in buffered:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    buffered += chunk
                head, _, buffered = buffered.partition(b"\r\n\r\n")
                path = head.split(b" ", 2)[1].decode()
                self._arrive(path)
                try:
                    self._hold(path)
                finally:
                    self._leave()  # before answering: the client may send its next at once
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        finally:
            with self._lock:
                self.open -= 1
            conn.close()

    def _arrive(self, path: str) -> None:
        with self._lock:
            self.arrivals.append((time.monotonic(), path))
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        with self.tally.lock:
            self.tally.in_flight += 1
            self.tally.max_in_flight = max(self.tally.max_in_flight, self.tally.in_flight)

    def _leave(self) -> None:
        with self._lock:
            self.in_flight -= 1
        with self.tally.lock:
            self.tally.in_flight -= 1

    def stop(self) -> None:
        self.server.stop()


def sleep_for(seconds: float) -> Callable[[str], None]:
    def hold(path: str) -> None:
        threading.Event().wait(seconds)

    return hold


def answer_at_once(path: str) -> None:
    return None


@pytest.fixture
def targets() -> Iterator[Callable[..., CountingTarget]]:
    started: list[CountingTarget] = []

    def start(
        hold: Callable[[str], None], host: str = "127.0.0.1", tally: Tally | None = None
    ) -> CountingTarget:
        target = CountingTarget(hold, host, tally)
        started.append(target)
        return target

    yield start
    for target in started:
        target.stop()


def assert_all_up(engine: Engine, *jobs: JobHeader) -> None:
    for job in jobs:
        header = engine.wait_final(job.id)
        assert header.status is JobStatus.DONE
        assert header.summary.up == header.total, header.summary


# --- at most K per host ---------------------------------------------------------------------


def test_checks_of_one_host_never_exceed_k_in_flight_or_k_open_connections_across_jobs(
    engine_factory: Callable[..., Engine], targets: Callable[..., CountingTarget]
) -> None:
    k = 3
    target = targets(sleep_for(HOLD_S))
    engine = engine_factory(workers=16, max_per_host=k)
    first = engine.submit([f"{target.url}/first/{n}" for n in range(20)])
    second = engine.submit([f"{target.url}/second/{n}" for n in range(20)])
    assert_all_up(engine, first, second)
    assert len(target.paths()) == 40
    # 16 workers and 40 checks ready: only the per-host limit keeps this at K, and with every
    # request held 200 ms the limit is reached, not just respected.
    assert target.max_in_flight == k
    # One leased client per running check, each with its own connection; a client handed
    # back keeps its connection alive for the next check of the host, so none is opened
    # beyond those K.
    assert target.max_open <= k
    assert target.connections <= k


def test_synchronous_checks_share_the_per_host_limit_with_jobs(
    engine_factory: Callable[..., Engine], targets: Callable[..., CountingTarget]
) -> None:
    k = 2
    target = targets(sleep_for(HOLD_S))
    engine = engine_factory(workers=16, max_per_host=k)
    job = engine.submit([f"{target.url}/job/{n}" for n in range(6)])
    futures = engine.dispatcher.check_now([f"{target.url}/now/{n}" for n in range(6)], OPTIONS)
    assert all(future.result(timeout=20).ok for future in futures)
    assert_all_up(engine, job)
    assert target.max_in_flight == k
    assert target.max_open <= k


def test_two_hosts_each_get_their_own_k_slots_at_once(
    engine_factory: Callable[..., Engine], targets: Callable[..., CountingTarget]
) -> None:
    # 127.0.0.1 and 127.0.0.2 are different hosts. Every request is held until 2K requests
    # are in flight over both (or 5 s pass): K per host reaches 2K at once, a limit shared
    # by the two hosts would stall at K and fail.
    k = 3
    tally = Tally()
    all_in = threading.Event()

    def hold(path: str) -> None:
        with tally.lock:
            if tally.in_flight >= 2 * k:
                all_in.set()
        all_in.wait(5)

    one = targets(hold, "127.0.0.1", tally)
    two = targets(hold, "127.0.0.2", tally)
    engine = engine_factory(workers=16, max_per_host=k)
    urls = [url for n in range(8) for url in (f"{one.url}/{n}", f"{two.url}/{n}")]
    job = engine.submit(urls)
    assert_all_up(engine, job)
    assert all_in.is_set(), f"at most {tally.max_in_flight} requests were ever in flight"
    assert tally.max_in_flight == 2 * k
    assert one.max_in_flight <= k
    assert two.max_in_flight <= k


# --- waiting for a host holds no worker -----------------------------------------------------


@pytest.mark.parametrize("layout", ["one job", "a second job"])
def test_checks_waiting_for_a_busy_host_do_not_starve_other_hosts_of_workers(
    engine_factory: Callable[..., Engine], targets: Callable[..., CountingTarget], layout: str
) -> None:
    # Two workers, one slot per host. Host A answers only when the test says so; host B at
    # once. A's first check holds one worker; its other five wait for A's slot. Were they
    # waiting in workers, B's checks (submitted after A's) would queue behind all of A's.
    release_a = threading.Event()

    def until_released(path: str) -> None:
        release_a.wait(20)

    slow = targets(until_released, "127.0.0.1")
    fast = targets(answer_at_once, "127.0.0.2")
    engine = engine_factory(workers=2, max_per_host=1)
    a_urls = [f"{slow.url}/a/{n}" for n in range(6)]
    b_urls = [f"{fast.url}/b/{n}" for n in range(4)]
    try:
        if layout == "one job":
            job_a = job_b = engine.submit([*a_urls, *b_urls])
            assert wait_until(lambda: engine.recorded(job_b.id) >= 4), "B's checks never finished"
            assert [result.url for result in engine.results(job_b.id)][:4] == b_urls
        else:
            job_a = engine.submit(a_urls)
            assert wait_until(lambda: slow.in_flight == 1)
            job_b = engine.submit(b_urls)
            assert engine.wait_final(job_b.id).status is JobStatus.DONE
        # All of B is done while A is still on its first request, the rest of A waiting.
        assert engine.recorded(job_a.id) == (4 if job_a is job_b else 0)
        assert slow.paths() == ["/a/0"]
        assert fast.paths() == ["/b/0", "/b/1", "/b/2", "/b/3"]
    finally:
        release_a.set()
    assert_all_up(engine, *([job_a] if job_a is job_b else [job_a, job_b]))
    assert slow.paths() == [f"/a/{n}" for n in range(6)]  # FIFO within the host
    assert slow.max_in_flight == 1


# --- spacing between the starts of a host's checks ------------------------------------------


def gaps(times: list[float]) -> list[float]:
    return [round(later - earlier, 3) for earlier, later in itertools.pairwise(times)]


def test_min_host_interval_spaces_the_requests_a_host_receives(
    engine_factory: Callable[..., Engine], targets: Callable[..., CountingTarget]
) -> None:
    interval = 0.3
    target = targets(answer_at_once)
    engine = engine_factory(workers=8, max_per_host=8, min_host_interval_s=interval)
    job = engine.submit([f"{target.url}/{n}" for n in range(5)])
    assert_all_up(engine, job)
    arrived = target.times()
    assert len(arrived) == 5
    # Eight slots are free, yet the requests arrive one interval apart (a little tolerance
    # for the time between a check's start and its request reaching the server).
    assert min(gaps(arrived)) >= interval - 0.05, gaps(arrived)


def test_min_host_interval_is_kept_per_host(
    engine_factory: Callable[..., Engine], targets: Callable[..., CountingTarget]
) -> None:
    interval = 1.0
    one = targets(answer_at_once, "127.0.0.1")
    two = targets(answer_at_once, "127.0.0.2")
    engine = engine_factory(workers=8, max_per_host=8, min_host_interval_s=interval)
    job = engine.submit([f"{one.url}/1", f"{one.url}/2", f"{two.url}/1", f"{two.url}/2"])
    assert_all_up(engine, job)
    first_one, second_one = one.times()
    first_two, second_two = two.times()
    # Each host's second request waits its interval; the other host's first one does not.
    assert second_one - first_one >= interval - 0.05
    assert second_two - first_two >= interval - 0.05
    assert max(first_one, first_two) < min(second_one, second_two)


def test_cancelled_checks_do_not_use_up_a_hosts_spacing(
    engine_factory: Callable[..., Engine], targets: Callable[..., CountingTarget]
) -> None:
    # A job of eight checks of one host is cancelled after its first request; a new check of
    # that host must wait one interval, not one interval per cancelled check (3.5 s more).
    interval = 0.5
    target = targets(answer_at_once)
    engine = engine_factory(workers=4, max_per_host=4, min_host_interval_s=interval)
    cancelled = engine.submit([f"{target.url}/old/{n}" for n in range(8)])
    assert wait_until(lambda: len(target.paths()) == 1)
    engine.dispatcher.cancel(cancelled.id)
    later = engine.submit([f"{target.url}/new"])
    assert wait_until(lambda: engine.recorded(later.id) == 1, timeout=15)
    assert target.paths() == ["/old/0", "/new"]
    first, new = target.times()
    assert new - first < 3 * interval, f"the new check waited {new - first:.1f} s"
