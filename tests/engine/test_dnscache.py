"""SharedResolver: one lookup per name, a bounded share of slots per job, answers kept a while.

The inner resolver is a stand-in that blocks on an Event (bounded) and counts its calls: no
real DNS server can be pointed at without leaving loopback. No name reaches getaddrinfo.
"""

from __future__ import annotations

import contextlib
import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from ipaddress import IPv4Address, ip_address

import pytest

from app.engine.dnscache import SharedResolver, lookup_owner
from app.engine.failures import CheckFailure
from app.engine.policy import DestinationPolicy
from app.engine.resolver import IPAddress, ResolveError, ResolveTimeout, StaticResolver
from app.engine.transport import HttpLayer
from app.schemas.results import ErrorKind
from tests.support.engine import wait_until

ANSWER = [IPv4Address("93.184.216.34")]


class SlowInner:
    """Names starting "slow" answer once `released` is set (at most 30 s); "missing" names fail;
    "stuck" names time out; others answer at once. Counts calls per name."""

    def __init__(self) -> None:
        self.released = threading.Event()
        self._lock = threading.Lock()
        self.calls: Counter[str] = Counter()
        self.timeouts: list[float] = []

    def resolve(self, host: str, port: int, timeout: float) -> list[IPAddress]:
        with self._lock:
            self.calls[host] += 1
            self.timeouts.append(timeout)
        if any(c == ":" for c in host) or host.replace(".", "").isdigit():
            return [ip_address(host)]
        if host.startswith("slow"):
            self.released.wait(30)
        if host.startswith("missing"):
            raise ResolveError(f"cannot resolve {host!r}: no such name")
        if host.startswith("stuck"):
            raise ResolveTimeout(f"resolving {host!r} took longer than {timeout:g}s")
        return list(ANSWER)

    def total(self) -> int:
        with self._lock:
            return sum(self.calls.values())


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def inner() -> Iterator[SlowInner]:
    stand_in = SlowInner()
    yield stand_in
    stand_in.released.set()  # no lookup thread outlives the test for long


def start_in_background(resolver: SharedResolver, owner: str, host: str, timeout: float) -> None:
    def run() -> None:
        # A caller that gives up leaves its lookup running.
        with lookup_owner(owner), contextlib.suppress(ResolveTimeout):
            resolver.resolve(host, 80, timeout)

    threading.Thread(target=run, daemon=True).start()


# -- fairness --------------------------------------------------------------------------------


def test_one_jobs_40_slow_names_leave_lookups_for_another_job(inner: SlowInner) -> None:
    resolver = SharedResolver(inner, max_in_flight=32, per_owner=8)
    for n in range(40):
        start_in_background(resolver, "job-a", f"slow-{n}.test", 20.0)
    assert wait_until(lambda: inner.total() == 8)
    assert resolver.stats().lookups_in_flight == 8

    with lookup_owner("job-b"):
        assert resolver.resolve("quick.test", 80, 5.0) == ANSWER
    assert inner.calls["quick.test"] == 1
    # Job A's other 32 names waited for its own slots; none reached the inner resolver.
    assert sum(inner.calls[f"slow-{n}.test"] for n in range(40)) == 8


def test_a_job_over_its_share_waits_within_its_timeout_then_gets_a_slot(inner: SlowInner) -> None:
    resolver = SharedResolver(inner, max_in_flight=32, per_owner=2)
    for n in range(2):
        start_in_background(resolver, "job-a", f"slow-{n}.test", 20.0)
    assert wait_until(lambda: resolver.stats().lookups_in_flight == 2)

    with lookup_owner("job-a"), pytest.raises(ResolveTimeout, match="no lookup slot"):
        resolver.resolve("other.test", 80, 0.2)
    inner.released.set()
    with lookup_owner("job-a"):
        assert resolver.resolve("other.test", 80, 10.0) == ANSWER


def test_a_slot_stays_held_until_the_lookup_ends_though_its_caller_gave_up(
    inner: SlowInner,
) -> None:
    # Otherwise a job whose checks time out could start lookups without end.
    resolver = SharedResolver(inner, max_in_flight=32, per_owner=1)
    with lookup_owner("job-a"), pytest.raises(ResolveTimeout, match="took longer than"):
        resolver.resolve("slow.test", 80, 0.1)
    with lookup_owner("job-a"), pytest.raises(ResolveTimeout, match="no lookup slot"):
        resolver.resolve("next.test", 80, 0.2)
    assert inner.calls["next.test"] == 0
    assert wait_until(
        lambda: inner.timeouts == [120.0]
    )  # the lookup's own bound, not the impatient caller's


def test_all_slots_together_are_bounded(inner: SlowInner) -> None:
    resolver = SharedResolver(inner, max_in_flight=3, per_owner=2)
    start_in_background(resolver, "job-a", "slow-a1.test", 20.0)
    start_in_background(resolver, "job-a", "slow-a2.test", 20.0)
    start_in_background(resolver, "job-b", "slow-b1.test", 20.0)
    assert wait_until(lambda: resolver.stats().lookups_in_flight == 3)

    with lookup_owner("job-c"), pytest.raises(ResolveTimeout, match="no lookup slot"):
        resolver.resolve("quick.test", 80, 0.2)


def test_ip_literals_go_straight_to_the_inner_resolver_without_a_slot(inner: SlowInner) -> None:
    resolver = SharedResolver(inner, max_in_flight=1, per_owner=1)
    start_in_background(resolver, "job-a", "slow.test", 20.0)
    assert wait_until(lambda: resolver.stats().lookups_in_flight == 1)
    with lookup_owner("job-a"):
        assert resolver.resolve("::1", 80, 0.1) == [ip_address("::1")]
        assert resolver.resolve("::1", 80, 0.1) == [ip_address("::1")]
    assert inner.calls["::1"] == 2  # and not kept: there is nothing to save
    assert resolver.stats().cached_names == 0


# -- one lookup per name ----------------------------------------------------------------------


def test_concurrent_lookups_of_one_name_share_one_flight(inner: SlowInner) -> None:
    resolver = SharedResolver(inner, ttl_s=0)  # nothing kept: the sharing alone
    with ThreadPoolExecutor(max_workers=100) as pool:
        futures = [pool.submit(resolver.resolve, "slow.test", 80, 20.0) for _ in range(100)]
        assert wait_until(lambda: resolver.stats().callers_waiting == 99)
        inner.released.set()
        assert all(future.result(timeout=20) == ANSWER for future in futures)
    assert inner.calls == {"slow.test": 1}
    assert resolver.stats().lookups_in_flight == 0


def test_1000_concurrent_resolves_of_one_name_make_one_lookup(inner: SlowInner) -> None:
    resolver = SharedResolver(inner)
    names = ["slow.test", "SLOW.test", "slow.test."]  # one name, as DNS sees it
    with ThreadPoolExecutor(max_workers=50) as pool:
        futures = [pool.submit(resolver.resolve, names[n % 3], 80, 30.0) for n in range(1000)]
        assert wait_until(lambda: resolver.stats().callers_waiting == 49)
        inner.released.set()
        assert all(future.result(timeout=30) == ANSWER for future in futures)
    assert inner.total() == 1


def test_a_follower_waits_only_within_its_own_timeout(inner: SlowInner) -> None:
    resolver = SharedResolver(inner)
    start_in_background(resolver, "job-a", "slow.test", 20.0)
    assert wait_until(lambda: resolver.stats().lookups_in_flight == 1)
    with lookup_owner("job-b"), pytest.raises(ResolveTimeout, match=r"took longer than 0\.2s"):
        resolver.resolve("slow.test", 80, 0.2)
    inner.released.set()
    with lookup_owner("job-b"):
        assert resolver.resolve("slow.test", 80, 10.0) == ANSWER
    assert inner.calls == {"slow.test": 1}


def test_followers_of_a_failed_lookup_each_get_their_own_error(inner: SlowInner) -> None:
    resolver = SharedResolver(inner)
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = [pool.submit(resolver.resolve, "missing.test", 80, 5.0) for _ in range(2)]
        errors = [future.exception(timeout=10) for future in futures]
    assert all(isinstance(error, ResolveError) for error in errors)
    assert errors[0] is not errors[1]


# -- the cache --------------------------------------------------------------------------------


def test_answers_are_kept_for_the_ttl_then_looked_up_again(inner: SlowInner) -> None:
    clock = Clock()
    resolver = SharedResolver(inner, ttl_s=30.0, clock=clock)
    assert resolver.resolve("a.test", 80, 1.0) == ANSWER
    clock.now += 29.9
    assert resolver.resolve("A.Test.", 443, 1.0) == ANSWER
    assert inner.calls["a.test"] == 1
    clock.now += 0.2
    assert resolver.resolve("a.test", 80, 1.0) == ANSWER
    assert inner.calls["a.test"] == 2


def test_failures_are_kept_for_the_shorter_negative_ttl(inner: SlowInner) -> None:
    clock = Clock()
    resolver = SharedResolver(inner, ttl_s=30.0, negative_ttl_s=5.0, clock=clock)
    for _ in range(3):
        with pytest.raises(ResolveError, match="no such name"):
            resolver.resolve("missing.test", 80, 1.0)
    assert inner.calls["missing.test"] == 1
    clock.now += 5.1
    with pytest.raises(ResolveError):
        resolver.resolve("missing.test", 80, 1.0)
    assert inner.calls["missing.test"] == 2


def test_timeouts_and_empty_answers_are_not_kept(inner: SlowInner) -> None:
    resolver = SharedResolver(inner)
    for _ in range(2):
        with pytest.raises(ResolveTimeout):
            resolver.resolve("stuck.test", 80, 1.0)
    assert inner.calls["stuck.test"] == 2
    empty = SharedResolver(StaticResolver({"empty.test": []}))
    assert empty.resolve("empty.test", 80, 1.0) == []
    assert empty.stats().cached_names == 0


def test_the_cache_keeps_at_most_max_names_least_recently_used_out_first(
    inner: SlowInner,
) -> None:
    resolver = SharedResolver(inner, max_names=2)
    for host in ["a.test", "b.test", "a.test", "c.test"]:
        resolver.resolve(host, 80, 1.0)
    assert resolver.stats().cached_names == 2
    resolver.resolve("a.test", 80, 1.0)
    assert inner.calls["a.test"] == 1
    resolver.resolve("b.test", 80, 1.0)
    assert inner.calls["b.test"] == 2


def test_a_cached_answer_of_a_blocked_address_is_refused_at_every_connect() -> None:
    # A cache of answers is not a cache of verdicts.
    static = StaticResolver({"private.test": ["10.0.0.1"]})
    http = HttpLayer("test-agent", DestinationPolicy(), SharedResolver(static))
    for _ in range(3):
        with pytest.raises(CheckFailure) as refused:
            http.backend.connect_tcp("private.test", 80, timeout=5.0)
        assert refused.value.kind is ErrorKind.BLOCKED
        assert "private (10.0.0.0/8)" in str(refused.value)
    assert static.calls == ["private.test"]
    http.close()


def test_bounds_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        SharedResolver(StaticResolver({}), per_owner=0)
