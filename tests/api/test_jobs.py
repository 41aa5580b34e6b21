"""The jobs API over real HTTP: submit, validate, follow, page, list, cancel, back-pressure."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from app.schemas.jobs import JobPublic
from tests.conftest import RunningService, make_settings
from tests.support.api import gated_server, get_job, status, submit, wait_final, wait_for
from tests.support.servers import RawServer, ThreadedUvicorn, refused_port

ServiceFactory = Callable[..., RunningService]

# Validation fails before anything is fetched, so this URL is never contacted.
OK_URL = "http://127.0.0.1:9/ok"


@pytest.fixture(scope="module")
def shared() -> Iterator[RunningService]:
    """One service for the tests that only read or are refused: starting one per test is
    most of their run time."""
    svc = RunningService(make_settings())
    yield svc
    svc.close()


def _job_count(svc: RunningService) -> int:
    count: int = svc.client.get("/v1/jobs").json()["count"]
    return count


def _detail(response: Any) -> list[dict[str, Any]]:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/json")
    detail: list[dict[str, Any]] = response.json()["detail"]
    assert isinstance(detail, list)
    assert detail, "a 422 must say what is wrong"
    return detail


def _error_at(detail: list[dict[str, Any]], loc: list[Any]) -> dict[str, Any]:
    matches = [error for error in detail if error["loc"] == loc]
    assert matches, f"no error at {loc}: {detail}"
    return matches[0]


# --- submitting ---------------------------------------------------------------------------


def test_submit_answers_202_with_job_header_and_location_that_resolves(
    service: RunningService, target: ThreadedUvicorn
) -> None:
    urls = [f"{target.url}/status/200", f"{target.url}/status/201"]
    response = service.client.post("/v1/jobs", json={"urls": urls})

    assert response.status_code == 202, response.text
    job = response.json()
    assert len(job["id"]) >= 16
    assert job["status"] in ("queued", "running")
    assert job["total"] == 2
    assert job["duplicates_removed"] == 0
    assert 0 <= job["completed"] <= 2
    assert set(job["summary"]) == {"up", "degraded", "down", "cancelled", "interrupted", "errors"}
    assert job["options"]["timeout_s"] == service.services.settings.default_timeout_s
    assert response.headers["Location"] == f"/v1/jobs/{job['id']}"

    followed = service.client.get(response.headers["Location"])
    assert followed.status_code == 200
    assert followed.json()["id"] == job["id"]


def test_duplicate_urls_in_one_job_are_checked_once(
    service: RunningService, target: ThreadedUvicorn
) -> None:
    plain = f"http://127.0.0.1:{target.port}/status/200"
    shouted = f"HTTP://127.0.0.1:{target.port}/status/200"
    other = f"{target.url}/status/201"

    job = submit(service.client, [plain, other, plain, shouted])

    assert job["total"] == 2
    assert job["duplicates_removed"] == 2
    done = wait_final(service.client, job["id"])
    assert done["status"] == "done"
    assert done["completed"] == 2
    # The first spelling seen is the one checked and reported.
    assert sorted(r["url"] for r in done["results"]) == sorted([plain, other])


LONG_URL = "http://127.0.0.1/" + "a" * 2100

INVALID_BODIES: list[tuple[str, Any, list[Any], str]] = [
    ("empty list", {"urls": []}, ["body", "urls"], "at least 1"),
    ("too long", {"urls": [LONG_URL]}, ["body", "urls", 0], "longer than 2048"),
    ("ftp scheme", {"urls": ["ftp://127.0.0.1/f"]}, ["body", "urls", 0], "http or https"),
    ("credentials", {"urls": ["http://user:pw@host/"]}, ["body", "urls", 0], "credentials"),
    ("whitespace", {"urls": ["http://host/a b"]}, ["body", "urls", 0], "whitespace"),
    ("port 0", {"urls": ["http://127.0.0.1:0/"]}, ["body", "urls", 0], "port 0"),
    ("port 99999", {"urls": ["http://127.0.0.1:99999/"]}, ["body", "urls", 0], "99999"),
    ("bad IDNA", {"urls": ["http://xn--/"]}, ["body", "urls", 0], "A-label"),
    ("not a string", {"urls": [OK_URL, 5]}, ["body", "urls", 1], "valid string"),
    (
        "bad URL at index 3",
        {"urls": [OK_URL, OK_URL + "1", OK_URL + "2", "gopher://x/"]},
        ["body", "urls", 3],
        "scheme",
    ),
    ("missing urls", {}, ["body", "urls"], "required"),
    ("unknown field", {"urls": [OK_URL], "priority": 1}, ["body", "priority"], "not permitted"),
    (
        "timeout above max",
        {"urls": [OK_URL], "options": {"timeout_s": 61}},
        ["body", "options", "timeout_s"],
        "at most 60",
    ),
    (
        "timeout zero",
        {"urls": [OK_URL], "options": {"timeout_s": 0}},
        ["body", "options", "timeout_s"],
        "greater than 0",
    ),
    (
        "timeout negative",
        {"urls": [OK_URL], "options": {"timeout_s": -1}},
        ["body", "options", "timeout_s"],
        "greater than 0",
    ),
    (
        "redirects above limit",
        {"urls": [OK_URL], "options": {"max_redirects": 31}},
        ["body", "options", "max_redirects"],
        "at most 30",
    ),
    (
        "body cap above limit",
        {"urls": [OK_URL], "options": {"max_body_bytes": 16_777_217}},
        ["body", "options", "max_body_bytes"],
        "at most 16777216",
    ),
    (
        "expected status not a code",
        {"urls": [OK_URL], "options": {"expected_status": "abc"}},
        ["body", "options", "expected_status"],
        "'abc' is not a status code",
    ),
    (
        "expected status out of range",
        {"urls": [OK_URL], "options": {"expected_status": [200, 99]}},
        ["body", "options", "expected_status"],
        "100 to 599",
    ),
    (
        "bad header name",
        {"urls": [OK_URL], "options": {"headers": {"Bad Header": "x"}}},
        ["body", "options", "headers", "Bad Header"],
        "token",
    ),
    (
        "header value with CRLF",
        {"urls": [OK_URL], "options": {"headers": {"X-A": "a\r\nX-Injected: 1"}}},
        ["body", "options", "headers", "X-A"],
        "CR/LF",
    ),
    (
        "forbidden header",
        {"urls": [OK_URL], "options": {"headers": {"Content-Length": "5"}}},
        ["body", "options", "headers", "Content-Length"],
        "managed by urlhealth",
    ),
    (
        "unknown option",
        {"urls": [OK_URL], "options": {"retry": 3}},
        ["body", "options", "retry"],
        "not permitted",
    ),
]


@pytest.mark.parametrize(
    ("body", "loc", "reason"),
    [pytest.param(body, loc, reason, id=name) for name, body, loc, reason in INVALID_BODIES],
)
def test_invalid_submission_is_422_naming_the_field_and_reason(
    shared: RunningService, body: Any, loc: list[Any], reason: str
) -> None:
    before = _job_count(shared)

    response = shared.client.post("/v1/jobs", json=body)

    error = _error_at(_detail(response), loc)
    assert reason.lower() in error["msg"].lower(), error
    assert _job_count(shared) == before  # nothing was accepted


def test_every_invalid_url_is_reported_with_its_index(shared: RunningService) -> None:
    urls = [OK_URL, "ftp://a/", OK_URL + "2", "http://u:p@h/"]

    detail = _detail(shared.client.post("/v1/jobs", json={"urls": urls}))

    assert sorted(tuple(e["loc"]) for e in detail) == [("body", "urls", 1), ("body", "urls", 3)]


def test_more_urls_than_max_urls_per_job_is_422(service_factory: ServiceFactory) -> None:
    svc = service_factory(max_urls_per_job=3)
    urls = [f"{OK_URL}{i}" for i in range(4)]

    error = _error_at(_detail(svc.client.post("/v1/jobs", json={"urls": urls})), ["body", "urls"])

    assert "at most 3" in error["msg"]


@pytest.mark.parametrize(
    "raw",
    # A body that is not UTF-8 is a 400 of its own: tests/api/test_request_body.py.
    [b'{"urls": [', b"not json"],
    ids=["truncated", "not-json"],
)
def test_malformed_json_body_is_422(shared: RunningService, raw: bytes) -> None:
    response = shared.client.post(
        "/v1/jobs", content=raw, headers={"Content-Type": "application/json"}
    )

    detail = _detail(response)
    assert detail[0]["loc"][0] == "body"
    assert detail[0]["type"] == "json_invalid"


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (b'{"urls": ["http://127.0.0.1:9/"], "options": {"timeout_s": 1e400}}', "timeout_s"),
        (
            b'{"urls": ["http://127.0.0.1:9/"], "options": {"max_redirects": 1e400}}',
            "max_redirects",
        ),
        (b'{"urls": ["http://127.0.0.1:9/"], "options": {"timeout_s": NaN}}', "timeout_s"),
    ],
    ids=["overflow-to-infinity", "infinite-int", "nan"],
)
def test_non_finite_number_in_options_is_422_not_500(
    service: RunningService, raw: bytes, field: str
) -> None:
    # 1e400 is valid JSON; Python parses it to inf, which the 422 must still be able to echo.
    response = service.client.post(
        "/v1/jobs", content=raw, headers={"Content-Type": "application/json"}
    )

    _error_at(_detail(response), ["body", "options", field])


# --- following a job ----------------------------------------------------------------------


def test_job_goes_from_queued_or_running_to_done(service: RunningService) -> None:
    with gated_server() as gate:
        job = submit(service.client, [f"{gate.url}/held"])
        assert job["status"] in ("queued", "running")
        assert job["finished_at"] is None

        running = wait_for(
            lambda: (j := get_job(service.client, job["id"]))["status"] == "running" and j,
            what="the job to start",
        )
        assert running["started_at"] is not None
        assert running["completed"] == 0
        assert running["results"] == []

        gate.release()
        done = wait_final(service.client, job["id"])

    assert done["status"] == "done"
    assert done["completed"] == done["total"] == 1
    assert done["finished_at"] is not None
    assert done["finished_at"] >= done["started_at"] >= done["created_at"]
    assert done["results"][0]["ok"] is True


def test_finished_job_summarises_outcomes_and_error_kinds(
    service: RunningService, target: ThreadedUvicorn, garbage_server: RawServer
) -> None:
    urls = [
        f"{target.url}/status/200",
        f"{target.url}/redirect/2",
        f"{target.url}/status/500",
        f"http://127.0.0.1:{refused_port()}/",
        f"{garbage_server.url}/",
    ]

    done = wait_final(service.client, submit(service.client, urls)["id"])

    assert done["status"] == "done"
    assert done["completed"] == done["total"] == 5
    assert done["summary"] == {
        "up": 2,
        "degraded": 0,
        "down": 3,
        "cancelled": 0,
        "interrupted": 0,
        "errors": {"unexpected_status": 1, "connect": 1, "invalid_response": 1},
    }
    by_url = {r["url"]: r for r in done["results"]}
    assert set(by_url) == set(urls)
    assert by_url[urls[2]]["status_code"] == 500
    assert by_url[urls[0]]["error"] is None


def test_results_are_paged_with_offset_and_limit(
    service: RunningService, target: ThreadedUvicorn
) -> None:
    urls = [f"{target.url}/status/{code}" for code in (200, 201, 202, 203, 226)]
    job_id = submit(service.client, urls)["id"]
    everything = wait_final(service.client, job_id)["results"]

    pages = [get_job(service.client, job_id, offset=o, limit=2) for o in (0, 2, 4)]

    assert [len(p["results"]) for p in pages] == [2, 2, 1]
    assert [(p["offset"], p["limit"]) for p in pages] == [(0, 2), (2, 2), (4, 2)]
    assert [r for p in pages for r in p["results"]] == everything
    assert sorted(r["url"] for r in everything) == sorted(urls)
    assert all(p["total"] == 5 and p["completed"] == 5 for p in pages)
    assert get_job(service.client, job_id, offset=5, limit=2)["results"] == []


def test_a_page_carries_each_result_as_the_stream_sent_it(
    service: RunningService, target: ThreadedUvicorn
) -> None:
    # Pages are assembled from the stored JSON, not rebuilt as 1,000 models per request.
    urls = [f"{target.url}/status/{code}" for code in (200, 404, 500)]
    job_id = submit(service.client, urls)["id"]
    wait_final(service.client, job_id)
    streamed = service.client.get(f"/v1/jobs/{job_id}/stream").content.splitlines()
    lines = [line[len(b'{"type":"result","result":') : -1] for line in streamed[:-1]]

    response = service.client.get(f"/v1/jobs/{job_id}", params={"limit": 10})

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert b'"results":[' + b",".join(lines) + b"]" in response.content
    page = JobPublic.model_validate_json(response.content)
    assert [r.url for r in page.results] == [json.loads(line)["url"] for line in lines]
    assert (page.total, page.completed, page.offset, page.limit) == (3, 3, 0, 10)


def test_unknown_job_is_404_with_json_detail(shared: RunningService) -> None:
    for response in (
        shared.client.get("/v1/jobs/does-not-exist"),
        shared.client.delete("/v1/jobs/does-not-exist"),
    ):
        assert response.status_code == 404
        assert response.headers["content-type"].startswith("application/json")
        assert "does-not-exist" in response.json()["detail"]


@pytest.mark.parametrize(
    ("params", "name"),
    [({"offset": -1}, "offset"), ({"limit": 0}, "limit"), ({"limit": 1001}, "limit")],
)
def test_bad_paging_parameters_are_422(
    shared: RunningService, target: ThreadedUvicorn, params: dict[str, int], name: str
) -> None:
    job_id = submit(shared.client, [f"{target.url}/status/200"])["id"]

    response = shared.client.get(f"/v1/jobs/{job_id}", params=params)

    _error_at(_detail(response), ["query", name])


# --- listing ------------------------------------------------------------------------------


def test_jobs_are_listed_newest_first_with_paging_and_count(
    service: RunningService, target: ThreadedUvicorn
) -> None:
    ids = [submit(service.client, [f"{target.url}/status/20{i}"])["id"] for i in range(3)]

    listing = service.client.get("/v1/jobs").json()
    first = service.client.get("/v1/jobs", params={"limit": 2}).json()
    rest = service.client.get("/v1/jobs", params={"offset": 2, "limit": 2}).json()

    assert [j["id"] for j in listing["jobs"]] == ids[::-1]
    assert listing["count"] == 3
    assert [j["id"] for j in first["jobs"]] == ids[:0:-1]
    assert [j["id"] for j in rest["jobs"]] == ids[:1]
    assert (first["count"], first["offset"], first["limit"]) == (3, 0, 2)
    assert (rest["count"], rest["offset"], rest["limit"]) == (3, 2, 2)
    assert "results" not in listing["jobs"][0]
    for params in ({"limit": 0}, {"limit": 101}, {"offset": -1}):
        assert service.client.get("/v1/jobs", params=params).status_code == 422


# --- cancelling ---------------------------------------------------------------------------


def test_cancel_ends_queued_checks_cancelled_and_lets_the_running_one_finish(
    service_factory: ServiceFactory, target: ThreadedUvicorn, hanging_server: RawServer
) -> None:
    svc = service_factory(workers=1)
    hanging = f"{hanging_server.url}/never"
    queued = [f"{target.url}/status/{code}" for code in (200, 201, 202, 203)]
    job_id = submit(svc.client, [hanging, *queued], timeout_s=3)["id"]
    # The one worker is on the hanging URL; the rest wait behind it.
    wait_for(
        lambda: status(svc.client)["checks_running"] == 1 and hanging_server.connections >= 1,
        what="the hanging check to start",
    )

    response = svc.client.delete(f"/v1/jobs/{job_id}")

    assert response.status_code == 200, response.text
    assert response.json()["id"] == job_id
    assert response.json()["status"] in ("running", "cancelled")
    final = wait_final(svc.client, job_id)
    assert final["status"] == "cancelled"
    assert final["completed"] == final["total"] == 5
    kinds = {r["url"]: r["error"]["kind"] for r in final["results"]}
    assert kinds == {hanging: "timeout", **dict.fromkeys(queued, "cancelled")}
    # Cancelled checks never ran: they do not count as down.
    assert final["summary"] == {
        "up": 0,
        "degraded": 0,
        "down": 1,
        "cancelled": 4,
        "interrupted": 0,
        "errors": {"timeout": 1, "cancelled": 4},
    }


def test_cancelling_a_finished_job_leaves_it_done(
    service: RunningService, target: ThreadedUvicorn
) -> None:
    job_id = submit(service.client, [f"{target.url}/status/200"])["id"]
    wait_final(service.client, job_id)

    response = service.client.delete(f"/v1/jobs/{job_id}")

    assert response.status_code == 200
    assert response.json()["status"] == "done"
    assert get_job(service.client, job_id)["status"] == "done"


def test_repeated_cancel_frees_each_check_once_so_the_limit_still_holds(
    service_factory: ServiceFactory, target: ThreadedUvicorn
) -> None:
    svc = service_factory(max_queued_checks=5, workers=1, max_urls_per_job=5, max_sync_urls=5)
    with gated_server() as gate:
        queued = [f"{target.url}/status/200?n={n}" for n in range(4)]
        job_id = submit(svc.client, [f"{gate.url}/held", *queued])["id"]
        wait_for(lambda: gate.connections >= 1, what="the held check to start")

        for _ in range(3):
            assert svc.client.delete(f"/v1/jobs/{job_id}").status_code == 200
            counts = status(svc.client)
            # One check has no final state yet: it is the one in progress, and only it.
            assert (counts["checks_running"], counts["checks_queued"]) == (1, 0), counts
        assert get_job(svc.client, job_id)["completed"] == 4

        five = [f"{target.url}/status/200?late={n}" for n in range(5)]
        refused = svc.client.post("/v1/jobs", json={"urls": five})
        assert refused.status_code == 429, refused.text

        gate.release()
        assert wait_final(svc.client, job_id)["status"] == "cancelled"
    wait_for(
        lambda: (s := status(svc.client))["checks_running"] + s["checks_queued"] == 0,
        what="the queue to empty",
    )
    counts = status(svc.client)
    assert (counts["checks_running"], counts["checks_queued"]) == (0, 0)
    assert svc.client.post("/v1/jobs", json={"urls": five}).status_code == 202


def test_repeated_cancel_around_shutdown_lets_the_drain_end_when_the_checks_do(
    service_factory: ServiceFactory, target: ThreadedUvicorn, caplog: pytest.LogCaptureFixture
) -> None:
    # A release counted twice kept the drain waiting for the whole grace period, which then
    # "interrupted" checks that had long finished.
    caplog.set_level(logging.INFO, logger="urlhealth.lifecycle")
    svc = service_factory(workers=1, shutdown_grace_s=20.0)
    slow = f"{target.url}/delay/800"
    queued = [f"{target.url}/status/200?n={n}" for n in range(4)]
    job_id = submit(svc.client, [slow, *queued])["id"]
    wait_for(lambda: status(svc.client)["checks_running"] == 1, what="the slow check to start")

    assert svc.client.delete(f"/v1/jobs/{job_id}").status_code == 200
    svc.services.coordinator.begin()
    for _ in range(2):
        assert svc.client.delete(f"/v1/jobs/{job_id}").status_code == 200

    assert svc.services.coordinator.wait(15.0), status(svc.client)
    final = wait_final(svc.client, job_id)
    kinds = {r["url"]: r["error"]["kind"] if r["error"] else "ok" for r in final["results"]}
    assert kinds == {slow: "ok", **dict.fromkeys(queued, "cancelled")}
    counts = status(svc.client)
    assert (counts["checks_running"], counts["checks_queued"]) == (0, 0)
    assert not [r for r in caplog.records if "grace period" in r.getMessage()]


# --- back-pressure ------------------------------------------------------------------------


def test_full_queue_answers_429_with_retry_after_until_checks_finish(
    service_factory: ServiceFactory, target: ThreadedUvicorn
) -> None:
    svc = service_factory(max_queued_checks=3, workers=1, max_urls_per_job=3, max_sync_urls=3)
    with gated_server() as gate:
        first = submit(svc.client, [f"{gate.url}/{n}" for n in range(3)])

        refused = svc.client.post("/v1/jobs", json={"urls": [f"{target.url}/status/200"]})

        assert refused.status_code == 429, refused.text
        assert int(refused.headers["Retry-After"]) >= 1
        assert refused.headers["content-type"].startswith("application/json")
        assert "too many checks" in refused.json()["detail"]
        assert svc.client.get("/v1/jobs").json()["count"] == 1  # the refused job is not kept

        gate.release()
        assert wait_final(svc.client, first["id"])["status"] == "done"

    # The job is reported done a moment before its last check frees its capacity (see the
    # report on Dispatcher._gather), so wait for the capacity rather than race it.
    wait_for(
        lambda: (s := status(svc.client))["checks_running"] + s["checks_queued"] == 0,
        what="the queue to empty",
    )
    again = svc.client.post("/v1/jobs", json={"urls": [f"{target.url}/status/200"]})
    assert again.status_code == 202, again.text
    assert wait_final(svc.client, again.json()["id"])["status"] == "done"
