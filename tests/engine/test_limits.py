"""Hard limits of one check: its deadline ends it whatever the server does (trickling bytes,
never answering, a resolver that never returns), the body read stops at the cap (a huge body,
a gzip bomb), and a redirect chain stops at max_redirects. The servers are real ones on
loopback; where it matters they count what they saw, so "stopped" is observed, not assumed."""

from __future__ import annotations

import contextlib
import gzip
import json
import resource
import socket
import threading
import time
import tracemalloc
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from ipaddress import ip_address

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from app.engine.checker import Checker
from app.engine.options import CheckOptions
from app.engine.resolver import IPAddress, ResolveTimeout
from app.engine.transport import HttpLayer
from app.schemas.assertions import Assertions
from app.schemas.results import CheckResult, ErrorKind
from tests.support.engine import make_http
from tests.support.servers import RawServer, ThreadedUvicorn

MiB = 1024 * 1024
DEFAULT_CAP = CheckOptions().max_body_bytes
DEADLINE_S = 2.0
TRICKLE_S = 0.1


def kind(result: CheckResult) -> ErrorKind | None:
    return result.error.kind if result.error is not None else None


def read_request(conn: socket.socket) -> bytes:
    """Read one request head (up to the blank line), or whatever came before EOF."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def assert_ended_at_the_deadline(result: CheckResult, took_s: float) -> None:
    assert kind(result) is ErrorKind.TIMEOUT, result.error
    assert result.ok is False
    assert result.elapsed_ms is not None
    # The bound is the deadline +-1 s. Nothing may end a slow-but-alive server early,
    # so from below it is tighter; a noisy machine only ever makes things later.
    assert DEADLINE_S * 1000 - 100 <= result.elapsed_ms <= DEADLINE_S * 1000 + 1000
    assert took_s <= DEADLINE_S + 1.0


# --- the deadline: servers that are alive but never finish ----------------------------------


def drip(stop: threading.Event, head: bytes, unit: bytes) -> Callable[[socket.socket], None]:
    """Read the request, send `head` at once, then `unit` one byte every 100 ms, for ever
    (until the test ends; bounded at 60 s)."""

    def handler(conn: socket.socket) -> None:
        read_request(conn)
        conn.sendall(head)
        for index in range(600):
            if stop.wait(TRICKLE_S):
                return
            position = index % len(unit)
            conn.sendall(unit[position : position + 1])

    return handler


def chunked_drip(stop: threading.Event) -> Callable[[socket.socket], None]:
    """A chunked body whose every chunk is one byte, one chunk every 100 ms, for ever."""

    def handler(conn: socket.socket) -> None:
        read_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for _ in range(600):
            if stop.wait(TRICKLE_S):
                return
            conn.sendall(b"1\r\nx\r\n")

    return handler


TRICKLERS: dict[str, Callable[[threading.Event], Callable[[socket.socket], None]]] = {
    "body-with-content-length": lambda stop: drip(
        stop, b"HTTP/1.1 200 OK\r\nContent-Length: 1000000000\r\n\r\n", b"x"
    ),
    "body-until-close": lambda stop: drip(
        stop, b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n", b"x"
    ),
    "body-chunked": chunked_drip,
    # Nothing at once: the status line itself arrives byte by byte, then an endless header block.
    "status-line-and-headers": lambda stop: drip(
        stop, b"", b"HTTP/1.1 200 OK\r\nX-Drip: aaaaaaaaaaaaaaaaaaaaaaaa\r\n"
    ),
}


def silent(stop: threading.Event) -> Callable[[socket.socket], None]:
    """Accept, then neither read nor answer (until the test ends)."""

    def handler(conn: socket.socket) -> None:
        stop.wait(60)

    return handler


class BlockingResolver:
    """A lookup that never finishes (or takes `answer_after_s`), honouring its `timeout` as
    the system resolver does: past it, ResolveTimeout."""

    def __init__(self, answer_after_s: float | None = None) -> None:
        self.answer_after_s = answer_after_s
        self.released = threading.Event()
        self.timeouts: list[float] = []

    def resolve(self, host: str, port: int, timeout: float) -> list[IPAddress]:
        self.timeouts.append(timeout)
        delay = self.answer_after_s
        if delay is not None and delay < timeout:
            self.released.wait(delay)  # a slow lookup that does finish
            return [ip_address("127.0.0.1")]
        self.released.wait(timeout)
        raise ResolveTimeout(f"resolving {host!r} took longer than {timeout:g}s")


@dataclass
class DeadlineRun:
    result: CheckResult
    took_s: float
    connections: int  # accepted by the scenario's server when the check ended
    resolver_timeouts: list[float]  # the `timeout` each lookup was given (DNS scenarios)


@pytest.fixture(scope="module")
def deadline_runs() -> dict[str, DeadlineRun]:
    """Every deadline scenario, run at once, since each takes the whole deadline."""
    stop = threading.Event()
    resolvers = {"dns-never": BlockingResolver(), "slow-dns": BlockingResolver(answer_after_s=1.5)}
    layers = {name: make_http(resolver=resolver) for name, resolver in resolvers.items()}
    shared = make_http()
    servers = {name: RawServer(make(stop)) for name, make in TRICKLERS.items()}
    servers["never-answers"] = RawServer(silent(stop))
    servers["slow-dns"] = RawServer(silent(stop))
    plans = {name: (shared, f"{server.url}/") for name, server in servers.items()}
    plans["slow-dns"] = (layers["slow-dns"], f"http://slow-dns.test:{servers['slow-dns'].port}/")
    plans["dns-never"] = (layers["dns-never"], "http://never-resolves.test:8080/")
    runs: dict[str, DeadlineRun] = {}

    def run(name: str, layer: HttpLayer, url: str) -> None:
        started = time.monotonic()
        result = Checker(layer).check(url, CheckOptions(timeout_s=DEADLINE_S))
        took = time.monotonic() - started
        server, resolver = servers.get(name), resolvers.get(name)
        runs[name] = DeadlineRun(
            result,
            took,
            server.connections if server else 0,
            list(resolver.timeouts) if resolver else [],
        )

    threads = [
        threading.Thread(target=run, args=(name, layer, url), daemon=True)
        for name, (layer, url) in plans.items()
    ]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    finally:
        stop.set()
        for resolver in resolvers.values():
            resolver.released.set()
        for server in servers.values():
            server.stop()
        for layer in (shared, *layers.values()):
            layer.abort_in_flight()
            layer.close()
    return runs


@pytest.mark.parametrize("style", list(TRICKLERS))
def test_a_server_trickling_a_byte_every_100ms_ends_at_the_deadline(
    deadline_runs: dict[str, DeadlineRun], style: str
) -> None:
    # Every read returns within 100 ms, so no per-read timeout could ever fire.
    run = deadline_runs[style]
    assert_ended_at_the_deadline(run.result, run.took_s)
    # A status is reported only when the whole header block arrived.
    assert run.result.status_code == (None if style == "status-line-and-headers" else 200)


def test_a_server_that_accepts_and_never_reads_or_answers_ends_at_the_deadline(
    deadline_runs: dict[str, DeadlineRun],
) -> None:
    run = deadline_runs["never-answers"]
    assert run.connections == 1  # the connection was made: the wait was for an answer
    assert_ended_at_the_deadline(run.result, run.took_s)


def test_a_resolver_that_never_answers_ends_the_check_at_the_deadline(
    deadline_runs: dict[str, DeadlineRun],
) -> None:
    run = deadline_runs["dns-never"]
    assert_ended_at_the_deadline(run.result, run.took_s)
    assert run.result.error is not None
    assert "never-resolves.test" in run.result.error.message
    # One lookup, given what was left of the check's deadline rather than a timeout of its own.
    [given] = run.resolver_timeouts
    assert 0 < given <= DEADLINE_S


def test_time_spent_resolving_counts_against_the_same_deadline(
    deadline_runs: dict[str, DeadlineRun],
) -> None:
    # DNS takes 1.5 s of the 2 s, then the server never answers: the check ends at 2 s, not
    # at 1.5 s plus another full timeout.
    run = deadline_runs["slow-dns"]
    assert run.connections == 1  # resolving succeeded and the connection was made
    assert len(run.resolver_timeouts) == 1
    assert_ended_at_the_deadline(run.result, run.took_s)


# --- the body cap ---------------------------------------------------------------------------


@dataclass
class SendLog:
    """What a server handler managed to send before the client went away."""

    sent: int = 0
    failed: BaseException | None = None
    done: threading.Event = field(default_factory=threading.Event)


def huge_body(size: int, log: SendLog) -> Callable[[socket.socket], None]:
    def handler(conn: socket.socket) -> None:
        chunk = b"x" * 65536
        # A small send buffer, so what the server counts as sent is close to what left it.
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
        try:
            read_request(conn)
            conn.sendall(f"HTTP/1.1 200 OK\r\nContent-Length: {size}\r\n\r\n".encode())
            while log.sent < size:
                piece = chunk[: min(len(chunk), size - log.sent)]
                conn.sendall(piece)
                log.sent += len(piece)
        except OSError as exc:  # the client closed: the send fails
            log.failed = exc
        finally:
            log.done.set()

    return handler


def test_a_100mib_body_is_read_up_to_the_cap_and_the_server_sees_the_client_stop(
    http: HttpLayer,
) -> None:
    size = 100 * MiB
    log = SendLog()
    server = RawServer(huge_body(size, log))
    try:
        result = Checker(http).check(f"{server.url}/", CheckOptions(timeout_s=30))
        # The client dropped the connection, so the server's sending ends by itself.
        assert log.done.wait(20), "the server is still sending: the client kept reading"
    finally:
        server.stop()
    assert kind(result) is None
    assert result.ok is True
    assert result.bytes_read == DEFAULT_CAP == MiB
    assert result.truncated is True
    assert log.failed is not None, f"the server sent all {log.sent} bytes"
    # What left the server: the cap plus what kernel buffers took in. Far below 100 MiB.
    assert log.sent < 10 * MiB, f"{log.sent / MiB:.1f} MiB sent"


def gzip_bomb(inflated: int, wbits: int) -> bytes:
    """`inflated` zero bytes compressed, built 1 MiB at a time (the test never holds them)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, wbits)
    zeros = bytes(MiB)
    parts = [compressor.compress(zeros) for _ in range(inflated // MiB)]
    parts.append(compressor.flush())
    return b"".join(parts)


BOMB_INFLATED = 200 * MiB


@pytest.fixture(scope="module")
def bombs() -> Iterator[dict[str, tuple[bytes, ThreadedUvicorn]]]:
    payloads = {"gzip": gzip_bomb(BOMB_INFLATED, 31), "deflate": gzip_bomb(BOMB_INFLATED, 15)}

    async def bomb(request: Request) -> Response:
        encoding = request.path_params["encoding"]
        return Response(
            payloads[encoding],
            media_type="text/plain",
            headers={"Content-Encoding": encoding},
        )

    # A JSON document of 2 MiB, 20 KB gzipped: a server that ignores our Accept-Encoding.
    document = json.dumps({"items": ["x" * 100] * 20_000, "status": "ok"}).encode()
    big_json = gzip.compress(document)

    async def gzipped_json(request: Request) -> Response:
        return Response(
            big_json, media_type="application/json", headers={"Content-Encoding": "gzip"}
        )

    routes = [Route("/bomb/{encoding}", bomb), Route("/big-json", gzipped_json)]
    server = ThreadedUvicorn(Starlette(routes=routes)).start()
    yield {name: (payload, server) for name, payload in payloads.items()}
    server.stop()


def max_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kilobytes on Linux


@contextlib.contextmanager
def memory_watch() -> Iterator[dict[str, int]]:
    """Peak growth while the block runs: of the process RSS (which only shows a peak above
    any earlier one in this process) and of Python allocations (tracemalloc, which sees every
    buffer zlib returns, whatever ran before)."""
    seen: dict[str, int] = {}
    rss_before = max_rss_bytes()
    tracemalloc.start()
    tracemalloc.reset_peak()
    traced_before = tracemalloc.get_traced_memory()[0]
    try:
        yield seen
    finally:
        seen["traced"] = tracemalloc.get_traced_memory()[1] - traced_before
        tracemalloc.stop()
        seen["rss"] = max_rss_bytes() - rss_before


def assert_no_inflation(growth: dict[str, int]) -> None:
    # Fully inflated, the bomb is 200 MiB in one buffer (zlib grows it in steps, so more at
    # the peak); capped, it is 1 MiB.
    assert growth["traced"] < 100 * MiB, f"allocations peaked {growth['traced'] / MiB:.0f} MiB up"
    assert growth["rss"] < 100 * MiB, f"peak RSS grew by {growth['rss'] / MiB:.0f} MiB"


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_a_compression_bomb_costs_no_more_than_the_cap(
    http: HttpLayer, bombs: dict[str, tuple[bytes, ThreadedUvicorn]], encoding: str
) -> None:
    payload, server = bombs[encoding]
    assert len(payload) < DEFAULT_CAP  # ~200 KB on the wire, 200 MiB once inflated
    url = f"{server.url}/bomb/{encoding}"
    # An assertion on the body makes the engine keep and decode it: the dangerous case.
    options = CheckOptions(timeout_s=30, assertions=Assertions(body_contains=["x"]))
    checker = Checker(http)
    with memory_watch() as growth:
        result = checker.check(url, options)
    assert result.status_code == 200
    assert result.bytes_read == len(payload)  # the raw, compressed bytes are what count
    assert result.truncated is False
    # The check completed and judged the (decoded, capped) body: zeros contain no "x".
    assert kind(result) is ErrorKind.ASSERTION_FAILED
    assert [failure.assertion for failure in result.failed_assertions] == ["body_contains"]
    assert_no_inflation(growth)


def test_a_compression_bomb_without_body_assertions_is_never_inflated(
    http: HttpLayer, bombs: dict[str, tuple[bytes, ThreadedUvicorn]]
) -> None:
    payload, server = bombs["gzip"]
    checker = Checker(http)
    with memory_watch() as growth:
        result = checker.check(f"{server.url}/bomb/gzip", CheckOptions(timeout_s=30))
    assert result.ok is True
    assert result.bytes_read == len(payload)
    assert_no_inflation(growth)


# --- redirect limits ------------------------------------------------------------------------


class Chain:
    """/chain/{tag}/{n} redirects to /chain/{tag}/{n-1}; /chain/{tag}/0 answers 200. Every
    request is counted, by path."""

    def __init__(self) -> None:
        self.requests: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.app = Starlette(routes=[Route("/chain/{tag}/{n:int}", self._hop)])

    async def _hop(self, request: Request) -> Response:
        with self.lock:
            self.requests[request.url.path] += 1
        tag, n = request.path_params["tag"], int(request.path_params["n"])
        if n <= 0:
            return PlainTextResponse("end of the chain")
        return RedirectResponse(f"/chain/{tag}/{n - 1}", status_code=302)

    def seen(self, tag: str) -> dict[str, int]:
        prefix = f"/chain/{tag}/"
        with self.lock:
            return {path: count for path, count in self.requests.items() if path.startswith(prefix)}


@pytest.fixture(scope="module")
def chain() -> Iterator[tuple[Chain, ThreadedUvicorn]]:
    app = Chain()
    server = ThreadedUvicorn(app.app).start()
    yield app, server
    server.stop()


def test_an_11_hop_chain_stops_at_max_redirects_10_without_requesting_the_11th_target(
    http: HttpLayer, chain: tuple[Chain, ThreadedUvicorn]
) -> None:
    app, server = chain
    result = Checker(http).check(
        f"{server.url}/chain/stop/11", CheckOptions(timeout_s=10, max_redirects=10)
    )
    assert kind(result) is ErrorKind.TOO_MANY_REDIRECTS
    assert result.ok is False
    assert result.status_code is None
    # Every redirect received is listed, the 11th included; its target was never fetched.
    assert len(result.redirects) == 11
    assert [hop.url.rsplit("/", 1)[1] for hop in result.redirects] == [
        str(n) for n in range(11, 0, -1)
    ]
    assert result.redirects[-1].location == f"{server.url}/chain/stop/0"
    assert app.seen("stop") == {f"/chain/stop/{n}": 1 for n in range(11, 0, -1)}


def test_an_11_hop_chain_is_followed_to_the_end_with_max_redirects_11(
    http: HttpLayer, chain: tuple[Chain, ThreadedUvicorn]
) -> None:
    app, server = chain
    result = Checker(http).check(
        f"{server.url}/chain/go/11", CheckOptions(timeout_s=10, max_redirects=11)
    )
    assert kind(result) is None
    assert result.ok is True
    assert result.status_code == 200
    assert len(result.redirects) == 11
    assert result.final_url == f"{server.url}/chain/go/0"
    assert app.seen("go") == {f"/chain/go/{n}": 1 for n in range(11, -1, -1)}


def test_body_assertions_say_when_the_decoded_body_was_cut_at_the_cap(
    http: HttpLayer, bombs: dict[str, tuple[bytes, ThreadedUvicorn]]
) -> None:
    # 20 KB on the wire, all of it read; 2 MiB once decoded, of which the assertions see the
    # first 1 MiB. A failure must say the body was cut, not that the whole of it lacks the
    # text or is not JSON, as it does when the raw body is cut at the cap.
    _, server = bombs["gzip"]
    assertions = Assertions.model_validate(
        {"body_contains": ["absent"], "json_path": [{"path": "$.status", "equals": "ok"}]}
    )
    result = Checker(http).check(
        f"{server.url}/big-json", CheckOptions(timeout_s=30, assertions=assertions)
    )
    assert result.status_code == 200
    assert result.bytes_read < DEFAULT_CAP
    assert kind(result) is ErrorKind.ASSERTION_FAILED
    actual = {failure.assertion: failure.actual for failure in result.failed_assertions}
    assert set(actual) == {"body_contains", "json_path $.status"}
    assert "truncated" in actual["body_contains"], actual
    assert "truncated" in actual["json_path $.status"], actual
