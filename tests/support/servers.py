"""Real servers on loopback for the tests: an HTTP target with every behaviour the engine must
handle, raw-socket misbehavers, and the urlhealth service itself."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class ThreadedUvicorn:
    """An ASGI app served by uvicorn in a thread of this process, on a real loopback port."""

    def __init__(
        self, app: object, host: str = "127.0.0.1", port: int | None = None, **config: object
    ) -> None:
        self.host = host
        self.port = port or free_port(host)
        cfg = uvicorn.Config(
            app,  # type: ignore[arg-type]
            host=host,
            port=self.port,
            log_level="warning",
            lifespan="on",
            timeout_graceful_shutdown=5,
            **config,  # type: ignore[arg-type]
        )
        self.server = uvicorn.Server(cfg)
        self._thread = threading.Thread(target=self.server.run, name="uvicorn", daemon=True)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> ThreadedUvicorn:
        self._thread.start()
        started = threading.Event()
        # Bounded: 30 s. A loaded 2-core machine has been seen to take over 10 s.
        for _ in range(600):
            if self.server.started:
                started.set()
                break
            started.wait(0.05)
        if not started.is_set():
            raise RuntimeError("uvicorn did not start within 30 s")
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=15)


# --- the target: a well-behaved but configurable HTTP server ---------------------------------


async def _delay(request: Request) -> Response:
    ms = int(request.path_params["ms"])
    await asyncio.sleep(ms / 1000)
    return PlainTextResponse("ok")


async def _status(request: Request) -> Response:
    code = int(request.path_params["code"])
    if code < 200 or code in (204, 304):  # these may not carry a body
        return Response(status_code=code)
    return PlainTextResponse(f"status {code}", status_code=code)


async def _redirect_chain(request: Request) -> Response:
    # /redirect/3 -> /redirect/2 -> /redirect/1 -> /status/200
    n = int(request.path_params["n"])
    target = "/status/200" if n <= 1 else f"/redirect/{n - 1}"
    return RedirectResponse(target, status_code=302)


async def _loop(request: Request) -> Response:
    other = "b" if request.path_params["side"] == "a" else "a"
    return RedirectResponse(f"/loop/{other}", status_code=301)


async def _bytes(request: Request) -> Response:
    size = int(request.path_params["n"])
    chunk = b"x" * 65536

    async def body() -> object:
        left = size
        while left > 0:
            piece = chunk[: min(left, len(chunk))]
            left -= len(piece)
            yield piece

    return StreamingResponse(body(), media_type="application/octet-stream")  # type: ignore[arg-type]


async def _head_unsupported(request: Request) -> Response:
    if request.method == "HEAD":
        return PlainTextResponse("", status_code=405)
    return PlainTextResponse("got " + request.method)


async def _echo_headers(request: Request) -> Response:
    lines = [f"{k}: {v}" for k, v in request.headers.items()]
    return PlainTextResponse("\n".join(lines))


def target_app() -> Starlette:
    return Starlette(
        routes=[
            Route("/delay/{ms:int}", _delay),
            Route("/status/{code:int}", _status, methods=["GET", "HEAD"]),
            Route("/redirect/{n:int}", _redirect_chain, methods=["GET", "HEAD"]),
            Route("/loop/{side}", _loop),
            Route("/bytes/{n:int}", _bytes),
            Route("/head-405", _head_unsupported, methods=["GET", "HEAD"]),
            Route("/headers", _echo_headers),
        ]
    )


# --- raw misbehaving servers ----------------------------------------------------------------


@dataclass
class RawServer:
    """A TCP listener that runs `handler(conn)` for each connection, in threads."""

    handler: Callable[[socket.socket], None]
    host: str = "127.0.0.1"

    def __post_init__(self) -> None:
        self._sock = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((self.host, 0))
        self._sock.listen(64)
        self.port = int(self._sock.getsockname()[1])
        self.connections = 0
        self._stop = threading.Event()
        self._conns: list[socket.socket] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _serve(self) -> None:
        self._sock.settimeout(0.1)
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except (TimeoutError, OSError):
                continue
            self.connections += 1
            self._conns.append(conn)
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        with contextlib.suppress(OSError):
            self.handler(conn)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._sock.close()
        for conn in self._conns:
            with contextlib.suppress(OSError):
                conn.close()


def hang_until(stop: threading.Event) -> Callable[[socket.socket], None]:
    """Accept, read the request, never answer (until the test ends)."""

    def handler(conn: socket.socket) -> None:
        conn.recv(65536)
        stop.wait(60)

    return handler


def answer_garbage(conn: socket.socket) -> None:
    conn.recv(65536)
    conn.sendall(b"THIS IS NOT HTTP\r\n\r\n")
    conn.close()


def close_without_answer(conn: socket.socket) -> None:
    conn.recv(65536)
    conn.close()


def refused_port() -> int:
    """A loopback port with nothing listening: connecting is refused at once."""
    return free_port()


def iter_ndjson(lines: Iterator[str]) -> Iterator[dict[str, object]]:
    import json

    for line in lines:
        if line.strip():
            yield json.loads(line)
