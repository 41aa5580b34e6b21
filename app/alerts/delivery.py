"""The delivery thread: sends the outbox, at least once, each transition under its own key.

Fed by a queue.Queue of nudges ("work may be there": a transition written, a send finished)
and by its own timeout (the periodic scan: retries falling due, reminders, ended maintenance,
rows another replica wrote, claims whose lease ran out). Each round:
1. reads the due rows (a read, no lock), groups them per channel, skipping a channel whose
   previous batch is still being sent (or waits for its time, below);
2. CLAIMS at most `max_batch` rows per channel through the writer (app/alerts/claims.py:
   a conditional UPDATE; only the rows it matched are sent, so two replicas never both send
   one);
3. hands each channel's batch to a small pool, which sends it as ONE message outside any
   transaction and lock, then records the attempt through the writer: sent, due again after a
   backoff (exponential, a Retry-After honoured), or failed past max attempts or age.

Pacing: a channel gets a message at most every `min_interval_s` (Slack allows about one a
second per webhook), counted from the previous message's hand-out and from its answer. In a
burst (a full batch owed) the next batch is claimed as soon as the previous one is SENT (not
once that send is recorded) and waits here, claimed, until the channel's time; a partial
batch is claimed when the time comes, so rows written meanwhile join it. Why: each write
through the writer queues behind every monitor result ahead of it (0.3-5 s on a saturated
2-core machine, measured by bench/alerts_burst.py), so claiming only once the time had come,
after the record, made the period the interval plus two such writes: 1,000 transitions took
~45 s to reach Slack, not the 20 s that 50 a second allows. A claim waits at most half the
lease, so no other deliverer takes it over meanwhile; a stop gives it back.

`stop(timeout)` sets the stop flag (checked between items), waits for sends in flight, and
gives claims not yet sent back (pending: the next start sends them, none twice). A process
killed mid-send leaves its rows `sending`; once the lease passes, any deliverer sends them
again with the same key — the one repeat at-least-once allows, and the receiver can tell.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Connection

from app.alerts import claims, outbox, ticker
from app.alerts.claims import Claimed, Done
from app.alerts.contract import ChannelConfig, Codec, Send
from app.alerts.policy import DeliveryConfig, retry_at
from app.db.engine import Database
from app.db.writer import Writer

log = logging.getLogger("urlhealth.alerts")

T = TypeVar("T")
SCAN_LIMIT = 2000  # due rows read per round
WRITE_TIMEOUT_S = 30.0
ERROR_CHARS = 500


@dataclass(frozen=True, slots=True)
class _Failed:
    """An outcome for a send that could not be made (a bad config, a sender's bug)."""

    error: str
    ok: bool = False
    retryable: bool = False
    status_code: int | None = None
    retry_after_s: float | None = None


class Delivery:
    def __init__(
        self,
        database: Database,
        writer: Writer,
        send: Send,
        codec: Codec,
        http: Any,
        owner: str,
        config: DeliveryConfig = DeliveryConfig(),
        clock: Callable[[], datetime] = outbox.utcnow,
    ) -> None:
        self._database = database
        self._writer = writer
        self._send = send
        self._codec = codec
        self._http = http
        self.owner = owner
        self._config = config
        self._clock = clock
        self._nudges: queue.Queue[None] = queue.Queue()
        self._stopping = threading.Event()
        self._lock = threading.Lock()  # the busy set, pacing times and counters
        self._busy: set[int] = set()  # channels with a batch in flight
        self._next_send: dict[int, float] = {}  # channel -> monotonic time it may send
        # Claimed batches waiting for their channel's time (the delivery thread's own).
        self._waiting: dict[int, tuple[float, ChannelConfig | str, list[Claimed]]] = {}
        self._in_flight: set[Future[None]] = set()
        self.sent: dict[int, int] = defaultdict(int)  # messages per channel
        self.failed: dict[int, int] = defaultdict(int)  # given up per channel
        self._pool = ThreadPoolExecutor(config.workers, thread_name_prefix="alert-send")
        self._thread = threading.Thread(target=self._run, name="alert-delivery", daemon=True)
        self._last_tick = 0.0
        self.rounds = 0  # rounds run: how often the thread looked (no spinning while waiting)

    def start(self) -> Delivery:
        self._thread.start()
        return self

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def nudge(self) -> None:
        """Work may be there: look now rather than at the next scan."""
        if self._nudges.qsize() < 2:  # one waiting is enough to wake the thread
            self._nudges.put_nowait(None)

    def counts(self) -> dict[int, tuple[int, int]]:
        """Messages sent and given up, per channel id, since start (for /metrics)."""
        with self._lock:
            channels = set(self.sent) | set(self.failed)
            return {c: (self.sent.get(c, 0), self.failed.get(c, 0)) for c in channels}

    def stop(self, timeout_s: float = 10.0) -> bool:
        """Stop claiming, wait for sends in flight (up to `timeout_s`), give unsent claims
        back. True if every send in flight finished."""
        self._stopping.set()
        self._nudges.put_nowait(None)
        deadline = time.monotonic() + timeout_s
        if self._thread.ident is not None:
            self._thread.join(timeout_s)
        with self._lock:
            in_flight = set(self._in_flight)
        _, not_done = wait(in_flight, max(0.0, deadline - time.monotonic()))
        self._pool.shutdown(wait=False, cancel_futures=False)
        if not_done:
            log.warning(
                "%d alert sends still in flight at stop: resent after the lease", len(not_done)
            )
        return not not_done

    # --- the thread ----------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self._maybe_tick()
                claimed, wait_s = self._round()
            except Exception:
                log.exception("alert delivery round failed; trying again after a scan")
                claimed, wait_s = False, self._config.scan_interval_s
            if claimed or self._stopping.is_set():
                continue
            with contextlib.suppress(queue.Empty):
                self._nudges.get(timeout=max(0.01, wait_s))
            while True:  # one wake-up for every nudge queued meanwhile
                try:
                    self._nudges.get_nowait()
                except queue.Empty:
                    break
        self._give_back_waiting()

    def _give_back_waiting(self) -> None:
        """Stopping: claims waiting for their channel's time were never sent; pending again."""
        waiting, self._waiting = self._waiting, {}
        ids = [c.id for _, _, batch in waiting.values() for c in batch]
        try:
            if ids:
                self._write(lambda c: claims.release(c, self.owner, ids))
        except Exception:
            log.exception("%d alert claims not given back: resent after the lease", len(ids))
        with self._lock:
            self._busy.difference_update(waiting)

    def _maybe_tick(self) -> None:
        if time.monotonic() - self._last_tick < self._config.scan_interval_s:
            return
        self._last_tick = time.monotonic()
        now = self._clock()
        self._write(lambda c: ticker.tick(c, now))

    def tick(self, now: datetime) -> int:
        """Reminders and maintenance ends at `now`, at once (tests, and the periodic scan)."""
        released = self._write(lambda c: ticker.tick(c, now))
        if released:
            self.nudge()
        return released

    def _round(self) -> tuple[bool, float]:
        """Claim and hand out one round of batches; (claimed any, how long to wait)."""
        self.rounds += 1
        wait_s = self._hand_out_waiting()
        now = self._clock()
        lease = self._config.lease_s
        with self._database.engine.connect() as connection:
            due = claims.due(connection, now, lease, SCAN_LIMIT)
            soonest = claims.next_due(connection)
            configs = claims.channel_configs(connection, list({row.channel_id for row in due}))
        if soonest is not None and soonest > now:  # a retry falling due before the next scan
            wait_s = min(wait_s, (soonest - now).total_seconds())
        # Rows due now but skipped (their channel busy or paced) wake the thread when their
        # batch ends (a nudge) or their channel may send again (below): no spinning meanwhile.
        picked: dict[int, list[int]] = defaultdict(list)
        parsed: dict[int, ChannelConfig | str] = {}
        mono = time.monotonic()
        owed = Counter(row.channel_id for row in due)
        for row in due:
            channel = row.channel_id
            if channel not in parsed:
                parsed[channel] = self._parse(configs.get(channel))
            with self._lock:
                if channel in self._busy:
                    continue
                ready_at = self._next_send.get(channel, 0.0)
            config = parsed[channel]
            limit = config.max_batch if not isinstance(config, str) else 1
            if ready_at > mono:
                # Early only for a full batch (a burst): a partial one waits for the time,
                # so the rows written meanwhile still join it.
                early = self._early_s(config) if owed[channel] >= limit else 0.0
                if ready_at - early > mono:
                    wait_s = min(wait_s, ready_at - early - mono)
                    continue
            if len(picked[channel]) < max(1, limit):
                picked[channel].append(row.id)
        ids = [i for batch in picked.values() for i in batch]
        if not ids or self._stopping.is_set():
            return False, wait_s
        got = self._write(lambda c: claims.claim(c, ids, self.owner, now, lease))
        batches: dict[int, list[Claimed]] = defaultdict(list)
        for row in got:
            batches[row.channel_id].append(row)
        for channel, batch in batches.items():
            with self._lock:
                ready_at = self._next_send.get(channel, 0.0)
                if ready_at > time.monotonic():  # claimed early: wait here for its time
                    self._busy.add(channel)
                    self._waiting[channel] = (ready_at, parsed[channel], batch)
                    continue
            self._hand_out(channel, parsed[channel], batch)
        return bool(got), wait_s

    def _early_s(self, config: ChannelConfig | str) -> float:
        """How long before its channel's time a batch may be claimed: up to the whole
        interval, but at most half the lease (a claim older than that may be taken over)."""
        if isinstance(config, str):
            return 0.0
        return min(config.min_interval_s, self._config.lease_s / 2)

    def _hand_out_waiting(self) -> float:
        """Hand out the waiting batches whose time has come; how long until the next one's
        (at most a scan)."""
        wait_s = self._config.scan_interval_s
        for channel, (ready_at, config, batch) in list(self._waiting.items()):
            left = ready_at - time.monotonic()
            if left > 0:
                wait_s = min(wait_s, left)
                continue
            del self._waiting[channel]
            self._hand_out(channel, config, batch)
        return wait_s

    def _parse(self, raw: dict[str, Any] | None) -> ChannelConfig | str:
        if raw is None:
            return "the channel was deleted"
        try:
            return self._codec.config(raw)
        except Exception as exc:  # a config stored by an older version, say
            return f"the channel's configuration is invalid: {exc}"[:ERROR_CHARS]

    def _hand_out(self, channel: int, config: ChannelConfig | str, batch: list[Claimed]) -> None:
        with self._lock:
            self._busy.add(channel)
            if not isinstance(config, str):
                self._next_send[channel] = time.monotonic() + config.min_interval_s
        future = self._pool.submit(self._deliver, channel, config, batch)
        with self._lock:
            self._in_flight.add(future)
        future.add_done_callback(self._done)

    def _done(self, future: Future[None]) -> None:
        with self._lock:
            self._in_flight.discard(future)
        self.nudge()

    # --- a pool worker: one batch to one channel --------------------------------------------
    def _deliver(self, channel: int, config: ChannelConfig | str, batch: list[Claimed]) -> None:
        freed = False  # the channel given back to the round (once: it may be busy again)
        try:
            if self._stopping.is_set():  # claimed, never sent: give it back
                ids = [c.id for c in batch]
                self._write(lambda c: claims.release(c, self.owner, ids))
                return
            done = self.send_batch(config, batch)
            # Sent: the channel's next batch may be claimed while this one is recorded. Its
            # time counts from this answer too, not only from the hand-out: a send that
            # started late must not bring the next message closer than min_interval_s to
            # the receiver (a strict Slack answers 429).
            with self._lock:
                if not isinstance(config, str):
                    after = time.monotonic() + config.min_interval_s
                    self._next_send[channel] = max(self._next_send.get(channel, 0.0), after)
                self._busy.discard(channel)
                freed = True
            self.nudge()
            self._write(lambda c: claims.finish(c, self.owner, done))
            with self._lock:
                for d in done:
                    if d.ok:
                        self.sent[channel] += 1
                    elif d.retry_at is None:
                        self.failed[channel] += 1
        except Exception:
            log.exception(
                "alert batch for channel %d not recorded: resent after the lease", channel
            )
        finally:
            if not freed:
                with self._lock:
                    self._busy.discard(channel)

    def send_batch(self, config: ChannelConfig | str, batch: list[Claimed]) -> list[Done]:
        """Send `batch` as one message (no database work); what each row's attempt was."""
        started = time.monotonic()
        outcome: Any
        if isinstance(config, str):
            outcome = _Failed(config)
        else:
            try:
                messages = [self._codec.message(c.payload) for c in batch]
                outcome = self._send(config, messages, self._http)
            except Exception as exc:  # senders report receivers' faults; this is a bug's
                log.exception("sending alerts failed")
                outcome = _Failed(f"{type(exc).__name__}: {exc}"[:ERROR_CHARS])
        at = self._clock()
        duration = (time.monotonic() - started) * 1000
        c = self._config
        return [
            Done(
                row.id,
                at,
                bool(outcome.ok),
                bool(outcome.retryable),
                outcome.status_code,
                None if outcome.ok else (outcome.error or "failed")[:ERROR_CHARS],
                duration,
                None
                if outcome.ok or not outcome.retryable
                else retry_at(
                    row.attempts,
                    row.created_at,
                    at,
                    outcome.retry_after_s,
                    c.retry_base_s,
                    c.retry_max_delay_s,
                    c.max_attempts,
                    c.max_age_s,
                ),
            )
            for row in batch
        ]

    def _write(self, fn: Callable[[Connection], T]) -> T:
        return self._writer.submit(fn).result(WRITE_TIMEOUT_S)
