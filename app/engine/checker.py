"""One check of one URL: attempts with backoff, redirects hop by hop, a bounded body read,
phase timings, TLS facts, and the verdict of the expected status and the assertions."""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Literal

import httpx

from app.engine import answers, network, transport
from app.engine.assertions import Observed, evaluate, outcome
from app.engine.failures import classify
from app.engine.headers import first_hop_headers, next_hop_headers
from app.engine.options import CheckOptions, RetryPolicy, format_status_ranges
from app.engine.tlsinfo import tls_info
from app.schemas.assertions import FailedAssertion
from app.schemas.results import (
    Attempt,
    CheckError,
    CheckResult,
    ErrorKind,
    RedirectHop,
    Timings,
    TlsInfo,
)

Verdict = Literal["up", "degraded", "down"]
REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})
# A HEAD the server does not implement is retried once as GET, as curl -I users expect.
HEAD_UNSUPPORTED = frozenset({405, 501})
RETRYABLE_KINDS = frozenset({ErrorKind.TIMEOUT, ErrorKind.CONNECT, ErrorKind.CONNECTION_RESET})


@dataclass(slots=True)
class _Try:
    """What one attempt saw."""

    hops: list[RedirectHop] = field(default_factory=list)
    response: httpx.Response | None = None
    body: answers.Body | None = None  # the final answer's, unless it was a HEAD
    remote_ip: str | None = None
    tls: TlsInfo | None = None
    final: Timings | None = None
    all_hops: Timings = field(default_factory=Timings)
    error: CheckError | None = None
    elapsed_ms: float = 0.0


class Checker:
    """Runs checks on the calling thread through the shared HTTP layer. `stopping` cuts
    retry backoff short when the service shuts down."""

    def __init__(
        self,
        http: transport.HttpLayer,
        retry: RetryPolicy | None = None,
        stopping: threading.Event | None = None,
    ) -> None:
        self._http = http
        self._retry = retry or RetryPolicy()
        self._stopping = stopping or threading.Event()

    def check(
        self, url: str, options: CheckOptions, parsed: httpx.URL | None = None
    ) -> CheckResult:
        """Never raises: every failure becomes a result with an error kind. `parsed` is `url`
        already parsed by httpx, when the caller has it."""
        checked_at = datetime.now(UTC)
        attempts: list[Attempt] = []
        waited = 0.0
        while True:
            attempt = self._attempt(url, parsed, options)
            status = attempt.response.status_code if attempt.response is not None else None
            attempts.append(
                Attempt(
                    attempt=len(attempts) + 1,
                    status_code=status,
                    error=attempt.error,
                    elapsed_ms=attempt.elapsed_ms,
                    waited_ms=round(waited * 1000, 3),
                )
            )
            if len(attempts) > options.retries or not self._retryable(attempt, options):
                break
            waited = self._backoff(len(attempts), attempt.response)
            if self._stopping.wait(waited):
                break
        return self._result(url, options, attempt, attempts, checked_at)

    def _attempt(self, url: str, parsed: httpx.URL | None, options: CheckOptions) -> _Try:
        seen = _Try()
        started = time.monotonic()
        try:
            target = parsed if parsed is not None else httpx.URL(url)
            with self._http.lease(target.host, options.verify_tls) as lane:
                self._fetch(lane, target, options, seen, started + options.timeout_s)
        except Exception as exc:  # a target must never crash a worker: everything is a result
            seen.error = classify(exc)
        if seen.final is not None:  # answered: the network's time, not this thread's
            seen.elapsed_ms = seen.all_hops.total
        else:
            seen.elapsed_ms = round((time.monotonic() - started) * 1000, 3)
        return seen

    def _fetch(
        self,
        lane: transport.Lane,
        url: httpx.URL,
        options: CheckOptions,
        seen: _Try,
        deadline: float,
    ) -> None:
        method: str = options.method
        current = url
        visited = {str(current)}
        keep_body = options.assertions is not None and options.assertions.needs_body
        headers = first_hop_headers(self._http.default_headers, options.headers)
        while True:
            phases = network.Phases()
            with network.check_scope(deadline, phases):
                request = httpx.Request(method, current, headers=headers)
                response = _send(lane, request, phases)
                try:
                    headers_at = time.monotonic()
                    status = response.status_code
                    if method == "HEAD" and status in HEAD_UNSUPPORTED:
                        method = "GET"
                        self._add_hop_time(seen, phases, headers_at, headers_at)
                        continue
                    # Only GET and HEAD are sent, so no redirect code changes the method.
                    if options.follow_redirects and status in REDIRECT_CODES:
                        answers.drain_small(response)
                        self._add_hop_time(seen, phases, headers_at, time.monotonic())
                        target = answers.next_hop(
                            response, seen.hops, visited, options.max_redirects
                        )
                        headers = next_hop_headers(
                            headers,
                            current,
                            target,
                            options.sensitive_headers,
                            options.forward_headers_on_redirect,
                        )
                        current = target
                        continue
                    # Before the body: reading it to the end may close the connection.
                    stream = response.extensions.get("network_stream")
                    seen.remote_ip = _remote_ip(stream)
                    seen.tls = tls_info(stream, verified=options.verify_tls)
                    seen.response = response
                    if method != "HEAD":
                        seen.body = answers.read_body(response, options.max_body_bytes, keep_body)
                    done_at = time.monotonic()
                    seen.final = self._add_hop_time(seen, phases, headers_at, done_at)
                    return
                finally:
                    # Closing an unread body drops that connection instead of draining it.
                    response.close()

    @staticmethod
    def _add_hop_time(
        seen: _Try, phases: network.Phases, headers_at: float, done_at: float
    ) -> Timings:
        """One hop's phases. The answer's times are its bytes' arrival (see Phases), with
        this thread's clock as the fallback; the request's is just before it was sent."""
        first = phases.first_byte if phases.first_byte is not None else headers_at
        last = phases.last_byte if phases.last_byte is not None else done_at
        sent = phases.sent if phases.sent is not None else first
        setup = phases.dns + phases.connect + phases.tls
        ttfb = max(0.0, first - sent)
        transfer = max(0.0, last - first)
        hop = Timings(
            dns=_ms(phases.dns),
            connect=_ms(phases.connect),
            tls=_ms(phases.tls),
            ttfb=_ms(ttfb),
            transfer=_ms(transfer),
            total=_ms(setup + ttfb + transfer),
        )
        total = seen.all_hops
        seen.all_hops = Timings(
            dns=round(total.dns + hop.dns, 3),
            connect=round(total.connect + hop.connect, 3),
            tls=round(total.tls + hop.tls, 3),
            ttfb=round(total.ttfb + hop.ttfb, 3),
            transfer=round(total.transfer + hop.transfer, 3),
            total=round(total.total + hop.total, 3),
        )
        return hop

    def _retryable(self, attempt: _Try, options: CheckOptions) -> bool:
        if attempt.error is not None:
            return attempt.error.kind in RETRYABLE_KINDS
        assert attempt.response is not None
        status = attempt.response.status_code
        return (status == 429 or status >= 500) and not options.status_expected(status)

    def _backoff(self, attempts: int, response: httpx.Response | None) -> float:
        cap = self._retry.max_delay_s
        if response is not None:
            after = _retry_after_s(response.headers.get("Retry-After"))
            if after is not None:
                return min(after, cap)
        return random.uniform(0, min(cap, self._retry.base_s * 2 ** (attempts - 1)))

    def _result(
        self,
        url: str,
        options: CheckOptions,
        attempt: _Try,
        attempts: list[Attempt],
        checked_at: datetime,
    ) -> CheckResult:
        elapsed_ms = round(sum(a.elapsed_ms + a.waited_ms for a in attempts), 3)
        response = attempt.response
        failed: list[FailedAssertion] = []
        error = attempt.error
        verdict: Verdict = "down"
        if response is not None and error is None:
            failed = self._judge(options, attempt, response)
            verdict = outcome(failed)
            if not options.status_expected(response.status_code):
                expected = format_status_ranges(options.expected_status)
                message = f"status {response.status_code} is not in {expected}"
                error = CheckError(kind=ErrorKind.UNEXPECTED_STATUS, message=message)
                verdict = "down"
            elif failed:
                names = ", ".join(f.assertion for f in failed)
                error = CheckError(kind=ErrorKind.ASSERTION_FAILED, message=f"failed: {names}")
        return CheckResult(
            url=url,
            ok=error is None,
            outcome=verdict if error is not None else "up",
            status_code=response.status_code if response is not None else None,
            reason=response.reason_phrase if response is not None else None,
            elapsed_ms=elapsed_ms,
            final_url=str(response.url) if response is not None else None,
            redirects=attempt.hops,
            bytes_read=attempt.body.bytes_read if attempt.body is not None else 0,
            truncated=attempt.body.truncated if attempt.body is not None else False,
            http_version=response.http_version if response is not None else None,
            remote_ip=attempt.remote_ip,
            timings_ms=attempt.final,
            timings_all_hops_ms=attempt.all_hops if attempt.final is not None else None,
            tls=attempt.tls,
            failed_assertions=failed,
            attempts=attempts,
            checked_at=checked_at,
            error=error,
        )

    @staticmethod
    def _judge(
        options: CheckOptions, attempt: _Try, response: httpx.Response
    ) -> list[FailedAssertion]:
        if options.assertions is None:
            return []
        observed = Observed(
            status_code=response.status_code,
            headers=response.headers,
            body=attempt.body.kept if attempt.body is not None else None,
            body_truncated=attempt.body.cut if attempt.body is not None else False,
            latency_ms=attempt.elapsed_ms,
            content_type=response.headers.get("Content-Type"),
            days_left=attempt.tls.days_left if attempt.tls is not None else None,
        )
        return evaluate(options.assertions, observed)


def _send(lane: transport.Lane, request: httpx.Request, phases: network.Phases) -> httpx.Response:
    """Send; if a kept-alive connection turns out dead before any answer, send once more on a
    fresh one, as browsers do for idempotent requests. The server closing an idle connection
    just as it is reused is a race of keep-alive timeouts, not a fault of the target."""
    try:
        return lane.send(request)
    except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as exc:
        reused = phases.connect == 0.0
        if not reused or (isinstance(exc, httpx.RemoteProtocolError) and not _no_answer(exc)):
            raise
    return lane.send(request)


def _no_answer(exc: httpx.RemoteProtocolError) -> bool:
    return "without sending a response" in str(exc)


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


def _remote_ip(stream: object) -> str | None:
    if stream is None:
        return None
    address = stream.get_extra_info("server_addr")  # type: ignore[attr-defined]
    return str(address[0]) if address else None


def _retry_after_s(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def unfinished_result(url: str, kind: ErrorKind, message: str) -> CheckResult:
    """The final result of a check that never ran, or whose run was abandoned."""
    return CheckResult(
        url=url,
        ok=False,
        outcome="down",
        checked_at=datetime.now(UTC),
        error=CheckError(kind=kind, message=message),
    )
