"""SIGHUP reloads the monitors file of a real process, under `urlhealth serve` and plain
`uvicorn app.main:app` alike, and never ends it (SIGHUP's default action would)."""

from __future__ import annotations

import signal
from collections.abc import Callable, Sequence
from pathlib import Path

import httpx
import pytest

from tests.support.process import (
    ServiceProcess,
    running_service,
    serve_command,
    uvicorn_command,
    wait_until,
)

pytestmark = pytest.mark.slow

ONE = '[[monitors]]\nname = "One"\nslug = "one"\nurl = "http://127.0.0.1:9/one"\n'
TWO = ONE + '\n[[monitors]]\nname = "Two"\nslug = "two"\nurl = "http://127.0.0.1:9/two"\n'


def slugs(svc: ServiceProcess) -> list[str]:
    with httpx.Client(base_url=svc.url, timeout=10.0, trust_env=False) as client:
        response = client.get("/v1/monitors")
    assert response.status_code == 200, response.text
    return [m["slug"] for m in response.json()["monitors"]]


@pytest.mark.parametrize("command", [serve_command, uvicorn_command])
def test_sighup_reloads_the_file_and_the_process_keeps_serving(
    tmp_path: Path, command: Callable[[int], Sequence[str]]
) -> None:
    path = tmp_path / "monitors.toml"
    path.write_text(ONE, encoding="utf-8")
    env = {
        "URLHEALTH_MONITORS_FILE": str(path),
        "URLHEALTH_DATABASE_URL": f"sqlite:///{tmp_path / 'urlhealth.db'}",
    }
    with running_service(command, grace_s=1.0, workers=2, env=env) as svc:
        assert slugs(svc) == ["one"]

        path.write_text(TWO, encoding="utf-8")
        svc.proc.send_signal(signal.SIGHUP)
        assert wait_until(lambda: slugs(svc) == ["one", "two"], 15.0), svc.log()

        # A bad file: logged, nothing changes, the process lives on.
        path.write_text(ONE + "interval_s = 0.5\n", encoding="utf-8")
        svc.proc.send_signal(signal.SIGHUP)
        # The summary and each error are separate log lines: wait for the error's.
        assert wait_until(lambda: "monitors[0] 'One': interval_s" in svc.log(), 15.0), svc.log()
        assert "monitors file not loaded" in svc.log()
        assert slugs(svc) == ["one", "two"]
        assert svc.proc.poll() is None

        # SIGTERM still ends it (plain uvicorn re-raises it at exit: no status 0 there).
        svc.proc.send_signal(signal.SIGTERM)
        assert svc.wait_exit(15.0) is not None, svc.log()
