"""Streaming a job's results as NDJSON: live, in completion order, for late and early clients."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, cast

import httpx

from tests.conftest import RunningService
from tests.support.api import gated_server, get_job, status, submit, wait_final, wait_for
from tests.support.servers import ThreadedUvicorn, iter_ndjson

ServiceFactory = Callable[..., RunningService]

# A stream that stalls this long has lost a result: fail instead of waiting for the gate.
READ_TIMEOUT = httpx.Timeout(10.0)


@contextmanager
def open_stream(svc: RunningService, job_id: str) -> Iterator[Iterator[dict[str, Any]]]:
    with svc.client.stream("GET", f"/v1/jobs/{job_id}/stream", timeout=READ_TIMEOUT) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/x-ndjson")
        yield cast(Iterator[dict[str, Any]], iter_ndjson(response.iter_lines()))


def take(lines: Iterator[dict[str, Any]], count: int) -> list[dict[str, Any]]:
    taken = [next(lines) for _ in range(count)]
    assert all(line["type"] == "result" for line in taken), taken
    return taken


def urls_of(lines: list[dict[str, Any]]) -> list[str]:
    return [line["result"]["url"] for line in lines]


def test_stream_sends_one_result_line_per_url_then_an_end_line(
    service: RunningService, target: ThreadedUvicorn
) -> None:
    urls = [f"{target.url}/status/{code}" for code in (200, 203, 500)]
    job_id = submit(service.client, urls)["id"]

    with open_stream(service, job_id) as lines:
        received = list(lines)

    *results, end = received
    assert [line["type"] for line in results] == ["result"] * 3
    assert sorted(urls_of(results)) == sorted(urls)
    assert all(set(line) == {"type", "result"} for line in results)
    assert end["type"] == "end"
    assert end["job"]["id"] == job_id
    assert end["job"]["status"] == "done"
    assert end["job"]["completed"] == end["job"]["total"] == 3
    assert end["job"]["summary"]["up"] == 2
    assert end["job"]["summary"]["errors"] == {"unexpected_status": 1}


def test_stream_yields_fast_urls_before_a_slow_one_submitted_first(
    service: RunningService, target: ThreadedUvicorn
) -> None:
    with gated_server() as gate:
        slow = f"{gate.url}/slow"
        fast = [f"{target.url}/delay/0?n={n}" for n in range(3)]
        job_id = submit(service.client, [slow, *fast])["id"]

        with open_stream(service, job_id) as lines:
            # The slow check cannot finish until the gate opens: the fast ones must come now.
            first = take(lines, 3)
            gate.release()
            rest = list(lines)

    assert sorted(urls_of(first)) == sorted(fast)
    assert [line["type"] for line in rest] == ["result", "end"]
    assert rest[0]["result"]["url"] == slow
    assert rest[0]["result"]["ok"] is True
    assert rest[1]["job"]["status"] == "done"


def test_client_connecting_after_the_job_finished_gets_every_result_then_end(
    service: RunningService, target: ThreadedUvicorn
) -> None:
    urls = [f"{target.url}/status/{code}" for code in (200, 201, 202, 404)]
    job_id = submit(service.client, urls)["id"]
    finished = wait_final(service.client, job_id)

    with open_stream(service, job_id) as lines:
        received = list(lines)

    *results, end = received
    # Same results, same (completion) order as the job resource.
    assert [line["result"] for line in results] == finished["results"]
    header = {k: v for k, v in finished.items() if k not in ("results", "offset", "limit")}
    assert end == {"type": "end", "job": header}
    assert header["status"] == "done"


def test_client_connecting_mid_job_gets_finished_results_first_then_the_rest(
    service: RunningService, target: ThreadedUvicorn
) -> None:
    with gated_server() as gate:
        slow = f"{gate.url}/slow"
        fast = [f"{target.url}/status/{code}" for code in (200, 201, 202)]
        job_id = submit(service.client, [slow, *fast])["id"]
        wait_for(lambda: get_job(service.client, job_id)["completed"] == 3, what="the fast checks")

        with open_stream(service, job_id) as lines:
            already = take(lines, 3)
            gate.release()
            rest = list(lines)

    assert sorted(urls_of(already)) == sorted(fast)
    assert [line["type"] for line in rest] == ["result", "end"]
    assert rest[0]["result"]["url"] == slow
    assert rest[1]["job"]["status"] == "done"
    assert rest[1]["job"]["completed"] == 4


def test_two_clients_on_one_job_each_get_every_result(
    service: RunningService, target: ThreadedUvicorn
) -> None:
    with gated_server() as gate:
        urls = [f"{gate.url}/held", f"{target.url}/status/200"]
        job_id = submit(service.client, urls)["id"]
        with open_stream(service, job_id) as one, open_stream(service, job_id) as two:
            gate.release()
            got_one, got_two = list(one), list(two)

    for received in (got_one, got_two):
        assert sorted(urls_of(received[:-1])) == sorted(urls)
        assert received[-1]["job"]["status"] == "done"


def test_stream_of_unknown_job_is_404_json(service: RunningService) -> None:
    response = service.client.get("/v1/jobs/no-such-job/stream")

    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/json")
    assert "no-such-job" in response.json()["detail"]


def test_stream_of_cancelled_job_ends_with_status_cancelled(
    service_factory: ServiceFactory, target: ThreadedUvicorn
) -> None:
    svc = service_factory(workers=1)
    with gated_server() as gate:
        held = f"{gate.url}/held"
        queued = [f"{target.url}/status/{code}" for code in (200, 201, 202)]
        job_id = submit(svc.client, [held, *queued])["id"]
        wait_for(lambda: status(svc.client)["checks_running"] == 1, what="the held check")

        with open_stream(svc, job_id) as lines:
            assert svc.client.delete(f"/v1/jobs/{job_id}").status_code == 200
            cancelled = take(lines, 3)
            gate.release()
            rest = list(lines)

    assert sorted(urls_of(cancelled)) == sorted(queued)
    assert {line["result"]["error"]["kind"] for line in cancelled} == {"cancelled"}
    assert [line["type"] for line in rest] == ["result", "end"]
    assert rest[0]["result"]["url"] == held
    assert rest[0]["result"]["ok"] is True  # the running check finished normally
    assert rest[1]["job"]["status"] == "cancelled"
    assert rest[1]["job"]["completed"] == 4
