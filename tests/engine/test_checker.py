"""The checker, called directly against real loopback servers: every way a URL can answer (or
fail to) becomes one result, and `Checker.check` never raises."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import trustme
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from app.engine.checker import Checker
from app.engine.options import CheckOptions
from app.engine.transport import HttpLayer
from app.schemas.results import CheckResult, ErrorKind
from tests.support.engine import make_http
from tests.support.servers import RawServer, ThreadedUvicorn, refused_port, target_app

# --- this module's own target: routes the shared target does not have ----------------------


class Probe:
    """A target that remembers the request headers it received, keyed by a `token` query."""

    def __init__(self) -> None:
        self.seen: dict[str, dict[str, str]] = {}
        self.app = Starlette(
            routes=[
                Route("/record", self._record),
                Route("/set-cookie", self._set_cookie),
                Route("/not-modified", self._not_modified),
                Route("/no-content", self._no_content),
                Route("/head-501", self._head_501, methods=["GET", "HEAD"]),
                Route("/location", self._location),
                Route("/slow-hop/{n:int}", self._slow_hop),
            ]
        )

    async def _record(self, request: Request) -> Response:
        self.seen[request.query_params["token"]] = dict(request.headers.items())
        return PlainTextResponse("recorded")

    async def _set_cookie(self, request: Request) -> Response:
        response = PlainTextResponse("have a cookie")
        response.set_cookie("session", "secret-from-target", path="/")
        return response

    async def _not_modified(self, request: Request) -> Response:
        return Response(status_code=304)  # no body: a 304 must not have one

    async def _no_content(self, request: Request) -> Response:
        # The shared target's /status/204 sends a body a 204 cannot have; its server then
        # drops the connection, which can break the next check reusing it.
        return Response(status_code=204)

    async def _head_501(self, request: Request) -> Response:
        if request.method == "HEAD":
            return Response(status_code=501)
        return PlainTextResponse("got " + request.method)

    async def _location(self, request: Request) -> Response:
        return RedirectResponse(request.query_params["to"], status_code=302)

    async def _slow_hop(self, request: Request) -> Response:
        # /slow-hop/3 -> /slow-hop/2 -> ... -> /slow-hop/0 answers; every hop takes 400 ms.
        await asyncio.sleep(0.4)
        n = int(request.path_params["n"])
        if n <= 0:
            return PlainTextResponse("arrived")
        return RedirectResponse(f"/slow-hop/{n - 1}", status_code=302)


@pytest.fixture(scope="module")
def probe() -> Iterator[tuple[Probe, ThreadedUvicorn]]:
    app = Probe()
    server = ThreadedUvicorn(app.app).start()
    yield app, server
    server.stop()


@pytest.fixture(scope="module")
def http() -> Iterator[HttpLayer]:
    layer = make_http()
    yield layer
    layer.abort_in_flight()
    layer.close()


@pytest.fixture(scope="module")
def checker(http: HttpLayer) -> Checker:
    return Checker(http)


def check(checker: Checker, url: str, **options: object) -> CheckResult:
    return checker.check(url, CheckOptions(**options))  # type: ignore[arg-type]


def error_kind(result: CheckResult) -> ErrorKind | None:
    return result.error.kind if result.error else None


# --- a healthy answer -----------------------------------------------------------------------


def test_200_is_up_with_status_reason_final_url_body_size_and_version(
    checker: Checker, target: ThreadedUvicorn
) -> None:
    url = f"{target.url}/status/200"
    result = check(checker, url)
    assert result.ok is True
    assert result.outcome == "up"
    assert result.error is None
    assert result.status_code == 200
    assert result.reason == "OK"
    assert result.final_url == url
    assert result.url == url
    assert result.redirects == []
    assert result.bytes_read == len(b"status 200")
    assert result.truncated is False
    assert result.http_version == "HTTP/1.1"
    assert result.elapsed_ms is not None
    assert result.elapsed_ms > 0
    assert result.checked_at.tzinfo is not None


def test_interim_1xx_answer_is_skipped_and_the_final_answer_judged(checker: Checker) -> None:
    def early_hints_then_ok(conn: socket.socket) -> None:
        conn.recv(65536)
        conn.sendall(
            b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
        )
        conn.close()

    server = RawServer(early_hints_then_ok)
    try:
        result = check(checker, f"{server.url}/", timeout_s=5)
    finally:
        server.stop()
    assert result.ok is True
    assert result.status_code == 200
    assert result.bytes_read == 2


# --- status classes and expected_status -----------------------------------------------------


@pytest.mark.parametrize(
    ("path", "status", "ok"),
    [
        ("/status/200", 200, True),
        ("/status/201", 201, True),
        ("/status/299", 299, True),
        ("/status/400", 400, False),
        ("/status/404", 404, False),
        ("/status/429", 429, False),
        ("/status/500", 500, False),
        ("/status/503", 503, False),
    ],
)
def test_default_expected_status_is_200_to_399(
    checker: Checker, target: ThreadedUvicorn, path: str, status: int, ok: bool
) -> None:
    result = check(checker, f"{target.url}{path}")
    assert result.status_code == status
    assert result.ok is ok
    assert result.outcome == ("up" if ok else "down")
    if ok:
        assert result.error is None
    else:
        assert error_kind(result) is ErrorKind.UNEXPECTED_STATUS
        assert result.error is not None
        assert result.error.message == f"status {status} is not in 200-399"


@pytest.mark.parametrize(("path", "status"), [("/no-content", 204), ("/not-modified", 304)])
def test_bodiless_204_and_304_are_up_by_default(
    checker: Checker, probe: tuple[Probe, ThreadedUvicorn], path: str, status: int
) -> None:
    result = check(checker, f"{probe[1].url}{path}")
    assert result.status_code == status
    assert result.ok is True
    assert result.bytes_read == 0


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_unfollowed_redirect_status_is_the_answer_and_up_by_default(
    checker: Checker, target: ThreadedUvicorn, status: int
) -> None:
    result = check(checker, f"{target.url}/status/{status}", follow_redirects=False)
    assert result.status_code == status
    assert result.ok is True
    assert result.redirects == []


@pytest.mark.parametrize(
    ("path", "expected", "ok"),
    [
        ("/status/200", ((201, 299),), False),
        ("/status/201", ((200, 299),), True),
        ("/status/301", ((200, 299),), False),
        ("/status/404", ((404, 404),), True),
        ("/status/403", ((404, 404),), False),
        ("/status/503", ((200, 200), (500, 503)), True),
        ("/status/504", ((200, 200), (500, 503)), False),
    ],
)
def test_custom_expected_status_ranges_decide_ok(
    checker: Checker,
    target: ThreadedUvicorn,
    path: str,
    expected: tuple[tuple[int, int], ...],
    ok: bool,
) -> None:
    result = check(checker, f"{target.url}{path}", expected_status=expected, follow_redirects=False)
    assert result.ok is ok
    assert error_kind(result) is (None if ok else ErrorKind.UNEXPECTED_STATUS)


def test_unexpected_status_message_names_the_custom_ranges(
    checker: Checker, target: ThreadedUvicorn
) -> None:
    result = check(checker, f"{target.url}/status/418", expected_status=((200, 299), (304, 304)))
    assert result.error is not None
    assert result.error.message == "status 418 is not in 200-299,304"
    assert result.status_code == 418  # the answer is still reported


# --- redirects ------------------------------------------------------------------------------


def test_redirect_chain_is_followed_with_hops_in_order(
    checker: Checker, target: ThreadedUvicorn
) -> None:
    base = target.url
    result = check(checker, f"{base}/redirect/3")
    assert result.ok is True
    assert result.status_code == 200
    assert result.final_url == f"{base}/status/200"
    assert [(hop.url, hop.status_code, hop.location) for hop in result.redirects] == [
        (f"{base}/redirect/3", 302, f"{base}/redirect/2"),
        (f"{base}/redirect/2", 302, f"{base}/redirect/1"),
        (f"{base}/redirect/1", 302, f"{base}/status/200"),
    ]


def test_follow_redirects_false_keeps_the_302_as_the_final_answer(
    checker: Checker, target: ThreadedUvicorn
) -> None:
    url = f"{target.url}/redirect/3"
    result = check(checker, url, follow_redirects=False)
    assert result.status_code == 302
    assert result.final_url == url
    assert result.redirects == []
    assert result.ok is True


def test_exactly_max_redirects_hops_are_allowed(checker: Checker, target: ThreadedUvicorn) -> None:
    result = check(checker, f"{target.url}/redirect/3", max_redirects=3)
    assert result.ok is True
    assert len(result.redirects) == 3


def test_more_hops_than_max_redirects_is_too_many_redirects(
    checker: Checker, target: ThreadedUvicorn
) -> None:
    result = check(checker, f"{target.url}/redirect/3", max_redirects=2)
    assert result.ok is False
    assert error_kind(result) is ErrorKind.TOO_MANY_REDIRECTS
    assert result.status_code is None


def test_max_redirects_zero_refuses_any_redirect(checker: Checker, target: ThreadedUvicorn) -> None:
    result = check(checker, f"{target.url}/redirect/1", max_redirects=0)
    assert error_kind(result) is ErrorKind.TOO_MANY_REDIRECTS


def test_redirect_back_to_a_visited_url_is_a_loop(
    checker: Checker, target: ThreadedUvicorn
) -> None:
    base = target.url
    result = check(checker, f"{base}/loop/a", max_redirects=50)
    assert result.ok is False
    assert error_kind(result) is ErrorKind.REDIRECT_LOOP
    assert [hop.url for hop in result.redirects] == [f"{base}/loop/a", f"{base}/loop/b"]


def test_redirect_without_location_is_invalid_redirect(
    checker: Checker, target: ThreadedUvicorn
) -> None:
    result = check(checker, f"{target.url}/status/302")
    assert error_kind(result) is ErrorKind.INVALID_REDIRECT


def test_redirect_to_a_non_http_scheme_is_invalid_redirect(
    checker: Checker, probe: tuple[Probe, ThreadedUvicorn]
) -> None:
    result = check(checker, f"{probe[1].url}/location?to=ftp://files.example/x")
    assert error_kind(result) is ErrorKind.INVALID_REDIRECT


def test_relative_location_is_resolved_against_the_redirecting_url(
    checker: Checker, probe: tuple[Probe, ThreadedUvicorn]
) -> None:
    base = probe[1].url
    result = check(checker, f"{base}/location?to=/not-modified")
    assert result.ok is True
    assert result.final_url == f"{base}/not-modified"
    assert result.redirects[0].location == f"{base}/not-modified"


def test_one_deadline_covers_all_redirect_hops(
    checker: Checker, probe: tuple[Probe, ThreadedUvicorn]
) -> None:
    # Five hops of 400 ms each: every hop is well inside 1 s, the whole chain is not.
    started = time.monotonic()
    result = check(checker, f"{probe[1].url}/slow-hop/4", timeout_s=1.0)
    elapsed = time.monotonic() - started
    assert error_kind(result) is ErrorKind.TIMEOUT
    assert elapsed < 4.0


# --- connection-level failures --------------------------------------------------------------


def test_refused_port_is_connect_error(checker: Checker) -> None:
    result = check(checker, f"http://127.0.0.1:{refused_port()}/", timeout_s=5)
    assert result.ok is False
    assert result.outcome == "down"
    assert error_kind(result) is ErrorKind.CONNECT
    assert result.status_code is None
    assert result.final_url is None


def _invalid_tld_fails_fast(host: str) -> str | None:
    """None when the resolver refuses `host` quickly; otherwise why the DNS test must skip."""
    outcome: list[str] = []

    def resolve() -> None:
        try:
            socket.getaddrinfo(host, 80)
            outcome.append("resolved")
        except OSError:
            outcome.append("failed")

    thread = threading.Thread(target=resolve, daemon=True)
    thread.start()
    thread.join(3.0)
    if not outcome:
        return f"this machine's resolver takes over 3 s to fail {host} (no resolver reachable?)"
    if outcome[0] == "resolved":
        return f"this machine's resolver answers for {host} (a hijacking resolver)"
    return None


def test_unresolvable_name_is_dns_error(checker: Checker) -> None:
    # RFC 2606: .invalid never resolves, so no query can reach a real host.
    host = f"urlhealth-{uuid.uuid4().hex[:8]}.invalid"
    reason = _invalid_tld_fails_fast(host)
    if reason:
        pytest.skip(reason)
    result = check(checker, f"http://{host}/", timeout_s=5)
    assert result.ok is False
    assert error_kind(result) is ErrorKind.DNS


def test_server_that_never_answers_times_out_at_the_deadline(
    checker: Checker, hanging_server: RawServer
) -> None:
    started = time.monotonic()
    result = check(checker, f"{hanging_server.url}/", timeout_s=1.0)
    elapsed = time.monotonic() - started
    assert error_kind(result) is ErrorKind.TIMEOUT
    assert elapsed < 4.0
    assert result.elapsed_ms is not None
    assert result.elapsed_ms >= 900  # the deadline is not cut short either


def test_answer_that_is_not_http_is_invalid_response(
    checker: Checker, garbage_server: RawServer
) -> None:
    result = check(checker, f"{garbage_server.url}/", timeout_s=5)
    assert error_kind(result) is ErrorKind.INVALID_RESPONSE


def test_close_without_answer_is_connection_reset(
    checker: Checker, closing_server: RawServer
) -> None:
    result = check(checker, f"{closing_server.url}/", timeout_s=5)
    assert error_kind(result) is ErrorKind.CONNECTION_RESET


@pytest.fixture
def one_answer_per_connection() -> Iterator[RawServer]:
    """Answers the first request of each connection with keep-alive, then closes the
    connection on the next request without answering: what a client sees when the server's
    keep-alive timeout fires just as a pooled connection is reused."""

    def handler(conn: socket.socket) -> None:
        conn.recv(65536)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        conn.recv(65536)
        conn.close()

    server = RawServer(handler)
    yield server
    server.stop()


def test_reused_connection_closed_by_the_server_is_retried_on_a_fresh_one(
    one_answer_per_connection: RawServer,
) -> None:
    layer = make_http()
    try:
        checker = Checker(layer)
        assert check(checker, f"{one_answer_per_connection.url}/first", timeout_s=5).ok
        result = check(checker, f"{one_answer_per_connection.url}/second", timeout_s=5)
    finally:
        layer.close()
    assert error_kind(result) is None
    assert result.status_code == 200


# --- the body read cap ----------------------------------------------------------------------


def test_body_larger_than_cap_is_truncated_at_the_cap(
    checker: Checker, target: ThreadedUvicorn
) -> None:
    result = check(checker, f"{target.url}/bytes/104857600", max_body_bytes=65536, timeout_s=30)
    assert result.ok is True
    assert result.truncated is True
    assert result.bytes_read == 65536


@pytest.fixture
def endless_body_server() -> Iterator[RawServer]:
    """Promises 10 MiB, sends 256 KiB, then stalls: only a reader that stops early finishes."""
    stop = threading.Event()

    def handler(conn: socket.socket) -> None:
        conn.recv(65536)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 10485760\r\n\r\n" + b"x" * 262144)
        stop.wait(60)

    server = RawServer(handler)
    yield server
    stop.set()
    server.stop()


def test_capped_read_stops_at_the_cap_instead_of_reading_the_whole_body(
    checker: Checker, endless_body_server: RawServer
) -> None:
    # Reading past the cap would block on the stalled body until the deadline: a timeout.
    result = check(checker, f"{endless_body_server.url}/", max_body_bytes=65536, timeout_s=5)
    assert error_kind(result) is None
    assert result.truncated is True
    assert result.bytes_read == 65536


@pytest.mark.parametrize(
    ("size", "cap", "read", "truncated"),
    [
        (1000, 65536, 1000, False),
        (65536, 65536, 65536, False),
        (65537, 65536, 65536, True),
        (0, 65536, 0, False),
        (10, 0, 0, True),
    ],
)
def test_body_size_and_cap_boundaries(
    checker: Checker, target: ThreadedUvicorn, size: int, cap: int, read: int, truncated: bool
) -> None:
    result = check(checker, f"{target.url}/bytes/{size}", max_body_bytes=cap)
    assert (result.bytes_read, result.truncated) == (read, truncated)


# --- methods, headers, cookies --------------------------------------------------------------


def test_head_does_not_read_a_body(checker: Checker, target: ThreadedUvicorn) -> None:
    result = check(checker, f"{target.url}/status/200", method="HEAD")
    assert result.ok is True
    assert result.status_code == 200
    assert result.bytes_read == 0


def test_head_answered_405_is_retried_once_as_get(
    checker: Checker, target: ThreadedUvicorn
) -> None:
    result = check(checker, f"{target.url}/head-405", method="HEAD")
    assert result.ok is True
    assert result.status_code == 200
    assert result.bytes_read == len(b"got GET")  # a body was read: the GET answered


def test_head_answered_501_is_retried_once_as_get(
    checker: Checker, probe: tuple[Probe, ThreadedUvicorn]
) -> None:
    result = check(checker, f"{probe[1].url}/head-501", method="HEAD")
    assert result.status_code == 200
    assert result.bytes_read == len(b"got GET")


def test_get_after_head_retry_answering_405_is_the_final_answer(
    checker: Checker, target: ThreadedUvicorn
) -> None:
    result = check(checker, f"{target.url}/status/405", method="HEAD", timeout_s=5)
    assert result.status_code == 405
    assert error_kind(result) is ErrorKind.UNEXPECTED_STATUS
    assert result.bytes_read == len(b"status 405")


def test_custom_request_headers_and_user_agent_arrive_at_the_target(
    checker: Checker, probe: tuple[Probe, ThreadedUvicorn]
) -> None:
    app, server = probe
    token = uuid.uuid4().hex
    result = check(
        checker,
        f"{server.url}/record?token={token}",
        headers={"X-Probe": "value-123", "Accept": "text/plain"},
    )
    assert result.ok is True
    seen = app.seen[token]
    assert seen["x-probe"] == "value-123"
    assert seen["accept"] == "text/plain"
    assert seen["user-agent"] == "test-agent"


def test_cookies_set_by_a_target_are_not_sent_on_a_later_check(
    checker: Checker, probe: tuple[Probe, ThreadedUvicorn]
) -> None:
    app, server = probe
    # Control: an ordinary client keeps the cookie and sends it back, so the route works.
    with httpx.Client(trust_env=False) as ordinary:
        ordinary.get(f"{server.url}/set-cookie")
        control = uuid.uuid4().hex
        ordinary.get(f"{server.url}/record?token={control}")
    assert "secret-from-target" in app.seen[control].get("cookie", "")

    assert check(checker, f"{server.url}/set-cookie").ok is True
    token = uuid.uuid4().hex
    assert check(checker, f"{server.url}/record?token={token}").ok is True
    assert "cookie" not in app.seen[token]


# --- TLS ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadedUvicorn]:
    """The shared target's routes over HTTPS, with a certificate from a private CA that no
    default bundle trusts."""
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    pem: Path = tmp_path_factory.mktemp("tls") / "server.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(pem))
    server = ThreadedUvicorn(target_app(), ssl_keyfile=str(pem), ssl_certfile=str(pem)).start()
    yield server
    server.stop()


@pytest.fixture
def tls_checker() -> Iterator[Checker]:
    """A checker of its own, whose connections close before the TLS target stops."""
    layer = make_http()
    yield Checker(layer)
    layer.close()


def test_untrusted_certificate_is_a_tls_error_when_verifying(
    tls_checker: Checker, tls_target: ThreadedUvicorn
) -> None:
    result = check(tls_checker, f"https://127.0.0.1:{tls_target.port}/status/200", verify_tls=True)
    assert result.ok is False
    assert error_kind(result) is ErrorKind.TLS
    assert result.error is not None
    assert result.error.message.startswith("certificate:")
    assert result.status_code is None


def test_untrusted_certificate_is_accepted_without_verification(
    tls_checker: Checker, tls_target: ThreadedUvicorn
) -> None:
    url = f"https://127.0.0.1:{tls_target.port}/status/200"
    result = check(tls_checker, url, verify_tls=False)
    assert result.ok is True
    assert result.status_code == 200
    assert result.final_url == url


def test_verifying_and_non_verifying_checks_do_not_share_a_connection(
    tls_checker: Checker, tls_target: ThreadedUvicorn
) -> None:
    # A connection opened without verification must not be reused by a verifying check.
    url = f"https://127.0.0.1:{tls_target.port}/status/200"
    assert check(tls_checker, url, verify_tls=False).ok is True
    assert error_kind(check(tls_checker, url, verify_tls=True)) is ErrorKind.TLS


def test_plain_http_speaker_on_https_url_is_a_tls_error(
    checker: Checker, target: ThreadedUvicorn
) -> None:
    result = check(checker, f"https://127.0.0.1:{target.port}/status/200", timeout_s=5)
    assert error_kind(result) is ErrorKind.TLS


# --- never raises ---------------------------------------------------------------------------


def test_check_never_raises_whatever_the_target_does(
    checker: Checker,
    target: ThreadedUvicorn,
    garbage_server: RawServer,
    closing_server: RawServer,
) -> None:
    urls: list[Callable[[], str]] = [
        lambda: f"{garbage_server.url}/",
        lambda: f"{closing_server.url}/",
        lambda: f"http://127.0.0.1:{refused_port()}/",
        lambda: f"{target.url}/loop/a",
        lambda: f"{target.url}/status/302",
        lambda: f"https://127.0.0.1:{target.port}/",
    ]
    for make in urls:
        result = check(checker, make(), timeout_s=5)
        assert result.ok is False
        assert result.error is not None
        assert result.error.kind is not ErrorKind.INTERNAL, result.error.message
