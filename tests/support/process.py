"""A real urlhealth service process on loopback: started, waited for, and always reaped.

The process writes stdout and stderr to one temporary file (a pipe nobody reads could fill
and block it); `log()` reads that file back. Also here: `StreamFollower`, a client holding a
job's NDJSON stream open on its own thread, and `wait_until`, a bounded polling helper.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx

from tests.support.servers import free_port

# A bound, not a target: a process starting on a loaded 2-core machine (a benchmark beside
# the suite) took over 20 s to import and bind.
START_TIMEOUT_S = 60.0


def serve_command(port: int) -> list[str]:
    """`urlhealth serve`, run through the interpreter running the tests."""
    return [sys.executable, "-m", "app", "serve", "--host", "127.0.0.1", "--port", str(port)]


def uvicorn_command(port: int) -> list[str]:
    """Plain `uvicorn app.main:app`: settings come from the environment only."""
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "app.main:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]


def service_env(grace_s: float, workers: int, **extra: str) -> dict[str, str]:
    """The parent's environment without any URLHEALTH_ setting, then the test's settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("URLHEALTH_")}
    env.update(
        {
            "URLHEALTH_SHUTDOWN_GRACE_S": str(grace_s),
            "URLHEALTH_WORKERS": str(workers),
            "URLHEALTH_ALLOWED_NETWORKS": "127.0.0.0/8,::1/128",
            "URLHEALTH_LOG_LEVEL": "info",
            "PYTHONUNBUFFERED": "1",
            # Never the developer's ./data: a test that restarts on one file passes its own.
            "URLHEALTH_DATABASE_URL": "memory://",
        }
    )
    env.update(extra)
    return env


class ServiceProcess:
    """A started service process; `.url`, `.proc`, `.log()`."""

    def __init__(self, command: Sequence[str], port: int, env: Mapping[str, str]) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self._log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed in stop()
            prefix="urlhealth-", suffix=".log", delete=False
        )
        self.log_path = Path(self._log.name)
        repo = Path(__file__).resolve().parents[2]
        self.proc = subprocess.Popen(
            list(command),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=dict(env),
            cwd=repo,  # `-m app` and `app.main:app` import the working tree
        )

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def wait_ready(self, timeout_s: float = START_TIMEOUT_S) -> None:
        """Poll /readyz until 200; fail with the log if the process dies or time runs out."""
        deadline = time.monotonic() + timeout_s
        pause = threading.Event()
        with httpx.Client(timeout=2.0, trust_env=False) as client:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(
                        f"service exited with {self.proc.returncode} before it was ready:\n"
                        + self.log()
                    )
                with contextlib.suppress(httpx.TransportError):
                    if client.get(f"{self.url}/readyz").status_code == 200:
                        return
                pause.wait(0.1)
        raise RuntimeError(f"service not ready within {timeout_s} s:\n{self.log()}")

    def wait_exit(self, timeout_s: float) -> int | None:
        """The return code, or None if still running after `timeout_s`."""
        try:
            return self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return None

    def stop(self) -> None:
        """Teardown: a process still alive here is one a test gave up on; kill it."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10.0)
        self._log.close()
        with contextlib.suppress(OSError):
            self.log_path.unlink()


@contextlib.contextmanager
def running_service(
    command: Callable[[int], Sequence[str]] = serve_command,
    *,
    grace_s: float = 2.0,
    workers: int = 4,
    env: Mapping[str, str] | None = None,
) -> Iterator[ServiceProcess]:
    """Start `command(port)` (by default `urlhealth serve`) on a free port, wait until ready;
    on the way out, kill it if it is still alive."""
    port = free_port()
    proc = ServiceProcess(command(port), port, service_env(grace_s, workers, **(env or {})))
    try:
        proc.wait_ready()
        yield proc
    finally:
        proc.stop()


def wait_until(predicate: Callable[[], bool], timeout_s: float, interval_s: float = 0.05) -> bool:
    """Poll `predicate` until true or `timeout_s` passes; returns its last value."""
    deadline = time.monotonic() + timeout_s
    pause = threading.Event()
    while not predicate():
        if time.monotonic() >= deadline:
            return predicate()
        pause.wait(interval_s)
    return True


class StreamFollower:
    """A client holding `GET /v1/jobs/{id}/stream` open on a thread of its own.

    Every line is kept, parsed, with the monotonic time it arrived. `finished` is set when the
    stream ends for any reason; `error` then says whether it ended badly.
    """

    def __init__(self, base_url: str, job_id: str) -> None:
        self._url = f"{base_url}/v1/jobs/{job_id}/stream"
        self.lines: list[tuple[float, dict[str, Any]]] = []
        self.opened = threading.Event()
        self.finished = threading.Event()
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._read, name="stream-follower", daemon=True)

    def start(self, timeout_s: float = 10.0) -> StreamFollower:
        """Start reading; returns once the response headers arrived."""
        self._thread.start()
        self.opened.wait(timeout_s)
        if not self.opened.is_set():
            raise RuntimeError(f"the stream did not open within {timeout_s} s: {self.error!r}")
        return self

    def _read(self) -> None:
        try:
            timeout = httpx.Timeout(60.0, connect=5.0)
            with (
                httpx.Client(timeout=timeout, trust_env=False) as client,
                client.stream("GET", self._url) as response,
            ):
                response.raise_for_status()
                self.opened.set()
                for line in response.iter_lines():
                    if line.strip():
                        self.lines.append((time.monotonic(), json.loads(line)))
        except BaseException as exc:  # reported to the test through `error`
            self.error = exc
        finally:
            self.finished.set()

    def wait_finished(self, timeout_s: float) -> bool:
        return self.finished.wait(timeout_s)

    @property
    def results(self) -> list[dict[str, Any]]:
        return [line["result"] for _, line in list(self.lines) if line["type"] == "result"]

    def kinds_by_url(self) -> dict[str, list[str]]:
        """Each URL's result lines, as error kinds ("ok" for a healthy result)."""
        kinds: dict[str, list[str]] = {}
        for result in self.results:
            kind = "ok" if result["ok"] else result["error"]["kind"]
            kinds.setdefault(result["url"], []).append(kind)
        return kinds

    def arrival(self, url: str) -> float:
        """When the (first) result line for `url` arrived."""
        for at, line in list(self.lines):
            if line["type"] == "result" and line["result"]["url"] == url:
                return at
        raise KeyError(url)

    @property
    def end(self) -> dict[str, Any] | None:
        """The `end` line, if the stream ended with one as its last line."""
        lines = list(self.lines)
        if lines and lines[-1][1]["type"] == "end":
            return lines[-1][1]
        return None
