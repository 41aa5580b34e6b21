"""A job's request headers on redirects, end to end through POST /v1/check: credentials never
follow a redirect to another origin (unless the job opts out), and a job's own `Host` header,
when the operator allows it, reaches the first hop only."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from tests.conftest import RunningService
from tests.support.servers import ThreadedUvicorn

SECRETS = {
    "Authorization": "Bearer S1",
    "Cookie": "s=S2",
    "Proxy-Authorization": "Basic S3",
    "X-Api-Key": "S4",
}
CREDENTIALS = ("authorization", "cookie", "proxy-authorization")


class Recorder:
    """Targets that remember the headers of each request, keyed by a token in the path, and
    redirect to wherever `?to=` says."""

    def __init__(self) -> None:
        self.seen: dict[str, dict[str, str]] = {}
        self.app = Starlette(routes=[Route("/go", self._go), Route("/record/{token}", self._rec)])

    async def _go(self, request: Request) -> Response:
        self.seen["go:" + request.query_params["token"]] = dict(request.headers.items())
        return RedirectResponse(request.query_params["to"], status_code=302)

    async def _rec(self, request: Request) -> Response:
        self.seen[request.path_params["token"]] = dict(request.headers.items())
        return PlainTextResponse("recorded")


@pytest.fixture(scope="module")
def recorder() -> Iterator[tuple[Recorder, ThreadedUvicorn, ThreadedUvicorn]]:
    """One recorder served on two ports: two origins (A and B) of the same host."""
    app = Recorder()
    a = ThreadedUvicorn(app.app).start()
    b = ThreadedUvicorn(app.app).start()
    yield app, a, b
    a.stop()
    b.stop()


def _check(svc: RunningService, url: str, **options: Any) -> dict[str, Any]:
    response = svc.client.post("/v1/check", json={"urls": [url], "options": options})
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()["results"][0]
    assert result["ok"] is True, result
    return result


def _via(start: ThreadedUvicorn, token: str, landing: str) -> str:
    return f"{start.url}/go?{urlencode({'token': token, 'to': landing})}"


# --- item 1: credentials and redirects ------------------------------------------------------


def test_cross_origin_redirect_drops_credentials_and_listed_sensitive_headers(
    service: RunningService, recorder: tuple[Recorder, ThreadedUvicorn, ThreadedUvicorn]
) -> None:
    app, a, b = recorder
    token = uuid.uuid4().hex
    headers = {**SECRETS, "X-Trace": "keep-me"}

    result = _check(
        service,
        _via(a, token, f"{b.url}/record/{token}"),
        headers=headers,
        sensitive_headers=["x-API-key"],  # names are case-insensitive
    )

    assert result["final_url"] == f"{b.url}/record/{token}"
    first, landed = app.seen["go:" + token], app.seen[token]
    # The first hop got everything the job set.
    assert {name: first[name.lower()] for name in headers} == headers
    for name in (*CREDENTIALS, "x-api-key"):
        assert name not in landed, f"{name} leaked to another origin"
    assert landed["x-trace"] == "keep-me"  # other custom headers still follow


def test_unlisted_custom_headers_follow_a_cross_origin_redirect(
    service: RunningService, recorder: tuple[Recorder, ThreadedUvicorn, ThreadedUvicorn]
) -> None:
    app, a, b = recorder
    token = uuid.uuid4().hex

    _check(service, _via(a, token, f"{b.url}/record/{token}"), headers=SECRETS)

    landed = app.seen[token]
    for name in CREDENTIALS:
        assert name not in landed
    assert landed["x-api-key"] == "S4"  # not listed in sensitive_headers


def test_forward_all_sends_every_header_to_the_other_origin(
    service: RunningService, recorder: tuple[Recorder, ThreadedUvicorn, ThreadedUvicorn]
) -> None:
    app, a, b = recorder
    token = uuid.uuid4().hex

    result = _check(
        service,
        _via(a, token, f"{b.url}/record/{token}"),
        headers=SECRETS,
        sensitive_headers=["X-Api-Key"],
        forward_headers_on_redirect="all",
    )

    landed = app.seen[token]
    assert {name: landed[name.lower()] for name in SECRETS} == SECRETS
    assert result["redirects"][0]["status_code"] == 302


def test_same_origin_redirect_keeps_credentials(
    service: RunningService, recorder: tuple[Recorder, ThreadedUvicorn, ThreadedUvicorn]
) -> None:
    app, a, _ = recorder
    token = uuid.uuid4().hex

    _check(
        service,
        _via(a, token, f"/record/{token}"),  # relative: the same origin
        headers=SECRETS,
        sensitive_headers=["X-Api-Key"],
    )

    landed = app.seen[token]
    assert {name: landed[name.lower()] for name in SECRETS} == SECRETS


def test_credentials_dropped_once_stay_dropped_back_on_the_first_origin(
    service: RunningService, recorder: tuple[Recorder, ThreadedUvicorn, ThreadedUvicorn]
) -> None:
    # A -> B -> A: requests strips from the request it goes on with; so does urlhealth.
    app, a, b = recorder
    token = uuid.uuid4().hex
    middle = _via(b, "b" + token, f"{a.url}/record/{token}")

    _check(service, _via(a, token, middle), headers=SECRETS)

    assert "authorization" in app.seen["go:" + token]
    assert "authorization" not in app.seen["go:b" + token]
    for name in CREDENTIALS:
        assert name not in app.seen[token]


def test_options_show_the_header_policy(
    service: RunningService, recorder: tuple[Recorder, ThreadedUvicorn, ThreadedUvicorn]
) -> None:
    _, a, _ = recorder
    body = {
        "urls": [f"{a.url}/record/shown"],
        "options": {"sensitive_headers": ["X-Api-Key", "x-api-key", "X-Other"]},
    }
    job = service.client.post("/v1/jobs", json=body)
    assert job.status_code == 202, job.text
    shown = job.json()["options"]
    assert shown["sensitive_headers"] == ["x-api-key", "x-other"]
    assert shown["forward_headers_on_redirect"] == "same-origin"


@pytest.mark.parametrize(
    ("options", "loc", "reason"),
    [
        ({"sensitive_headers": ["Bad Name"]}, ["sensitive_headers", 0], "token"),
        ({"sensitive_headers": ["X-Ok", ""]}, ["sensitive_headers", 1], "token"),
        ({"forward_headers_on_redirect": "cross-origin"}, ["forward_headers_on_redirect"], ""),
    ],
)
def test_bad_header_policy_options_are_422_naming_the_field(
    service: RunningService, options: dict[str, Any], loc: list[Any], reason: str
) -> None:
    response = service.client.post(
        "/v1/check", json={"urls": ["http://127.0.0.1:9/"], "options": options}
    )
    assert response.status_code == 422, response.text
    errors = response.json()["detail"]
    matching = [e for e in errors if e["loc"] == ["body", "options", *loc]]
    assert matching, errors
    assert reason.lower() in matching[0]["msg"].lower()


# --- item 2: Host and the framing and hop-by-hop headers ------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        *("Host", "host", "Content-Length", "Transfer-Encoding", "Connection"),
        *("Upgrade", "TE", "Trailer", "Expect"),
    ],
)
def test_framing_hop_by_hop_and_host_headers_are_422_naming_the_header(
    service: RunningService, name: str
) -> None:
    body = {"urls": ["http://127.0.0.1:9/"], "options": {"headers": {name: "x"}}}

    response = service.client.post("/v1/jobs", json=body)

    assert response.status_code == 422, response.text
    errors = response.json()["detail"]
    matching = [e for e in errors if e["loc"] == ["body", "options", "headers", name]]
    assert matching, errors
    msg = matching[0]["msg"]
    assert "managed by urlhealth" in msg
    if name.lower() == "host":
        assert "allow_host_header" in msg  # which setting allows it
    else:
        assert "allow_host_header" not in msg


def test_a_header_named_twice_in_different_cases_is_422_naming_the_second(
    service: RunningService,
) -> None:
    # Two spellings of one name would both be sent, and only one of them stripped by name.
    headers = {"Authorization": "Bearer a", "authorization": "Bearer b"}
    body = {"urls": ["http://127.0.0.1:9/"], "options": {"headers": headers}}

    response = service.client.post("/v1/jobs", json=body)

    assert response.status_code == 422, response.text
    errors = response.json()["detail"]
    assert errors[0]["loc"] == ["body", "options", "headers", "authorization"]
    assert "Authorization" in errors[0]["msg"]
    assert service.client.get("/v1/jobs").json()["count"] == 0


def test_framing_headers_are_refused_even_when_host_is_allowed(
    service_factory: Callable[..., RunningService],
) -> None:
    svc = service_factory(allow_host_header=True)
    body = {"urls": ["http://127.0.0.1:9/"], "options": {"headers": {"Connection": "close"}}}

    response = svc.client.post("/v1/check", json=body)

    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["body", "options", "headers", "Connection"]


def test_allowed_host_header_reaches_the_first_hop_only(
    service_factory: Callable[..., RunningService],
    recorder: tuple[Recorder, ThreadedUvicorn, ThreadedUvicorn],
) -> None:
    svc = service_factory(allow_host_header=True)
    app, a, b = recorder
    token = uuid.uuid4().hex

    result = _check(
        svc,
        _via(a, token, f"{b.url}/record/{token}"),
        headers={"Host": "vhost.example"},
        forward_headers_on_redirect="all",  # Host is first-hop-only under every policy
    )

    assert app.seen["go:" + token]["host"] == "vhost.example"
    assert app.seen[token]["host"] == f"127.0.0.1:{b.port}"
    assert result["final_url"] == f"{b.url}/record/{token}"
