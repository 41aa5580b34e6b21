"""Retries: which failures are tried again, how long the checker waits between attempts
(backoff, Retry-After and its cap), that shutdown cuts a wait short, and the limits the API
puts on the `retries` option."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from app.engine.checker import Checker
from app.engine.options import CheckOptions, RetryPolicy
from app.engine.transport import HttpLayer
from app.schemas.assertions import Assertions
from app.schemas.results import CheckResult, ErrorKind
from tests.conftest import RunningService
from tests.support.api import submit, wait_final
from tests.support.servers import ThreadedUvicorn, refused_port

FAST = RetryPolicy(base_s=0.01, max_delay_s=0.05)


class Flaky:
    """A target that fails the first `fail` requests of each token with `code` (and an optional
    Retry-After), then answers 200. It counts the requests it got per token."""

    def __init__(self) -> None:
        self.url = ""  # set once served
        self.hits: Counter[str] = Counter()
        self._events: dict[str, threading.Event] = {}
        self._lock = threading.Lock()
        self.app = Starlette(routes=[Route("/flaky/{token}", self._flaky)])

    def first_hit(self, token: str) -> threading.Event:
        with self._lock:
            return self._events.setdefault(token, threading.Event())

    async def _flaky(self, request: Request) -> Response:
        token = request.path_params["token"]
        query = request.query_params
        with self._lock:
            self.hits[token] += 1
            count = self.hits[token]
        self.first_hit(token).set()
        if count > int(query.get("fail", "0")):
            return PlainTextResponse("ok")
        headers = {}
        if "retry_after" in query:
            headers["Retry-After"] = query["retry_after"]
        elif query.get("retry_after_date"):
            when = datetime.now(UTC) + timedelta(seconds=float(query["retry_after_date"]))
            headers["Retry-After"] = format_datetime(when, usegmt=True)
        code = int(query.get("code", "503"))
        return PlainTextResponse(f"failure {count}", status_code=code, headers=headers)


@pytest.fixture(scope="module")
def flaky() -> Iterator[Flaky]:
    target = Flaky()
    server = ThreadedUvicorn(target.app).start()
    target.url = server.url
    yield target
    server.stop()


def flaky_url(flaky: Flaky, token: str, **query: object) -> str:
    params = "&".join(f"{key}={value}" for key, value in query.items())
    return f"{flaky.url}/flaky/{token}?{params}"


def run(http: HttpLayer, url: str, policy: RetryPolicy = FAST, **options: Any) -> CheckResult:
    options.setdefault("timeout_s", 10.0)
    return Checker(http, policy).check(url, CheckOptions(**options))


def token() -> str:
    return uuid.uuid4().hex


# --- what is retried ---------------------------------------------------------------------------


def test_two_503s_then_200_with_two_retries_is_up_after_three_attempts(
    http: HttpLayer, flaky: Flaky
) -> None:
    key = token()
    result = run(http, flaky_url(flaky, key, fail=2), retries=2)
    assert result.ok is True, result.error
    assert result.status_code == 200
    assert [a.status_code for a in result.attempts] == [503, 503, 200]
    assert [a.attempt for a in result.attempts] == [1, 2, 3]
    assert all(a.error is None for a in result.attempts)
    assert all(a.elapsed_ms > 0 for a in result.attempts)
    assert result.attempts[0].waited_ms == 0
    assert flaky.hits[key] == 3


def test_retries_exhausted_is_down_with_the_last_answer(http: HttpLayer, flaky: Flaky) -> None:
    key = token()
    result = run(http, flaky_url(flaky, key, fail=2), retries=1)
    assert result.ok is False
    assert result.outcome == "down"
    assert result.status_code == 503
    assert result.error is not None
    assert result.error.kind is ErrorKind.UNEXPECTED_STATUS
    assert [a.status_code for a in result.attempts] == [503, 503]
    assert flaky.hits[key] == 2


def test_no_retries_makes_exactly_one_attempt(http: HttpLayer, flaky: Flaky) -> None:
    key = token()
    result = run(http, flaky_url(flaky, key, fail=1))
    assert result.status_code == 503
    assert len(result.attempts) == 1
    assert flaky.hits[key] == 1


def test_refused_connection_is_retried_and_every_attempt_says_connect(http: HttpLayer) -> None:
    result = run(http, f"http://127.0.0.1:{refused_port()}/", retries=2)
    assert result.ok is False
    assert result.error is not None
    assert result.error.kind is ErrorKind.CONNECT
    assert len(result.attempts) == 3
    for attempt in result.attempts:
        assert attempt.status_code is None
        assert attempt.error is not None
        assert attempt.error.kind is ErrorKind.CONNECT


def test_429_is_retried(http: HttpLayer, flaky: Flaky) -> None:
    key = token()
    result = run(http, flaky_url(flaky, key, fail=1, code=429), retries=1)
    assert result.ok is True
    assert [a.status_code for a in result.attempts] == [429, 200]


@pytest.mark.parametrize("code", [400, 404, 410])
def test_client_errors_other_than_429_are_not_retried(
    http: HttpLayer, flaky: Flaky, code: int
) -> None:
    key = token()
    result = run(http, flaky_url(flaky, key, fail=1, code=code), retries=3)
    assert result.status_code == code
    assert result.ok is False
    assert len(result.attempts) == 1
    assert flaky.hits[key] == 1


def test_5xx_listed_in_expected_status_is_an_answer_not_a_failure(
    http: HttpLayer, flaky: Flaky
) -> None:
    key = token()
    result = run(
        http, flaky_url(flaky, key, fail=1, code=503), retries=3, expected_status=((503, 503),)
    )
    assert result.ok is True
    assert result.status_code == 503
    assert len(result.attempts) == 1
    assert flaky.hits[key] == 1


def test_assertion_failure_is_not_retried(http: HttpLayer, flaky: Flaky) -> None:
    key = token()
    result = run(
        http,
        flaky_url(flaky, key),
        retries=3,
        assertions=Assertions(body_contains=["not in the body"]),
    )
    assert result.error is not None
    assert result.error.kind is ErrorKind.ASSERTION_FAILED
    assert len(result.attempts) == 1


# --- how long between attempts ---------------------------------------------------------------


def test_retry_after_seconds_is_waited_before_the_next_attempt(
    http: HttpLayer, flaky: Flaky
) -> None:
    key = token()
    started = time.monotonic()
    result = run(
        http,
        flaky_url(flaky, key, fail=1, code=429, retry_after=1),
        policy=RetryPolicy(base_s=0.01, max_delay_s=5),
        retries=1,
    )
    took = time.monotonic() - started
    assert result.ok is True
    assert [a.status_code for a in result.attempts] == [429, 200]
    assert result.attempts[1].waited_ms >= 900
    assert took >= 0.9


def test_retry_after_http_date_is_honoured(http: HttpLayer, flaky: Flaky) -> None:
    key = token()
    result = run(
        http,
        flaky_url(flaky, key, fail=1, retry_after_date=2),
        policy=RetryPolicy(base_s=0.001, max_delay_s=5),
        retries=1,
    )
    assert result.ok is True
    # The date has whole seconds: 1 to 2 s ahead when sent. Jitter alone would be ~1 ms.
    assert 500 <= result.attempts[1].waited_ms <= 2100


def test_retry_after_beyond_the_cap_is_cut_to_the_cap(http: HttpLayer, flaky: Flaky) -> None:
    key = token()
    started = time.monotonic()
    result = run(
        http,
        flaky_url(flaky, key, fail=1, retry_after=30),
        policy=RetryPolicy(base_s=0.01, max_delay_s=0.5),
        retries=1,
    )
    took = time.monotonic() - started
    assert result.ok is True
    assert 0 < result.attempts[1].waited_ms <= 600
    assert took < 15  # far below the 30 s asked for


@pytest.mark.parametrize("value", ["soon", "-5", "1.5e9", ""])
def test_unusable_retry_after_falls_back_to_the_backoff(
    http: HttpLayer, flaky: Flaky, value: str
) -> None:
    key = token()
    result = run(
        http,
        flaky_url(flaky, key, fail=1, retry_after=value),
        policy=RetryPolicy(base_s=0.01, max_delay_s=0.05),
        retries=1,
    )
    assert result.ok is True
    assert 0 <= result.attempts[1].waited_ms <= 50


def test_backoff_grows_exponentially_with_full_jitter_under_the_cap(http: HttpLayer) -> None:
    base = 0.02
    result = run(
        http,
        f"http://127.0.0.1:{refused_port()}/",
        policy=RetryPolicy(base_s=base, max_delay_s=0.05),
        retries=4,
    )
    waits = [a.waited_ms for a in result.attempts]
    assert len(waits) == 5
    assert waits[0] == 0
    # Before attempt n (n >= 2): uniform in [0, min(cap, base * 2**(n-2))].
    bounds = [min(50.0, base * 1000 * 2 ** (n - 2)) for n in range(2, 6)]
    for waited, bound in zip(waits[1:], bounds, strict=True):
        assert 0 <= waited <= bound + 0.001


# --- shutdown ----------------------------------------------------------------------------------


def test_stopping_during_backoff_ends_the_wait_without_another_attempt(
    http: HttpLayer, flaky: Flaky
) -> None:
    key = token()
    stopping = threading.Event()
    checker = Checker(http, RetryPolicy(base_s=60, max_delay_s=60), stopping)

    def stop_after_first_attempt() -> None:
        if flaky.first_hit(key).wait(15):
            threading.Event().wait(0.3)  # let the checker enter its 60 s backoff
        stopping.set()

    stopper = threading.Thread(target=stop_after_first_attempt, daemon=True)
    stopper.start()
    started = time.monotonic()
    url = flaky_url(flaky, key, fail=5, retry_after=60)
    result = checker.check(url, CheckOptions(timeout_s=10, retries=3))
    took = time.monotonic() - started
    stopper.join(5)
    assert took < 20  # the backoff alone is 60 s
    assert len(result.attempts) == 1
    assert result.status_code == 503
    assert result.ok is False
    assert flaky.hits[key] == 1


def test_check_started_while_stopping_makes_one_attempt_and_never_retries(
    http: HttpLayer, flaky: Flaky
) -> None:
    key = token()
    stopping = threading.Event()
    stopping.set()
    checker = Checker(http, RetryPolicy(base_s=60, max_delay_s=60), stopping)
    started = time.monotonic()
    result = checker.check(flaky_url(flaky, key, fail=5), CheckOptions(timeout_s=10, retries=3))
    assert time.monotonic() - started < 20
    assert len(result.attempts) == 1
    assert flaky.hits[key] == 1


# --- through the API ---------------------------------------------------------------------------


@pytest.mark.parametrize(("max_retries", "asked"), [(5, 6), (0, 1), (2, 20)])
def test_api_refuses_retries_above_the_server_limit(
    service_factory: Callable[..., RunningService], max_retries: int, asked: int
) -> None:
    service = service_factory(max_retries=max_retries)
    for path in ("/v1/jobs", "/v1/check"):
        body = {"urls": ["http://127.0.0.1:9/"], "options": {"retries": asked}}
        response = service.client.post(path, json=body)
        assert response.status_code == 422, response.text
        errors = response.json()["detail"]
        assert [e["loc"] for e in errors] == [["body", "options", "retries"]]
        assert str(max_retries) in errors[0]["msg"]


def test_api_refuses_negative_retries(service: RunningService) -> None:
    body = {"urls": ["http://127.0.0.1:9/"], "options": {"retries": -1}}
    response = service.client.post("/v1/jobs", json=body)
    assert response.status_code == 422
    assert [e["loc"] for e in response.json()["detail"]] == [["body", "options", "retries"]]


def test_job_retries_with_the_service_backoff_settings(
    service_factory: Callable[..., RunningService], flaky: Flaky
) -> None:
    service = service_factory(retry_backoff_s=0.01, retry_max_delay_s=0.05)
    key = token()
    job = submit(service.client, [flaky_url(flaky, key, fail=2)], retries=2)
    assert job["options"]["retries"] == 2
    done = wait_final(service.client, job["id"])
    (result,) = done["results"]
    assert result["ok"] is True
    assert [a["status_code"] for a in result["attempts"]] == [503, 503, 200]
    assert all(a["waited_ms"] <= 50 for a in result["attempts"])
    assert done["summary"]["up"] == 1


def test_sync_check_waits_for_every_attempt_of_a_retried_check(
    service_factory: Callable[..., RunningService], flaky: Flaky
) -> None:
    # Each attempt has its own timeout_s, and Retry-After may be waited up to the cap, so a
    # retried check may rightly take longer than one timeout_s: /v1/check must wait for it.
    service = service_factory(retry_backoff_s=0.01, retry_max_delay_s=10)
    key = token()
    url = flaky_url(flaky, key, fail=1, retry_after=6)
    body = {"urls": [url], "options": {"retries": 1, "timeout_s": 1}}
    response = service.client.post("/v1/check", json=body)
    assert response.status_code == 200, response.text
    (result,) = response.json()["results"]
    assert result["error"] is None, result["error"]
    assert result["ok"] is True
    assert [a["status_code"] for a in result["attempts"]] == [503, 200]
