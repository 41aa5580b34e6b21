"""The service under test, started as a user runs it: ``urlhealth serve`` in a fresh process."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import requests
from target import free_port

CLK_TCK = os.sysconf("SC_CLK_TCK")


class ServiceError(RuntimeError):
    """The service could not be started or did not become ready."""


def find_urlhealth() -> str:
    """The console script next to this interpreter (the bench venv), else on PATH."""
    local = Path(sys.executable).parent / "urlhealth"
    if local.is_file():
        return str(local)
    found = shutil.which("urlhealth")
    if found is None:
        raise ServiceError("urlhealth console script not found: run bench/run.sh")
    return found


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc/<pid>/stat (all its threads)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
        text = handle.read()
    fields = text[text.rindex(")") + 2 :].split()
    # After "pid (comm) ": state is field 0, utime field 11, stime field 12.
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def memory_mb(pid: int) -> dict[str, float]:
    """VmHWM (peak RSS) and VmRSS of a process, in MB (MiB)."""
    out: dict[str, float] = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as handle:
        for line in handle:
            key, _, value = line.partition(":")
            if key in ("VmHWM", "VmRSS"):
                out[key] = int(value.split()[0]) / 1024.0
    return out


def context_switches(pid: int) -> dict[str, int]:
    """Voluntary (wake-ups: the thread blocked and was woken) and involuntary context
    switches, summed over the process's live threads (/proc/<pid>/task/*/status: the
    process's own status counts its main thread only)."""
    out = {"voluntary": 0, "involuntary": 0}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/status", encoding="ascii") as handle:
                for line in handle:
                    key, _, value = line.partition(":")
                    if key == "voluntary_ctxt_switches":
                        out["voluntary"] += int(value)
                    elif key == "nonvoluntary_ctxt_switches":
                        out["involuntary"] += int(value)
        except OSError:
            continue  # the thread exited meanwhile
    return out


def child_pids(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children", encoding="ascii") as handle:
            return [int(p) for p in handle.read().split()]
    except OSError:
        return []


@dataclass
class ServiceProcess:
    """Context manager: ``urlhealth serve`` on a free port with the scenario's settings."""

    workers: int
    max_connections_per_host_per_replica: int
    ready_timeout_s: float = 30.0
    stop_timeout_s: float = 30.0
    extra_env: dict[str, str] = field(default_factory=dict)
    # "sqlite": a fresh SQLite file in this run's temp dir (what users run, minus ./data);
    # "memory": memory:// (the same code on an in-process SQLite database).
    store: str = "sqlite"
    # More arguments for `urlhealth serve` (bench/topology.py: `--role api|worker`).
    serve_args: tuple[str, ...] = ()
    # Run under `nice -n` (bench/topology.py's cluster-nice: workers yield the CPU to the API).
    nice: int = 0
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    killed: bool = False
    exit_code: int | None = None
    startup_s: float = 0.0
    stop_s: float | None = None
    _log: Path | None = None
    _tmp: tempfile.TemporaryDirectory[str] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def tmp_dir(self) -> Path:
        if self._tmp is None:
            raise ServiceError("service not started")
        return Path(self._tmp.name)

    @property
    def db_path(self) -> Path | None:
        """The SQLite file of a `sqlite` run (None for memory:// or before start)."""
        if self.store != "sqlite" or self._tmp is None:
            return None
        return Path(self._tmp.name) / "urlhealth.db"

    def database_url(self) -> str:
        if self.store == "memory":
            return "memory://"
        if self.store == "sqlite":
            if self.db_path is None:
                raise ServiceError("service not started")
            return f"sqlite:///{self.db_path}"
        raise ServiceError(f"unknown store {self.store!r}")

    def db_bytes(self) -> dict[str, int] | None:
        """Sizes of the SQLite file and its -wal and -shm (absent ones as 0)."""
        path = self.db_path
        if path is None:
            return None
        sizes = {}
        for suffix in ("", "-wal", "-shm"):
            try:
                sizes["db" + suffix.replace("-", "_")] = os.path.getsize(f"{path}{suffix}")
            except OSError:
                sizes["db" + suffix.replace("-", "_")] = 0
        return sizes

    def db_bytes_by_object(self) -> dict[str, int] | None:
        """Bytes per table and index of the SQLite file (its dbstat virtual table), read-only;
        None for memory://, a missing file, or an SQLite built without dbstat."""
        path = self.db_path
        if path is None or not path.exists():
            return None
        try:
            with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
                rows = db.execute(
                    "SELECT name, SUM(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC"
                ).fetchall()
        except sqlite3.Error:
            return None
        return {str(name): int(size) for name, size in rows}

    @property
    def pid(self) -> int:
        if self.process is None:
            raise ServiceError("service not started")
        return self.process.pid

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("URLHEALTH_")}
        env.update(
            {
                "URLHEALTH_WORKERS": str(self.workers),
                "URLHEALTH_MAX_URLS_PER_JOB": "200000",
                "URLHEALTH_MAX_QUEUED_CHECKS": "200000",
                # 200,000 URLs of ~70 bytes: the default 4 MiB body limit holds ~55,000.
                "URLHEALTH_MAX_REQUEST_BYTES": str(32 * 2**20),
                "URLHEALTH_ALLOWED_NETWORKS": "127.0.0.0/8",
                "URLHEALTH_MAX_CONNECTIONS_PER_HOST_PER_REPLICA": str(
                    self.max_connections_per_host_per_replica
                ),
                "URLHEALTH_RETENTION_MAX_JOBS": "10",
                "URLHEALTH_LOG_LEVEL": "warning",
                # Always explicit: never the ./data of wherever the bench runs.
                "URLHEALTH_DATABASE_URL": self.database_url(),
                "URLHEALTH_DATA_DIR": str(self.tmp_dir / "data"),
            }
        )
        env.update(self.extra_env)
        return env

    def start(self) -> ServiceProcess:
        self._tmp = tempfile.TemporaryDirectory(prefix="urlhealth-bench-svc-")
        self._log = Path(self._tmp.name) / "service.log"
        self.port = free_port()
        cmd = [find_urlhealth(), "serve", "--host", "127.0.0.1", "--port", str(self.port)]
        cmd += self.serve_args
        if self.nice:  # nice execs the command: the pid stays the Python process's
            cmd = ["nice", "-n", str(self.nice), *cmd]
        started = time.perf_counter()
        with open(self._log, "wb") as log:
            # The console script is a Python script with a shebang: exec'd directly, so
            # the pid is the Python process itself, not a shell.
            self.process = subprocess.Popen(
                cmd,
                env=self.env(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        self.startup_s = time.perf_counter() - started
        exe = os.path.basename(os.readlink(f"/proc/{self.pid}/exe"))
        if not exe.startswith("python"):
            self.stop()
            raise ServiceError(f"pid {self.pid} is {exe!r}, not the Python service process")
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.ready_timeout_s
        while True:
            if self.process is not None and self.process.poll() is not None:
                raise ServiceError(
                    f"urlhealth serve exited with {self.process.returncode} before ready:\n"
                    + self.log_tail()
                )
            try:
                if requests.get(f"{self.base_url}/readyz", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise ServiceError(
                    f"GET /readyz not 200 within {self.ready_timeout_s}s:\n" + self.log_tail()
                )
            time.sleep(0.05)

    def cpu_s(self) -> float:
        return cpu_seconds(self.pid)

    def memory(self) -> dict[str, float]:
        return memory_mb(self.pid)

    def context_switches(self) -> dict[str, int]:
        return context_switches(self.pid)

    def children(self) -> list[int]:
        return child_pids(self.pid)

    def stop(self) -> None:
        """SIGTERM, wait up to stop_timeout_s, then SIGKILL (and note it)."""
        proc = self.process
        if proc is not None and proc.poll() is None:
            started = time.perf_counter()
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=self.stop_timeout_s)
            except subprocess.TimeoutExpired:
                self.killed = True
                proc.kill()
                proc.wait(timeout=10)
            self.stop_s = time.perf_counter() - started
        if proc is not None:
            self.exit_code = proc.returncode

    def log_tail(self, lines: int = 30) -> str:
        if self._log is None:
            return ""
        try:
            return "\n".join(self._log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def cleanup(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> ServiceProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
