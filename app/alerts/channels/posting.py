"""One POST to a channel through the engine's HTTP layer, so an alert goes out under the same
rules as a check: the destination policy judges every resolved address at connect time (a
webhook to 169.254.169.254, or to a name that resolves there, is refused before any packet),
names resolve through the engine's resolver, and every socket operation is clipped to the
send's deadline.

Redirects are not followed (the body would have to be re-sent to wherever a 3xx points) and
the connection is closed after the answer: alerts are rare, and a kept-alive connection the
receiver has dropped would make a POST ambiguous.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Mapping

import httpx

from app.alerts.channels.outcome import SendOutcome, failed, from_status
from app.engine import network
from app.engine.dnscache import lookup_owner
from app.engine.failures import CheckFailure, classify
from app.engine.transport import HttpLayer
from app.schemas.results import ErrorKind

# Alert sends count as their own owner of DNS lookup slots, so a job of slow names cannot
# starve them (see dnscache).
ALERTS_OWNER = "alerts"
ANSWER_READ_BYTES = 4096  # enough of an answer to quote in an error
RETRYABLE_KINDS = frozenset(
    {
        ErrorKind.TIMEOUT,
        ErrorKind.DNS,
        ErrorKind.CONNECT,
        ErrorKind.CONNECTION_RESET,
        ErrorKind.TLS,
        ErrorKind.INVALID_RESPONSE,
    }
)


def post(
    http: HttpLayer, url: str, body: bytes, headers: Mapping[str, str], timeout_s: float
) -> SendOutcome:
    """POST `body` (JSON) to `url` within `timeout_s`; never raises."""
    try:
        target = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as exc:
        return failed(f"invalid URL: {exc}", retryable=False)
    sent = {
        "User-Agent": http.default_headers.get("User-Agent", "urlhealth"),
        "Accept": "*/*",
        "Accept-Encoding": "identity",
        "Connection": "close",
        "Content-Type": "application/json",
        **_basic_auth(target),
        **headers,
    }
    deadline = time.monotonic() + timeout_s
    try:
        with (
            lookup_owner(ALERTS_OWNER),
            http.lease(target.host, True) as lane,
            network.check_scope(deadline, network.Phases()),
        ):
            response = lane.send(httpx.Request("POST", target, content=body, headers=sent))
            try:
                answer = _read_some(response)
            finally:
                response.close()
    except Exception as exc:  # every failure is an outcome: the delivery thread must go on
        return _from_exception(exc, timeout_s)
    return from_status(response.status_code, answer, response.headers.get("Retry-After"))


def _basic_auth(url: httpx.URL) -> dict[str, str]:
    """Credentials in the URL ("https://user:pass@host/") as Basic auth, as curl and
    httpx's client send them; the lane, below the client, would drop them silently."""
    if not url.userinfo:
        return {}
    token = base64.b64encode(f"{url.username}:{url.password}".encode()).decode("ascii")
    return {"Authorization": f"Basic {token}"}


def _read_some(response: httpx.Response) -> str:
    """The start of the answer, for the error message; the status stands if the body fails."""
    data = b""
    try:
        for chunk in response.iter_raw():
            data += chunk
            if len(data) >= ANSWER_READ_BYTES:
                break
    except httpx.HTTPError:
        pass
    return data[:ANSWER_READ_BYTES].decode("utf-8", "replace")


def _from_exception(exc: Exception, timeout_s: float) -> SendOutcome:
    if isinstance(exc, CheckFailure) and exc.kind == ErrorKind.BLOCKED:
        return failed(f"blocked by the destination policy: {exc.message}", retryable=False)
    error = classify(exc)
    if error.kind == ErrorKind.TIMEOUT:
        return failed(f"no answer within {timeout_s:g} s: {error.message}", retryable=True)
    return failed(f"{error.kind.value}: {error.message}", error.kind in RETRYABLE_KINDS)
