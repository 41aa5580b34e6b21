"""Name resolution shared fairly between jobs: one lookup per name at a time, a bounded share
of the lookup slots per job, and answers kept for a fixed time.

Without it, one job of 40 names that take 10 s to resolve holds every lookup slot and every
other job's checks fail with "timed out resolving". :class:`SharedResolver` wraps any
:class:`~app.engine.resolver.Resolver`:

- Single flight: concurrent lookups of one name share one in-flight lookup, so a name never
  holds more than one slot, and 1,000 checks of one name make one lookup.
- Per-owner bound: the owner (a job, or the synchronous API as a whole) whose check starts a
  lookup holds its slot until that lookup really finishes, even if the caller gave up; an
  owner holds at most ``per_owner`` of the ``max_in_flight`` slots. Waiting for a slot, or for
  a lookup started by someone else, stays bounded by each caller's own timeout.
- Cache: answers for ``ttl_s`` (getaddrinfo exposes no TTL, so a fixed time), failures
  (:class:`ResolveError`: no such name, no addresses) for the shorter ``negative_ttl_s``.
  Timeouts are not cached: they say nothing about the name, only that DNS was slow once.
  At most ``max_names`` names are kept, least recently used first out.

Answers are cached, verdicts are not: the destination policy judges every address of every
answer at every connect (network.CheckBackend), so a cached answer can never let a check
through that a fresh one would not.
"""

from __future__ import annotations

import copy
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from ipaddress import ip_address

from app.engine.resolver import IPAddress, ResolveError, Resolver, ResolveTimeout

__all__ = ["SYNC_OWNER", "ResolverStats", "SharedResolver", "lookup_owner"]

# Checks outside any job (the synchronous API) share one owner: one bounded share for all of
# them, so they cannot together take every slot from the jobs either.
SYNC_OWNER = "synchronous API"

_owner: ContextVar[Hashable] = ContextVar("urlhealth_dns_owner", default=SYNC_OWNER)


@contextmanager
def lookup_owner(owner: Hashable) -> Iterator[None]:
    """Lookups made by this thread inside the block count against `owner`'s slots."""
    token = _owner.set(owner)
    try:
        yield
    finally:
        _owner.reset(token)


@dataclass(frozen=True, slots=True)
class ResolverStats:
    lookups_in_flight: int
    callers_waiting: int  # on a lookup started by an earlier caller of the same name
    cached_names: int


@dataclass(slots=True, eq=False)
class _Flight:
    owner: Hashable
    done: threading.Event = field(default_factory=threading.Event)
    answers: list[IPAddress] | None = None
    error: Exception | None = None
    waiters: int = 0


@dataclass(frozen=True, slots=True)
class _Entry:
    expires: float
    answers: tuple[IPAddress, ...]
    failure: str | None  # a ResolveError's message; answers is then empty


class SharedResolver:
    def __init__(
        self,
        inner: Resolver,
        max_in_flight: int = 32,
        per_owner: int = 8,
        ttl_s: float = 30.0,
        negative_ttl_s: float = 5.0,
        max_names: int = 10_000,
        lookup_timeout_s: float = 120.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_in_flight < 1 or per_owner < 1 or max_names < 1:
            raise ValueError("max_in_flight, per_owner and max_names must be at least 1")
        self._inner = inner
        self.max_in_flight = max_in_flight
        self.per_owner = min(per_owner, max_in_flight)
        self._ttl_s = ttl_s
        self._negative_ttl_s = negative_ttl_s
        self._max_names = max_names
        # The inner lookup's own bound: past the longest any caller waits, so it only ends
        # a lookup nobody waits for any more (getaddrinfo itself gives up well before).
        self._lookup_timeout_s = lookup_timeout_s
        self._clock = clock
        self._changed = threading.Condition(threading.Lock())
        self._cache: OrderedDict[str, _Entry] = OrderedDict()
        self._flights: dict[str, _Flight] = {}
        self._held: Counter[Hashable] = Counter()

    def resolve(self, host: str, port: int, timeout: float) -> list[IPAddress]:
        if _is_literal(host):
            return self._inner.resolve(host, port, timeout)  # nothing to look up or share
        key = host.lower().removesuffix(".")
        owner = _owner.get()
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                entry = self._cached(key)
                if entry is not None:
                    if entry.failure is not None:
                        raise ResolveError(entry.failure)
                    return list(entry.answers)
                flight = self._flights.get(key)
                if flight is not None:
                    flight.waiters += 1
                    leader = False
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise ResolveTimeout(
                        f"resolving {host!r}: no lookup slot free within {timeout:g}s"
                    )
                if len(self._flights) < self.max_in_flight and self._held[owner] < self.per_owner:
                    flight = self._flights[key] = _Flight(owner)
                    self._held[owner] += 1
                    leader = True
                    break
                self._changed.wait(remaining)
        if leader:
            self._start(key, host, port, flight)
        try:
            if not flight.done.wait(max(0.0, deadline - time.monotonic())):
                raise ResolveTimeout(f"resolving {host!r} took longer than {timeout:g}s")
        finally:
            if not leader:
                with self._changed:
                    flight.waiters -= 1
        if flight.error is not None:
            # A fresh copy per caller: raising one shared instance from many threads would
            # splice their tracebacks together.
            raise copy.copy(flight.error) from flight.error
        assert flight.answers is not None
        return list(flight.answers)

    def stats(self) -> ResolverStats:
        with self._changed:
            waiting = sum(flight.waiters for flight in self._flights.values())
            return ResolverStats(len(self._flights), waiting, len(self._cache))

    def _cached(self, key: str) -> _Entry | None:
        entry = self._cache.get(key)
        if entry is None:
            return None
        if entry.expires <= self._clock():
            del self._cache[key]
            return None
        self._cache.move_to_end(key)
        return entry

    def _start(self, key: str, host: str, port: int, flight: _Flight) -> None:
        # A thread of its own, not the caller's: the caller may give up at its deadline,
        # but the slot stays held, and the answer is still wanted, until the lookup ends.
        try:
            threading.Thread(
                target=self._run,
                args=(key, host, port, flight),
                name="urlhealth-dns-flight",
                daemon=True,
            ).start()
        except BaseException as exc:
            self._finish(key, flight, None, RuntimeError(f"cannot start a lookup: {exc}"))
            raise

    def _run(self, key: str, host: str, port: int, flight: _Flight) -> None:
        answers: list[IPAddress] | None = None
        error: Exception | None = None
        try:
            answers = self._inner.resolve(host, port, self._lookup_timeout_s)
        except Exception as exc:
            error = exc
        self._finish(key, flight, answers, error)

    def _finish(
        self, key: str, flight: _Flight, answers: list[IPAddress] | None, error: Exception | None
    ) -> None:
        now = self._clock()
        entry: _Entry | None = None
        if isinstance(error, ResolveError):
            entry = _Entry(now + self._negative_ttl_s, (), str(error))
        elif error is None and answers:
            entry = _Entry(now + self._ttl_s, tuple(answers), None)
        # An empty answer is denied by the policy; like a timeout, it is not kept.
        flight.answers, flight.error = answers, error
        with self._changed:
            del self._flights[key]
            self._held[flight.owner] -= 1
            if self._held[flight.owner] <= 0:
                del self._held[flight.owner]
            if entry is not None and entry.expires > now:
                self._cache[key] = entry
                self._cache.move_to_end(key)
                while len(self._cache) > self._max_names:
                    self._cache.popitem(last=False)
            self._changed.notify_all()
        flight.done.set()


def _is_literal(host: str) -> bool:
    try:
        ip_address(host)
    except ValueError:
        return False
    return True
