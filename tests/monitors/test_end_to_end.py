"""A monitor on a real `urlhealth serve` process, its target switched between 200 and 500:
one blip changes nothing, a real outage is exactly one incident, the state and the open
incident survive a restart, and recovery ends it; /metrics and /readyz say so."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from tests.support.process import running_service, wait_until
from tests.support.servers import ThreadedUvicorn

# Generous: a loaded 2-core machine; each wait polls and returns as soon as it holds.
WAIT_S = 60.0


class Switch:
    """The target's answer: a status for every request, or one status for the next only."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.status = 200
        self._once: int | None = None
        self.hits = 0

    def set(self, status: int) -> None:
        with self._lock:
            self.status, self._once = status, None

    def once(self, status: int) -> None:
        with self._lock:
            self._once = status

    def answer(self) -> int:
        with self._lock:
            self.hits += 1
            status, self._once = (self._once or self.status), None
            return status


@pytest.fixture
def switch() -> Iterator[tuple[Switch, str]]:
    state = Switch()

    async def endpoint(request: Request) -> PlainTextResponse:
        return PlainTextResponse("switch", status_code=state.answer())

    server = ThreadedUvicorn(Starlette(routes=[Route("/", endpoint)])).start()
    yield state, f"{server.url}/"
    server.stop()


def monitor_file(path: Path, url: str) -> Path:
    path.write_text(
        "[[monitors]]\n"
        'name = "Switched"\n'
        'slug = "switched"\n'
        f'url = "{url}"\n'
        "interval_s = 1\n"
        "failure_threshold = 3\n"
        "success_threshold = 2\n",
        encoding="utf-8",
    )
    return path


def get(client: httpx.Client, path: str) -> Any:
    response = client.get(path)
    assert response.status_code == 200, response.text
    return response.json()


def results(client: httpx.Client) -> list[dict[str, Any]]:
    page = get(client, "/v1/monitors/switched/results?limit=500")
    found: list[dict[str, Any]] = page["results"]
    return found


def wait_state(client: httpx.Client, state: str) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    def reached() -> bool:
        seen.update(get(client, "/v1/monitors/switched"))
        return bool(seen["state"] == state)

    assert wait_until(reached, WAIT_S, 0.2), f"state never became {state}: {seen}"
    return seen


def test_a_monitor_confirms_an_outage_once_keeps_it_across_a_restart_and_recovers(
    switch: tuple[Switch, str], tmp_path: Path
) -> None:
    target, url = switch
    env = {
        "URLHEALTH_DATABASE_URL": f"sqlite:///{tmp_path / 'urlhealth.db'}",
        "URLHEALTH_MONITORS_FILE": str(monitor_file(tmp_path / "monitors.toml", url)),
        "URLHEALTH_MONITOR_MIN_INTERVAL_S": "1",
    }
    with running_service(env=env) as service, httpx.Client(base_url=service.url) as client:
        wait_state(client, "up")
        # One blip: the next check fails, the ones after it succeed.
        target.once(500)
        assert wait_until(
            lambda: sum(r["outcome"] == "down" for r in results(client)) == 1, WAIT_S, 0.2
        )
        blip_at = len(results(client))
        assert wait_until(lambda: len(results(client)) >= blip_at + 3, WAIT_S, 0.2)
        assert get(client, "/v1/monitors/switched")["state"] == "up"
        assert get(client, "/v1/monitors/switched/incidents")["incidents"] == []

        target.set(500)
        down = wait_state(client, "down")
        (incident,) = get(client, "/v1/monitors/switched/incidents")["incidents"]
        assert incident["ended_at"] is None
        assert incident["worst_state"] == "down"
        families = {
            family.name: family
            for family in text_string_to_metric_families(client.get("/metrics").text)
        }
        (success,) = [
            s for s in families["probe_success"].samples if s.labels["monitor"] == "switched"
        ]
        assert success.value == 0
        kept = results(client)
        service.proc.send_signal(signal.SIGTERM)
        assert service.wait_exit(30.0) == 0, service.log()

    with running_service(env=env) as service, httpx.Client(base_url=service.url) as client:
        after = get(client, "/v1/monitors/switched")
        assert after["state"] == "down"
        assert after["state_since"] == down["state_since"]
        (still_open,) = get(client, "/v1/monitors/switched/incidents")["incidents"]
        assert still_open["id"] == incident["id"]
        assert still_open["ended_at"] is None
        # Every result read before the stop is still there (the drain flushed the writer).
        assert all(result in results(client) for result in kept)

        target.set(200)
        wait_state(client, "up")
        (ended,) = get(client, "/v1/monitors/switched/incidents")["incidents"]
        assert ended["id"] == incident["id"]
        assert ended["ended_at"] is not None
        uptime = get(client, "/v1/monitors/switched/uptime?window=1h")
        assert uptime["incidents"] == 1


def test_readyz_fails_and_says_why_when_monitor_checks_start_late(tmp_path: Path) -> None:
    # One reserved worker and one host slot, three monitors of a target that answers only
    # after 3 s: each check waits for the one before it, well past monitor_stall_s.
    release = threading.Event()

    async def slow(request: Request) -> PlainTextResponse:
        await anyio.to_thread.run_sync(release.wait, 3.0)
        return PlainTextResponse("late")

    server = ThreadedUvicorn(Starlette(routes=[Route("/", slow)])).start()
    lines = []
    for n in range(3):
        lines += [
            "[[monitors]]",
            f'name = "Slow {n}"',
            f'url = "{server.url}/?n={n}"',
            "interval_s = 1",
            "options = { timeout_s = 10 }",
        ]
    (tmp_path / "monitors.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    env = {
        "URLHEALTH_MONITORS_FILE": str(tmp_path / "monitors.toml"),
        "URLHEALTH_MONITOR_MIN_INTERVAL_S": "1",
        "URLHEALTH_MONITOR_WORKERS": "1",
        "URLHEALTH_MONITOR_SLOTS_PER_HOST": "1",
        "URLHEALTH_WORKERS": "1",
        "URLHEALTH_MAX_CONNECTIONS_PER_HOST_PER_REPLICA": "1",
        "URLHEALTH_MONITOR_STALL_S": "1",
    }
    try:
        with (
            running_service(env=env, workers=1) as service,
            httpx.Client(base_url=service.url) as client,
        ):
            seen: dict[str, Any] = {}

            def stalled() -> bool:
                answer = client.get("/readyz")
                seen.update(answer.json(), code=answer.status_code)
                return answer.status_code == 503

            assert wait_until(stalled, WAIT_S, 0.2), seen
            assert seen["status"] == "monitors_stalled"
            assert "monitor_stall_s" in seen["reason"]
            assert get(client, "/v1/status")["monitors"]["lag_p99_s"] > 1
    finally:
        release.set()
        server.stop()
