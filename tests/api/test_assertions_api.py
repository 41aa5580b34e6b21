"""Assertions end to end: submitted through the API, judged against a real target's answers,
every failure listed with what was expected and what was seen, outcomes counted in the job
summary, and invalid assertion specs refused with a 422 naming the field."""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import trustme
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from tests.conftest import RunningService, make_settings
from tests.support.api import submit, wait_final
from tests.support.servers import ThreadedUvicorn, free_port
from tests.support.tls import ca_bundle, https_url, leaf_pem, tls_server

DOCUMENT: dict[str, Any] = {
    "status": "ok",
    "version": "2.1.0",
    "checks": [{"name": "db", "healthy": True}, {"name": "cache", "healthy": False}],
    "count": 3,
    "note": None,
}
HEADERS = {"Cache-Control": "no-store", "X-Version": "2.1.0"}
GZIPPED = gzip.compress(json.dumps(DOCUMENT).encode())
# Tiny on the wire, 20 kB once decoded: more than a small max_body_bytes.
GZIPPED_BIG = gzip.compress(json.dumps({"status": "ok", "pad": "x" * 20_000}).encode())


async def _json(request: Request) -> Response:
    return JSONResponse(DOCUMENT, headers=HEADERS)


async def _gzip_json(request: Request) -> Response:
    # Compressed whatever the client asked for (urlhealth asks for identity).
    return Response(
        GZIPPED,
        media_type="application/json",
        headers={"Content-Encoding": "gzip", **HEADERS},
    )


async def _gzip_big(request: Request) -> Response:
    return Response(
        GZIPPED_BIG, media_type="application/json", headers={"Content-Encoding": "gzip"}
    )


async def _latin1(request: Request) -> Response:
    return Response("café ouvert".encode("latin-1"), media_type="text/plain; charset=iso-8859-1")


async def _delay(request: Request) -> Response:
    await asyncio.sleep(int(request.path_params["ms"]) / 1000)
    return JSONResponse(DOCUMENT, headers=HEADERS)


async def _status(request: Request) -> Response:
    return JSONResponse(DOCUMENT, status_code=int(request.path_params["code"]), headers=HEADERS)


async def _text(request: Request) -> Response:
    return PlainTextResponse("service healthy; maintenance: none")


def assertion_target() -> Starlette:
    return Starlette(
        routes=[
            Route("/json", _json, methods=["GET", "HEAD"]),
            Route("/gzip-json", _gzip_json),
            Route("/gzip-big", _gzip_big),
            Route("/latin1", _latin1),
            Route("/delay/{ms:int}", _delay),
            Route("/status/{code:int}", _status),
            Route("/text", _text),
        ]
    )


@pytest.fixture(scope="module")
def service() -> Iterator[RunningService]:
    """One service for the module (overrides conftest's per-test one): these tests only read
    their own results, and starting a service per test would double the module's run time."""
    svc = RunningService(make_settings(port=free_port()))
    yield svc
    svc.close()


@pytest.fixture(scope="module")
def app_target() -> Iterator[ThreadedUvicorn]:
    server = ThreadedUvicorn(assertion_target()).start()
    yield server
    server.stop()


def check_one(svc: RunningService, url: str, **options: Any) -> dict[str, Any]:
    """POST /v1/check for one URL; its result."""
    response = svc.client.post("/v1/check", json={"urls": [url], "options": options})
    assert response.status_code == 200, response.text
    (result,) = response.json()["results"]
    assert isinstance(result, dict)
    return result


def failures(result: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    return [
        (f["assertion"], f["expected"], f["actual"], f["severity"])
        for f in result["failed_assertions"]
    ]


# --- passing and failing -----------------------------------------------------------------------


def test_every_kind_of_assertion_holding_is_up(
    service: RunningService, app_target: ThreadedUvicorn
) -> None:
    assertions = {
        "max_latency_ms": 10_000,
        "body_contains": ['"status":"ok"', "2.1.0"],
        "body_not_contains": ["error", "maintenance"],
        "body_regex": r'"version":\s*"2\.',
        "json_path": [
            {"path": "$.status", "equals": "ok"},
            {"path": "$.count", "equals": 3.0},
            {"path": "$.checks[0].healthy", "equals": True},
            {"path": "$.checks[1].name", "exists": True},
            {"path": "$.note", "equals": None},
            {"path": "$.missing", "exists": False},
            {"path": "$..version", "equals": "2.1.0"},
        ],
        "headers": [
            {"name": "Cache-Control", "equals": "no-store"},
            {"name": "content-type", "matches": "^application/json"},
            {"name": "x-version"},
            {"name": "x-absent", "exists": False},
        ],
    }
    result = check_one(service, f"{app_target.url}/json", assertions=assertions)
    assert result["failed_assertions"] == []
    assert result["ok"] is True
    assert result["outcome"] == "up"
    assert result["error"] is None


def test_all_failed_assertions_are_listed_together_with_expected_and_actual(
    service: RunningService, app_target: ThreadedUvicorn
) -> None:
    assertions = {
        "body_contains": ["healthy-and-well"],
        "body_not_contains": ["2.1.0"],
        "body_regex": r'"version":\s*"3\.',
        "json_path": [
            {"path": "$.status", "equals": "down"},
            {"path": "$.uptime", "exists": True},
            {"path": "$.count", "equals": "3"},  # a string is not the number 3
        ],
        "headers": [
            {"name": "cache-control", "equals": "public"},
            {"name": "x-version", "matches": r"^3\."},
            {"name": "x-missing"},
            {"name": "cache-control", "exists": False},
        ],
    }
    result = check_one(service, f"{app_target.url}/json", assertions=assertions)
    assert result["ok"] is False
    assert result["outcome"] == "down"
    assert result["status_code"] == 200
    assert result["error"]["kind"] == "assertion_failed"
    size = len(json.dumps(DOCUMENT, separators=(",", ":")).encode())
    got = failures(result)
    assert got[:2] == [
        ("body_contains", 'contains "healthy-and-well"', f"not found in {size} bytes", "down"),
        ("body_not_contains", 'does not contain "2.1.0"', got[1][2], "down"),
    ]
    assert "2.1.0" in got[1][2]  # the actual shows where the text was found
    assert got[2:] == [
        ("body_regex", r'matches /"version":\s*"3\./', f"no match in {size} bytes", "down"),
        ("json_path $.status", 'equals "down"', '"ok"', "down"),
        ("json_path $.uptime", "exists", "no match", "down"),
        ("json_path $.count", 'equals "3"', "3", "down"),
        ("header cache-control", 'equals "public"', '"no-store"', "down"),
        ("header x-version", r"matches /^3\./", '"2.1.0"', "down"),
        ("header x-missing", "present", "missing", "down"),
        ("header cache-control", "absent", 'present: "no-store"', "down"),
    ]
    for name in ("body_contains", "json_path $.status", "header x-version"):
        assert name in result["error"]["message"]


def test_slower_than_max_latency_is_degraded_not_down(
    service: RunningService, app_target: ThreadedUvicorn
) -> None:
    result = check_one(
        service,
        f"{app_target.url}/delay/300",
        assertions={"max_latency_ms": 100, "json_path": [{"path": "$.status", "equals": "ok"}]},
    )
    assert result["ok"] is False
    assert result["outcome"] == "degraded"
    assert result["status_code"] == 200
    assert result["error"]["kind"] == "assertion_failed"
    ((name, expected, actual, severity),) = failures(result)
    assert (name, expected, severity) == ("max_latency_ms", "<= 100 ms", "degraded")
    assert actual.endswith(" ms")
    assert float(actual.removesuffix(" ms")) >= 300


def test_a_down_failure_outweighs_a_degraded_one(
    service: RunningService, app_target: ThreadedUvicorn
) -> None:
    result = check_one(
        service,
        f"{app_target.url}/delay/300",
        assertions={"max_latency_ms": 100, "body_contains": ["absent text"]},
    )
    assert result["outcome"] == "down"
    assert [(f[0], f[3]) for f in failures(result)] == [
        ("max_latency_ms", "degraded"),
        ("body_contains", "down"),
    ]


def test_wrong_status_is_unexpected_status_even_when_assertions_hold(
    service: RunningService, app_target: ThreadedUvicorn
) -> None:
    result = check_one(
        service,
        f"{app_target.url}/status/500",
        assertions={"json_path": [{"path": "$.status", "equals": "ok"}]},
    )
    assert result["ok"] is False
    assert result["outcome"] == "down"
    assert result["error"]["kind"] == "unexpected_status"
    assert result["failed_assertions"] == []


def test_wrong_status_with_failed_assertions_is_still_unexpected_status(
    service: RunningService, app_target: ThreadedUvicorn
) -> None:
    result = check_one(
        service,
        f"{app_target.url}/status/503",
        assertions={"max_latency_ms": 10_000, "body_contains": ["absent text"]},
    )
    assert result["outcome"] == "down"
    assert result["error"]["kind"] == "unexpected_status"
    assert [f[0] for f in failures(result)] == ["body_contains"]


def test_gzip_encoded_json_is_decoded_for_the_assertions(
    service: RunningService, app_target: ThreadedUvicorn
) -> None:
    result = check_one(
        service,
        f"{app_target.url}/gzip-json",
        assertions={
            "json_path": [{"path": "$.checks[1].healthy", "equals": False}],
            "body_contains": ['"version": "2.1.0"'],
        },
    )
    assert result["failed_assertions"] == []
    assert result["ok"] is True
    assert result["bytes_read"] == len(GZIPPED)  # the raw, still-compressed bytes


def test_gzip_body_decoding_past_max_body_bytes_is_judged_as_truncated(
    service: RunningService, app_target: ThreadedUvicorn
) -> None:
    # The raw body fits the cap; decoded, it is cut at the cap. The assertions must say the
    # body was cut off, not that the document is invalid JSON or the text is absent.
    assert len(GZIPPED_BIG) < 1000
    result = check_one(
        service,
        f"{app_target.url}/gzip-big",
        max_body_bytes=1000,
        assertions={"json_path": [{"path": "$.status", "equals": "ok"}]},
    )
    ((name, _, actual, _),) = failures(result)
    assert name == "json_path $.status"
    assert "truncated" in actual


def test_body_is_decoded_with_the_content_type_charset(
    service: RunningService, app_target: ThreadedUvicorn
) -> None:
    result = check_one(service, f"{app_target.url}/latin1", assertions={"body_contains": ["café"]})
    assert result["failed_assertions"] == []
    assert result["ok"] is True


def test_json_path_on_a_truncated_body_fails_saying_so(
    service: RunningService, app_target: ThreadedUvicorn
) -> None:
    result = check_one(
        service,
        f"{app_target.url}/json",
        max_body_bytes=10,
        assertions={"json_path": [{"path": "$.status", "exists": True}]},
    )
    assert result["truncated"] is True
    ((name, _, actual, severity),) = failures(result)
    assert (name, severity) == ("json_path $.status", "down")
    assert "truncated" in actual


def test_json_path_on_a_body_that_is_not_json_fails_saying_so(
    service: RunningService, app_target: ThreadedUvicorn
) -> None:
    result = check_one(
        service,
        f"{app_target.url}/text",
        assertions={"json_path": [{"path": "$.status", "exists": True}]},
    )
    ((_, _, actual, _),) = failures(result)
    assert "not valid JSON" in actual


def test_body_assertions_on_a_head_request_fail_for_want_of_a_body(
    service: RunningService, app_target: ThreadedUvicorn
) -> None:
    result = check_one(
        service, f"{app_target.url}/json", method="HEAD", assertions={"body_contains": ["ok"]}
    )
    assert result["outcome"] == "down"
    ((name, _, actual, _),) = failures(result)
    assert name == "body_contains"
    assert "no body" in actual


def test_job_reports_its_assertions_as_given(
    service: RunningService, app_target: ThreadedUvicorn
) -> None:
    # `equals: null` asks for a JSON null; leaving `equals` out must not read back as that.
    assertions = {
        "json_path": [{"path": "$.note", "equals": None}, {"path": "$.status", "exists": True}],
        "headers": [{"name": "X-Version", "matches": "^2"}],
    }
    job = submit(service.client, [f"{app_target.url}/json"], assertions=assertions)
    shown = job["options"]["assertions"]
    null_wanted, exists_wanted = shown["json_path"]
    assert null_wanted["path"] == "$.note"
    assert "equals" in null_wanted
    assert null_wanted["equals"] is None
    assert exists_wanted["path"] == "$.status"
    assert exists_wanted["exists"] is True
    assert "equals" not in exists_wanted
    assert shown["headers"][0]["name"] == "x-version"
    done = wait_final(service.client, job["id"])
    assert done["results"][0]["ok"] is True, done["results"][0]["failed_assertions"]


# --- the job summary ---------------------------------------------------------------------------


def test_job_summary_counts_up_degraded_and_down_apart(
    service: RunningService, app_target: ThreadedUvicorn
) -> None:
    urls = [
        f"{app_target.url}/delay/0",  # up
        f"{app_target.url}/delay/900",  # degraded: slower than max_latency_ms
        f"{app_target.url}/status/500",  # down: unexpected status
        f"{app_target.url}/text",  # down: a body assertion fails
    ]
    assertions = {"max_latency_ms": 500, "body_not_contains": ["maintenance"]}
    job = submit(service.client, urls, assertions=assertions)
    done = wait_final(service.client, job["id"])
    outcomes = {r["url"]: r["outcome"] for r in done["results"]}
    assert outcomes == dict(zip(urls, ["up", "degraded", "down", "down"], strict=True))
    summary = done["summary"]
    assert (summary["up"], summary["degraded"], summary["down"]) == (1, 1, 2)
    assert summary["errors"] == {"assertion_failed": 2, "unexpected_status": 1}
    listed = service.client.get("/v1/jobs").json()["jobs"]
    assert next(j for j in listed if j["id"] == job["id"])["summary"] == summary


# --- invalid specs -----------------------------------------------------------------------------

INVALID: list[tuple[dict[str, Any], list[str | int]]] = [
    ({"body_regex": "(unclosed"}, ["body_regex"]),
    ({"body_regex": "(?:a{1000}){1000}"}, ["body_regex"]),
    ({"json_path": [{"path": "$[", "exists": True}]}, ["json_path", 0, "path"]),
    ({"json_path": [{"path": "$..a..b", "exists": True}]}, ["json_path", 0, "path"]),
    ({"json_path": [{"path": "$.a[?(@.b > 1)]", "exists": True}]}, ["json_path", 0, "path"]),
    ({"json_path": [{"path": "$.ok"}, {"path": "$.a", "exists": True}]}, ["json_path", 0]),
    ({"json_path": [{"path": "$.a", "exists": False, "equals": 1}]}, ["json_path", 0]),
    ({"headers": [{"name": "x-version", "matches": "[unclosed"}]}, ["headers", 0, "matches"]),
    ({"headers": [{"name": "bad name"}]}, ["headers", 0, "name"]),
    ({"max_latency_ms": 0}, ["max_latency_ms"]),
    ({"min_days_left": -1}, ["min_days_left"]),
    ({"body_contains": [""]}, ["body_contains", 0]),
    ({"unknown": True}, ["unknown"]),
]


@pytest.mark.parametrize(("assertions", "where"), INVALID)
def test_invalid_assertion_is_refused_naming_the_field(
    service: RunningService, assertions: dict[str, Any], where: list[str | int]
) -> None:
    body = {"urls": ["http://127.0.0.1:9/"], "options": {"assertions": assertions}}
    for path in ("/v1/jobs", "/v1/check"):
        response = service.client.post(path, json=body)
        assert response.status_code == 422, response.text
        locs = [error["loc"] for error in response.json()["detail"]]
        assert locs == [["body", "options", "assertions", *where]], path


def test_several_invalid_assertions_are_all_named(service: RunningService) -> None:
    assertions = {"body_regex": "(", "json_path": [{"path": "$[", "exists": True}]}
    body = {"urls": ["http://127.0.0.1:9/"], "options": {"assertions": assertions}}
    response = service.client.post("/v1/jobs", json=body)
    assert response.status_code == 422
    locs = sorted(str(error["loc"]) for error in response.json()["detail"])
    assert locs == sorted(
        [
            str(["body", "options", "assertions", "body_regex"]),
            str(["body", "options", "assertions", "json_path", 0, "path"]),
        ]
    )


# --- certificate days, with the service's ca_bundle -------------------------------------------


@pytest.fixture(scope="module")
def tls_pki(tmp_path_factory: pytest.TempPathFactory) -> tuple[trustme.CA, Path]:
    return trustme.CA(), tmp_path_factory.mktemp("pki")


@pytest.fixture(scope="module")
def tls_target(tls_pki: tuple[trustme.CA, Path]) -> Iterator[ThreadedUvicorn]:
    ca, directory = tls_pki
    not_after = datetime.now(UTC) + timedelta(days=20)  # 19 whole days left
    pem = leaf_pem(ca, directory / "server.pem", "127.0.0.1", not_after=not_after)
    with tls_server(pem, assertion_target()) as server:
        yield server


@pytest.mark.parametrize(("minimum", "outcome"), [(30, "degraded"), (19, "up")])
def test_min_days_left_judges_the_certificate_of_a_service_trusting_the_ca_bundle(
    service_factory: Callable[..., RunningService],
    tls_pki: tuple[trustme.CA, Path],
    tls_target: ThreadedUvicorn,
    minimum: int,
    outcome: str,
) -> None:
    ca, directory = tls_pki
    svc = service_factory(ca_bundle=ca_bundle(ca, directory))
    result = check_one(svc, https_url(tls_target, "/json"), assertions={"min_days_left": minimum})
    assert result["tls"]["verified"] is True
    assert result["tls"]["days_left"] == 19
    assert result["outcome"] == outcome
    if outcome == "degraded":
        assert failures(result) == [("min_days_left", ">= 30 days", "19 days", "degraded")]
    else:
        assert result["ok"] is True


def test_service_without_the_ca_bundle_refuses_the_private_certificate(
    service: RunningService, tls_target: ThreadedUvicorn
) -> None:
    result = check_one(service, https_url(tls_target, "/json"))
    assert result["ok"] is False
    assert result["error"]["kind"] == "tls"
