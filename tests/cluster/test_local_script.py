"""scripts/cluster-local.sh as users run it: a real bash process that starts its own PostgreSQL,
one API and two worker replicas; then SIGTERM to the script stops every one of them."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.support.postgres import PostgresUnavailable, _bindir, unavailable
from tests.support.process import wait_until
from tests.support.servers import ThreadedUvicorn

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "cluster-local.sh"
START_TIMEOUT_S = 120.0  # initdb + three replicas, on a loaded 2-core machine
STOP_TIMEOUT_S = 60.0

LINE = re.compile(r"^cluster-local: (\S+) pid (\d+)(?: role \S+ (http://\S+))?", re.M)


def running(pid: int) -> bool:
    """Alive and not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def processes_mentioning(text: str) -> list[int]:
    """Live processes whose command line contains `text` (the cluster's data directory)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if text in (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(
                errors="replace"
            ) and running(int(entry.name)):
                found.append(int(entry.name))
    return found


@dataclass
class LocalCluster:
    proc: subprocess.Popen[bytes]
    data: Path
    output: Path
    pids: dict[str, int] = field(default_factory=dict)
    urls: dict[str, str] = field(default_factory=dict)
    api_url: str = ""

    def text(self) -> str:
        return self.output.read_text(errors="replace")

    def logs(self) -> str:
        parts = [f"--- script output ---\n{self.text()}"]
        for log in sorted((self.data / "logs").glob("*.log")):
            parts.append(f"--- {log.name} ---\n{log.read_text(errors='replace')[-3000:]}")
        return "\n".join(parts)

    def wait_started(self) -> None:
        started = wait_until(
            lambda: "API_URL=" in self.text() or self.proc.poll() is not None,
            START_TIMEOUT_S,
            interval_s=0.2,
        )
        if not started or "API_URL=" not in self.text():
            raise AssertionError(f"the cluster did not start:\n{self.logs()}")
        self.api_url = self.text().split("API_URL=", 1)[1].split()[0]
        for name, pid, url in LINE.findall(self.text()):
            self.pids[name] = int(pid)
            if url:
                self.urls[name] = url


@contextlib.contextmanager
def local_cluster(workers: int = 2) -> Iterator[LocalCluster]:
    try:
        _bindir()
    except PostgresUnavailable as exc:
        unavailable(str(exc), os.environ.get("CI") == "true")
    # Under /tmp, open to others: as root the script runs PostgreSQL as `postgres`, which must
    # reach it (pytest's tmp_path is under a directory only root may enter).
    data = Path(tempfile.mkdtemp(prefix="urlhealth-cluster-local-"))
    data.chmod(0o755)
    output = data / "script.out"
    env = {k: v for k, v in os.environ.items() if not k.startswith("URLHEALTH_")}
    env.update(
        URLHEALTH_ALLOWED_NETWORKS="127.0.0.0/8,::1/128",
        URLHEALTH_SHUTDOWN_GRACE_S="2",
        URLHEALTH_CLUSTER_LEASE_S="6",
        URLHEALTH_WORKERS="8",
    )
    command = ["bash", str(SCRIPT), "--port", "0", "--workers", str(workers)]
    command += ["--data", str(data), "--venv", sys.prefix, "--stop-timeout", "30"]
    with output.open("wb") as sink:
        proc = subprocess.Popen(
            command, stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
        )
    cluster = LocalCluster(proc, data, output)
    try:
        cluster.wait_started()
        yield cluster
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=STOP_TIMEOUT_S)
        # A test that failed half way: whatever it started and left is killed, by pid.
        leftovers = [p for p in cluster.pids.values() if running(p)]
        for pid in leftovers + processes_mentioning(str(data)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        shutil.rmtree(data, ignore_errors=True)


@pytest.fixture(scope="module")
def started() -> Iterator[LocalCluster]:
    with local_cluster() as cluster:
        yield cluster


def test_script_starts_postgres_one_api_and_two_workers(started: LocalCluster) -> None:
    assert set(started.pids) == {"postgres", "api", "worker-1", "worker-2"}, started.logs()
    assert all(running(pid) for pid in started.pids.values()), started.logs()
    with httpx.Client(timeout=5.0, trust_env=False) as client:
        assert client.get(f"{started.api_url}/readyz").status_code == 200
        status = client.get(f"{started.api_url}/v1/status")
        assert status.status_code == 200, status.text
        assert status.json()["database"]["backend"] == "postgresql"
        for name in ("worker-1", "worker-2"):
            assert client.get(f"{started.urls[name]}/readyz").status_code == 200, name


def test_a_job_submitted_to_the_api_completes(
    started: LocalCluster, target: ThreadedUvicorn
) -> None:
    """End to end through the queue: the API replica runs no checks, the workers do."""
    urls = [f"{target.url}/status/200?n={i}" for i in range(20)]
    with httpx.Client(timeout=10.0, trust_env=False) as client:
        created = client.post(f"{started.api_url}/v1/jobs", json={"urls": urls})
        assert created.status_code == 202, created.text
        job_id = created.json()["id"]
        last: dict[str, object] = {}

        def done() -> bool:
            last.update(client.get(f"{started.api_url}/v1/jobs/{job_id}").json())
            return last.get("status") not in ("queued", "running")

        assert wait_until(done, 60.0, interval_s=0.3), f"{last}\n{started.logs()}"
        assert last["status"] == "done", last
        results = last["results"]
        assert isinstance(results, list)
        assert sorted(r["url"] for r in results) == sorted(urls)
        assert all(r["ok"] for r in results), results
        # Checked by the workers: the API replica's own engine ran none of them.
        checked = {
            name: client.get(f"{started.urls[name]}/v1/status").json()["checked_total"]
            for name in ("api", "worker-1", "worker-2")
        }
        assert checked["api"] == 0, checked
        assert checked["worker-1"] + checked["worker-2"] == len(urls), checked


def test_sigterm_to_the_script_stops_every_replica_then_postgres() -> None:
    with local_cluster() as cluster:
        assert len(cluster.pids) == 4, cluster.logs()
        cluster.proc.send_signal(signal.SIGTERM)
        try:
            rc = cluster.proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            rc = None
        assert rc == 0, f"script status {rc}\n{cluster.logs()}"
        left = {name: pid for name, pid in cluster.pids.items() if running(pid)}
        assert left == {}, cluster.logs()
        assert processes_mentioning(str(cluster.data)) == [], cluster.logs()
        # Each replica drained (SIGTERM), rather than being killed.
        for name in ("api", "worker-1", "worker-2"):
            log = (cluster.data / "logs" / f"{name}.log").read_text(errors="replace")
            assert "Application shutdown complete" in log, log[-3000:]
        assert "stopping PostgreSQL" in cluster.text()
