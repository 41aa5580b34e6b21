"""The loopback target: nginx with the echo module, serving fixed delays and status codes.

nginx answers delayed responses from timers, at well over 10,000 requests/s on one core,
so it is not the bottleneck (a Python target server would be). It listens on one port on
127.0.0.1 .. 127.0.0.8 so the URLs look like eight hosts.

Paths:
  /delay/<ms>     -> 200 "ok" after <ms> milliseconds (echo_sleep, in seconds)
  /status/<code>  -> <code> with a short body
Any query string is ignored, so every URL can be unique (``?i=<n>``).
"""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

HOSTS: tuple[str, ...] = tuple(f"127.0.0.{i}" for i in range(1, 9))
DEFAULT_DELAYS_MS: tuple[int, ...] = (0, 1, 5, 10, 20, 50, 100, 200, 500, 1000)
DEFAULT_STATUSES: tuple[int, ...] = (200, 201, 204, 400, 404, 410, 418, 500, 502, 503)
ECHO_MODULE_CANDIDATES: tuple[str, ...] = (
    "/usr/lib/nginx/modules/ngx_http_echo_module.so",
    "/usr/lib64/nginx/modules/ngx_http_echo_module.so",
    "/usr/local/lib/nginx/modules/ngx_http_echo_module.so",
)


class TargetError(RuntimeError):
    """nginx could not be found, configured or started."""


def find_nginx() -> str:
    for candidate in (shutil.which("nginx"), "/usr/sbin/nginx"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise TargetError("nginx not found: install nginx-light and libnginx-mod-http-echo")


def find_echo_module() -> str:
    for candidate in ECHO_MODULE_CANDIDATES:
        if os.path.isfile(candidate):
            return candidate
    raise TargetError("ngx_http_echo_module.so not found: install libnginx-mod-http-echo")


def nofile_limit() -> int:
    """The open-files limit nginx may set for itself: the hard limit, capped at 65536."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return 65536 if hard == resource.RLIM_INFINITY else min(hard, 65536)


def raise_nofile() -> int:
    """Raise this process's soft open-files limit to the hard one (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def free_port(host: str = "127.0.0.1") -> int:
    """A port free on every target host (bind on 127.0.0.1 covers only that address,
    so the port is checked on all eight)."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind((host, 0))
            port = int(probe.getsockname()[1])
        if all(_port_free(h, port) for h in HOSTS):
            return port
    raise TargetError("no free port found on 127.0.0.1-8")


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def _delay_location(ms: int) -> str:
    body = "echo ok;" if ms == 0 else f"echo_sleep {ms / 1000:.3f}; echo ok;"
    return f"        location = /delay/{ms} {{ default_type text/plain; {body} }}"


def _status_location(code: int) -> str:
    body = "" if code == 204 else f' "status {code}\\n"'
    return f"        location = /status/{code} {{ default_type text/plain; return {code}{body}; }}"


def render_config(
    workdir: Path,
    port: int,
    module: str,
    *,
    worker_processes: int = 1,
    delays_ms: Iterable[int] = DEFAULT_DELAYS_MS,
    statuses: Iterable[int] = DEFAULT_STATUSES,
    extra_locations: str = "",
) -> str:
    listens = "\n".join(f"        listen {host}:{port} backlog=4096 reuseport;" for host in HOSTS)
    locations = "\n".join(
        [_delay_location(ms) for ms in sorted(set(delays_ms))]
        + [_status_location(code) for code in sorted(set(statuses))]
    )
    if extra_locations:
        locations += "\n" + extra_locations
    user = "user root;" if os.geteuid() == 0 else ""
    nofile = nofile_limit()
    temp_paths = "\n".join(
        f"    {name}_temp_path {workdir / name};"
        for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""\
load_module {module};
{user}
daemon off;
master_process on;
worker_processes {worker_processes};
worker_rlimit_nofile {nofile};
pid {workdir / "nginx.pid"};
error_log {workdir / "error.log"} warn;

events {{
    worker_connections {nofile // 2};
    multi_accept on;
}}

http {{
    access_log off;
    server_tokens off;
    keepalive_timeout 75s;
    keepalive_requests 1000000;
    reset_timedout_connection on;
{temp_paths}

    server {{
{listens}
        server_name _;
{locations}
        location / {{ return 404 "no such path\\n"; }}
    }}
}}
"""


@dataclass
class NginxTarget:
    """Context manager: writes the config, starts nginx, waits until it answers, stops it."""

    worker_processes: int = 1
    delays_ms: tuple[int, ...] = DEFAULT_DELAYS_MS
    statuses: tuple[int, ...] = DEFAULT_STATUSES
    # More `location` blocks for the server (bench/alerts_burst.py's switchable dependency).
    extra_locations: str = ""
    start_timeout_s: float = 10.0
    port: int = 0
    workdir: Path = field(default_factory=lambda: Path())
    process: subprocess.Popen[bytes] | None = None
    _tmp: tempfile.TemporaryDirectory[str] | None = None

    @property
    def hosts(self) -> tuple[str, ...]:
        return HOSTS

    def url(self, host_index: int, path: str) -> str:
        return f"http://{HOSTS[host_index % len(HOSTS)]}:{self.port}{path}"

    def start(self) -> NginxTarget:
        nginx = find_nginx()
        module = find_echo_module()
        self._tmp = tempfile.TemporaryDirectory(prefix="urlhealth-bench-nginx-")
        self.workdir = Path(self._tmp.name)
        self.port = free_port()
        conf = self.workdir / "nginx.conf"
        conf.write_text(
            render_config(
                self.workdir,
                self.port,
                module,
                worker_processes=self.worker_processes,
                delays_ms=self.delays_ms,
                statuses=self.statuses,
                extra_locations=self.extra_locations,
            )
        )
        cmd = [
            nginx,
            "-p",
            str(self.workdir),
            "-c",
            str(conf),
            "-e",
            str(self.workdir / "error.log"),
        ]
        test = subprocess.run([*cmd, "-t"], capture_output=True, text=True, timeout=30)
        if test.returncode != 0:
            self.stop()
            raise TargetError(f"nginx -t failed:\n{test.stderr}")
        self.process = subprocess.Popen(
            cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
        )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout_s
        pending = list(HOSTS)
        while pending:
            if self.process is not None and self.process.poll() is not None:
                err = self.process.stderr.read().decode() if self.process.stderr else ""
                raise TargetError(f"nginx exited with {self.process.returncode}: {err}")
            if time.monotonic() > deadline:
                raise TargetError(
                    f"nginx did not answer on {pending} within {self.start_timeout_s}s"
                )
            host = pending[0]
            try:
                with urllib.request.urlopen(f"http://{host}:{self.port}/delay/0", timeout=1) as r:
                    if r.status == 200 and r.read() == b"ok\n":
                        pending.pop(0)
                        continue
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.05)

    def stop(self) -> None:
        proc, self.process = self.process, None
        if proc is not None and proc.poll() is None:
            # SIGQUIT is nginx's graceful stop; SIGTERM its fast one. Use fast: nothing to drain.
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        if proc is not None and proc.stderr is not None:
            proc.stderr.close()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def error_log_tail(self, lines: int = 20) -> str:
        path = self.workdir / "error.log"
        try:
            return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def __enter__(self) -> NginxTarget:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


if __name__ == "__main__":
    # Manual check: start the target, print its URLs, serve until Ctrl-C (at most 10 minutes).
    with NginxTarget() as target:
        print(f"nginx on port {target.port}: {target.url(0, '/delay/100')} ...", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            time.sleep(600)
