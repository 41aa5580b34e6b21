"""What the API does with request bodies it cannot use: text that is not Unicode, bodies that
are not UTF-8 or not JSON, bodies too large, and echoes too long. Every one is a JSON 4xx
naming the part and the reason, never a 500, and leaves nothing behind."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.exceptions import RequestValidationError

from app.api.validation import resolve_options
from app.config import Settings
from app.schemas.jobs import JobOptions
from tests.conftest import RunningService, make_settings

ServiceFactory = Callable[..., RunningService]

OK_URL = "http://127.0.0.1:9/ok"
JSON = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def shared() -> Iterator[RunningService]:
    svc = RunningService(make_settings())
    yield svc
    svc.close()


def _jobs(svc: RunningService) -> dict[str, Any]:
    response = svc.client.get("/v1/jobs")
    assert response.status_code == 200, response.text
    listed: dict[str, Any] = response.json()
    return listed


def _errors(response: Any, status: int) -> list[dict[str, Any]]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    detail: list[dict[str, Any]] = response.json()["detail"]
    assert isinstance(detail, list)
    assert detail
    return detail


# --- lone UTF-16 surrogates: valid JSON, not valid Unicode ---------------------------------

# Raw JSON text (OK stands for OK_URL): `\ud800` is an escape JSON allows but no UTF-8
# encoder can write.
SURROGATES: list[tuple[str, str, list[Any]]] = [
    ("url", '{"urls": ["http://a.test/\\ud800"]}', ["body", "urls", 0]),
    ("unknown key", '{"urls": ["OK"], "\\ud800": 1}', ["body", "\\ud800"]),
    (
        "header value",
        '{"urls": ["OK"], "options": {"headers": {"X-A": "\\ud800"}}}',
        ["body", "options", "headers", "X-A"],
    ),
    (
        "header name",
        '{"urls": ["OK"], "options": {"headers": {"X-\\udfff": "1"}}}',
        ["body", "options", "headers", "X-\\udfff"],
    ),
    (
        "body_contains",
        '{"urls": ["OK"], "options": {"assertions": {"body_contains": ["a\\udc00"]}}}',
        ["body", "options", "assertions", "body_contains", 0],
    ),
    (
        "json_path equals",
        '{"urls": ["OK"], "options": {"assertions": {"json_path": '
        '[{"path": "$.a", "equals": "\\ud800"}]}}}',
        ["body", "options", "assertions", "json_path", 0, "equals"],
    ),
    (
        "nested in equals",
        '{"urls": ["OK"], "options": {"assertions": {"json_path": '
        '[{"path": "$.a", "equals": {"k": ["x", "\\ud83d"]}}]}}}',
        ["body", "options", "assertions", "json_path", 0, "equals", "k", 1],
    ),
]


@pytest.mark.parametrize(
    ("raw", "loc"), [pytest.param(raw, loc, id=name) for name, raw, loc in SURROGATES]
)
@pytest.mark.parametrize("path", ["/v1/jobs", "/v1/check"])
def test_lone_surrogate_is_422_naming_the_field_and_leaves_nothing_behind(
    shared: RunningService, path: str, raw: str, loc: list[Any]
) -> None:
    before = _jobs(shared)["count"]

    response = shared.client.post(
        path, content=raw.replace("OK", OK_URL).encode("ascii"), headers=JSON
    )

    detail = _errors(response, 422)
    assert [error["loc"] for error in detail] == [loc]
    assert "surrogate" in detail[0]["msg"]
    # The job list still renders for everyone, and nothing was stored.
    assert _jobs(shared)["count"] == before


def test_a_value_the_answer_could_not_render_faithfully_is_422_and_stores_nothing(
    shared: RunningService,
) -> None:
    # 1e400 is valid JSON and parses as inf, which `gt=0` admits; the job's answer would show
    # it as null. Only a request whose answer renders is stored.
    before = _jobs(shared)["count"]
    raw = b'{"urls": ["%s"], "options": {"assertions": {"max_latency_ms": 1e400}}}' % (
        OK_URL.encode()
    )

    response = shared.client.post("/v1/jobs", content=raw, headers=JSON)

    detail = _errors(response, 422)
    assert [e["loc"] for e in detail] == [["body", "options", "assertions", "max_latency_ms"]]
    assert "finite" in detail[0]["msg"]
    assert _jobs(shared)["count"] == before


def test_options_are_checked_for_renderability_before_anything_is_submitted() -> None:
    # The body check stops surrogates first, so no request reaches this line with one; the
    # options are checked again as the job would show them, whatever built them.
    options = JobOptions.model_validate(
        {"assertions": {"json_path": [{"path": "$.a", "equals": "\ud800"}]}}
    )

    with pytest.raises(RequestValidationError) as caught:
        resolve_options(options, make_settings())

    locs = [error["loc"] for error in caught.value.errors()]
    assert locs == [("body", "options", "assertions", "json_path", 0, "equals")]


# --- what an error echoes is bounded -------------------------------------------------------


def test_a_huge_url_gets_a_small_error_that_says_its_input_was_cut(
    shared: RunningService,
) -> None:
    url = "http://127.0.0.1/" + "a" * 1_000_000

    response = shared.client.post("/v1/jobs", json={"urls": [url]})

    detail = _errors(response, 422)
    assert detail[0]["loc"] == ["body", "urls", 0]
    assert len(response.content) < 4000
    shown = detail[0]["input"]
    assert shown.startswith("http://127.0.0.1/aaa")
    assert len(shown) < 1000
    assert detail[0]["input_cut"] == {"length": len(url)}


def test_a_huge_wrong_typed_value_is_echoed_cut(shared: RunningService) -> None:
    body = {"urls": [OK_URL], "options": {"headers": ["x" * 1000] * 200}}

    response = shared.client.post("/v1/jobs", json=body)

    detail = _errors(response, 422)
    assert detail[0]["loc"] == ["body", "options", "headers"]
    assert len(response.content) < 4000
    assert "input_cut" in detail[0]


# --- request size --------------------------------------------------------------------------


def test_body_over_max_request_bytes_is_413_json_by_content_length(
    service_factory: ServiceFactory,
) -> None:
    svc = service_factory(max_request_bytes=2000)
    body = json.dumps({"urls": [OK_URL + "/" + "a" * 100] * 50}).encode()
    assert len(body) > 2000

    response = svc.client.post("/v1/jobs", content=body, headers=JSON)

    assert response.status_code == 413, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert "max_request_bytes" in response.json()["detail"]
    assert "2000" in response.json()["detail"]
    assert _jobs(svc)["count"] == 0


def test_chunked_body_over_max_request_bytes_is_413_json(
    service_factory: ServiceFactory,
) -> None:
    svc = service_factory(max_request_bytes=2000)

    def chunks() -> Iterator[bytes]:
        # No Content-Length: the limit must hold on the bytes actually received.
        yield b'{"urls": ["' + OK_URL.encode() + b'"], "x": "'
        for _ in range(5):
            yield b"a" * 1000
        yield b'"}'

    response = svc.client.post("/v1/jobs", content=chunks(), headers=JSON)

    assert response.status_code == 413, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert "max_request_bytes" in response.json()["detail"]
    assert _jobs(svc)["count"] == 0


def test_a_chunked_body_within_the_limit_is_accepted(service_factory: ServiceFactory) -> None:
    svc = service_factory(max_request_bytes=2000)

    def chunks() -> Iterator[bytes]:
        yield b'{"urls": ["'
        yield OK_URL.encode()
        yield b'"]}'

    response = svc.client.post("/v1/jobs", content=chunks(), headers=JSON)

    assert response.status_code == 202, response.text


def test_the_default_limit_admits_a_full_job_of_the_longest_urls(
    shared: RunningService,
) -> None:
    settings: Settings = shared.services.settings
    # Private addresses: blocked at once by the policy, nothing is sent anywhere.
    prefix = "http://10.0.0.1/"
    urls = [
        f"{prefix}{i:05d}".ljust(settings.max_url_length, "a")
        for i in range(settings.max_urls_per_job)
    ]
    body = json.dumps({"urls": urls, "options": {"timeout_s": 1}}).encode()

    response = shared.client.post("/v1/jobs", content=body, headers=JSON)

    assert response.status_code == 202, response.text[:500]
    assert response.json()["total"] == settings.max_urls_per_job
    shared.client.delete(f"/v1/jobs/{response.json()['id']}")


# --- content type and encoding --------------------------------------------------------------


def test_a_body_without_content_type_is_415_naming_content_type(shared: RunningService) -> None:
    # Chosen over reading it as JSON: a browser may send such a body across origins without
    # asking first, as it may a form; a JSON content type it may not.
    body = json.dumps({"urls": [OK_URL]}).encode()

    response = shared.client.post("/v1/jobs", content=body)

    detail = _errors(response, 415)
    assert detail[0]["loc"] == ["header", "content-type"]
    assert "application/json" in detail[0]["msg"]


@pytest.mark.parametrize(
    "content_type",
    ["application/x-www-form-urlencoded", "text/plain", "multipart/form-data; boundary=x"],
)
def test_a_body_of_another_content_type_is_415_naming_content_type(
    shared: RunningService, content_type: str
) -> None:
    before = _jobs(shared)["count"]
    body = json.dumps({"urls": [OK_URL]}).encode()

    response = shared.client.post("/v1/jobs", content=body, headers={"Content-Type": content_type})

    detail = _errors(response, 415)
    assert detail[0]["loc"] == ["header", "content-type"]
    assert "application/json" in detail[0]["msg"]
    assert content_type.split(";")[0] in detail[0]["msg"]
    assert _jobs(shared)["count"] == before


def test_a_json_suffix_content_type_is_json(shared: RunningService) -> None:
    body = json.dumps({"urls": [OK_URL]}).encode()

    response = shared.client.post(
        "/v1/jobs", content=body, headers={"Content-Type": "application/vnd.x+json; charset=utf-8"}
    )

    assert response.status_code == 202, response.text


@pytest.mark.parametrize(
    "raw",
    [b'{"urls": ["http://a.test/\xff"]}', b"\xff\xfe{}", b'{"urls": ["\xed\xa0\x80"]}'],
    ids=["latin1-byte", "utf16-bom", "encoded-surrogate"],
)
def test_a_body_that_is_not_utf8_is_400_naming_the_body_and_the_reason(
    shared: RunningService, raw: bytes
) -> None:
    before = _jobs(shared)["count"]

    response = shared.client.post("/v1/jobs", content=raw, headers=JSON)

    detail = _errors(response, 400)
    assert detail[0]["loc"] == ["body"]
    assert "UTF-8" in detail[0]["msg"]
    first_bad = next(i for i, byte in enumerate(raw) if byte >= 0x80)
    assert f"byte {first_bad}" in detail[0]["msg"]
    assert _jobs(shared)["count"] == before


def test_the_body_errors_are_documented_in_openapi(shared: RunningService) -> None:
    document = shared.client.get("/openapi.json").json()

    for path in ("/v1/jobs", "/v1/check"):
        responses = document["paths"][path]["post"]["responses"]
        for code in ("400", "413", "415", "422"):
            assert responses.get(code, {}).get("description"), (path, code)
