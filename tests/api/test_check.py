"""POST /v1/check: a few URLs checked while the client waits."""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import RunningService
from tests.support.api import status
from tests.support.servers import RawServer, ThreadedUvicorn, refused_port


def check(svc: RunningService, urls: list[str], **options: Any) -> httpx.Response:
    body: dict[str, Any] = {"urls": urls}
    if options:
        body["options"] = options
    return svc.client.post("/v1/check", json=body)


def test_results_come_back_in_request_order_not_completion_order(
    service: RunningService, target: ThreadedUvicorn
) -> None:
    # The first URL finishes last; the answer still lists it first.
    urls = [
        f"{target.url}/delay/700",
        f"{target.url}/status/200",
        f"{target.url}/status/500",
        f"{target.url}/delay/0",
    ]

    response = check(service, urls)

    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["url"] for r in results] == urls
    assert [r["ok"] for r in results] == [True, True, False, True]
    assert results[2]["status_code"] == 500
    assert results[2]["error"]["kind"] == "unexpected_status"


def test_failing_urls_give_results_with_errors_not_an_http_error(
    service: RunningService, garbage_server: RawServer
) -> None:
    refused = f"http://127.0.0.1:{refused_port()}/"
    garbage = f"{garbage_server.url}/"

    response = check(service, [refused, garbage])

    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["url"] for r in results] == [refused, garbage]
    assert [r["outcome"] for r in results] == ["down", "down"]
    assert [r["error"]["kind"] for r in results] == ["connect", "invalid_response"]
    assert all(r["status_code"] is None and r["error"]["message"] for r in results)


def test_check_applies_the_requested_options(
    service: RunningService, target: ThreadedUvicorn
) -> None:
    response = check(service, [f"{target.url}/status/500"], expected_status="500-599")

    assert response.status_code == 200, response.text
    assert response.json()["results"][0]["ok"] is True


def test_check_counts_towards_checked_total_and_creates_no_job(
    service: RunningService, target: ThreadedUvicorn
) -> None:
    before = status(service.client)["checked_total"]

    assert check(service, [f"{target.url}/status/200", f"{target.url}/status/201"]).is_success

    assert status(service.client)["checked_total"] == before + 2
    assert service.client.get("/v1/jobs").json()["count"] == 0


def test_more_urls_than_max_sync_urls_is_422(service: RunningService) -> None:
    limit = service.services.settings.max_sync_urls
    urls = [f"http://127.0.0.1:9/{n}" for n in range(limit + 1)]

    response = check(service, urls)

    assert response.status_code == 422, response.text
    (error,) = response.json()["detail"]
    assert error["loc"] == ["body", "urls"]
    assert f"at most {limit}" in error["msg"]


def test_invalid_url_or_option_is_422_naming_it(service: RunningService) -> None:
    bad_url = check(service, ["http://127.0.0.1:9/", "ftp://127.0.0.1/"])
    bad_option = check(service, ["http://127.0.0.1:9/"], timeout_s=10_000)

    assert bad_url.status_code == 422
    assert bad_url.json()["detail"][0]["loc"] == ["body", "urls", 1]
    assert bad_option.status_code == 422
    assert bad_option.json()["detail"][0]["loc"] == ["body", "options", "timeout_s"]
