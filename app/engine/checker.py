"""One check of one URL: follow redirects hop by hop, read a bounded body, judge the answer."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import httpx

from app.engine import transport
from app.engine.failures import CheckFailure, classify
from app.engine.options import CheckOptions
from app.schemas.results import CheckError, CheckResult, ErrorKind, RedirectHop

REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})
# A HEAD the server does not implement is retried once as GET, as browsers and curl -I users expect.
HEAD_UNSUPPORTED = frozenset({405, 501})


class _Answer:
    __slots__ = ("bytes_read", "http_version", "reason", "status_code", "truncated", "url")

    def __init__(self, response: httpx.Response, bytes_read: int, truncated: bool) -> None:
        self.url = str(response.url)
        self.status_code = response.status_code
        self.reason = response.reason_phrase
        self.http_version = response.http_version
        self.bytes_read = bytes_read
        self.truncated = truncated


class Checker:
    """Runs checks on the calling thread through the shared HTTP layer."""

    def __init__(self, http: transport.HttpLayer) -> None:
        self._http = http

    def check(self, url: str, options: CheckOptions) -> CheckResult:
        """Never raises: every failure becomes a result with an error kind."""
        checked_at = datetime.now(UTC)
        started = time.monotonic()
        hops: list[RedirectHop] = []
        answer: _Answer | None = None
        error: CheckError | None
        try:
            with transport.deadline(started + options.timeout_s):
                answer = self._fetch(url, options, hops)
            error = None
            if not options.status_expected(answer.status_code):
                error = CheckError(
                    kind=ErrorKind.UNEXPECTED_STATUS,
                    message=f"status {answer.status_code} is not in {_ranges(options)}",
                )
        except Exception as exc:  # a target must never crash a worker: everything is a result
            error = classify(exc)
        elapsed_ms = round((time.monotonic() - started) * 1000, 3)
        return CheckResult(
            url=url,
            ok=error is None,
            outcome="up" if error is None else "down",
            status_code=answer.status_code if answer else None,
            reason=answer.reason if answer else None,
            elapsed_ms=elapsed_ms,
            final_url=answer.url if answer else None,
            redirects=hops,
            bytes_read=answer.bytes_read if answer else 0,
            truncated=answer.truncated if answer else False,
            http_version=answer.http_version if answer else None,
            checked_at=checked_at,
            error=error,
        )

    def _fetch(self, url: str, options: CheckOptions, hops: list[RedirectHop]) -> _Answer:
        client = self._http.client(options.verify_tls)
        method: str = options.method
        current = httpx.URL(url)
        visited = {str(current)}
        while True:
            request = client.build_request(method, current, headers=options.headers)
            response = client.send(request, stream=True)
            try:
                status = response.status_code
                if method == "HEAD" and status in HEAD_UNSUPPORTED:
                    method = "GET"
                    continue
                # Only GET and HEAD are sent, so no redirect code changes the method.
                if options.follow_redirects and status in REDIRECT_CODES:
                    current = _next_hop(response, hops, visited, options.max_redirects)
                    continue
                if method == "HEAD":
                    return _Answer(response, 0, False)
                read, truncated = _read_capped(response, options.max_body_bytes)
                return _Answer(response, read, truncated)
            finally:
                # Closing an unread body drops that connection instead of draining it.
                response.close()


def _next_hop(
    response: httpx.Response, hops: list[RedirectHop], visited: set[str], limit: int
) -> httpx.URL:
    location = response.headers.get("Location")
    here = str(response.url)
    if not location:
        raise CheckFailure(ErrorKind.INVALID_REDIRECT, f"{response.status_code} without Location")
    try:
        target = response.url.join(location)
    except httpx.InvalidURL as exc:
        raise CheckFailure(ErrorKind.INVALID_REDIRECT, f"bad Location {location!r}: {exc}") from exc
    if target.scheme not in ("http", "https") or not target.host:
        raise CheckFailure(ErrorKind.INVALID_REDIRECT, f"Location {location!r} is not http(s)")
    hops.append(RedirectHop(url=here, status_code=response.status_code, location=str(target)))
    if str(target) in visited:
        raise CheckFailure(ErrorKind.REDIRECT_LOOP, f"{here} redirects back to {target}")
    if len(hops) > limit:
        raise CheckFailure(ErrorKind.TOO_MANY_REDIRECTS, f"more than {limit} redirects")
    visited.add(str(target))
    return target


def _read_capped(response: httpx.Response, cap: int) -> tuple[int, bool]:
    """Read the raw (still compressed) body up to `cap` bytes: a gzip bomb costs at most that."""
    read = 0
    for chunk in response.iter_raw():
        read += len(chunk)
        if read > cap:
            return cap, True
    return read, False


def _ranges(options: CheckOptions) -> str:
    return ",".join(f"{lo}" if lo == hi else f"{lo}-{hi}" for lo, hi in options.expected_status)


def unfinished_result(url: str, kind: ErrorKind, message: str) -> CheckResult:
    """The final result of a check that never ran, or whose run was abandoned."""
    return CheckResult(
        url=url,
        ok=False,
        outcome="down",
        checked_at=datetime.now(UTC),
        error=CheckError(kind=kind, message=message),
    )
