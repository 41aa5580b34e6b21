"""Liveness, readiness, the interactive docs and the OpenAPI document."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app import __version__
from tests.conftest import RunningService, make_settings


@pytest.fixture(scope="module")
def shared() -> Iterator[RunningService]:
    """Nothing here changes state: one service serves the whole module."""
    svc = RunningService(make_settings())
    yield svc
    svc.close()


@pytest.fixture(scope="module")
def openapi(shared: RunningService) -> dict[str, Any]:
    response = shared.client.get("/openapi.json")
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


def test_healthz_answers_ok(shared: RunningService) -> None:
    response = shared.client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_answers_ready_while_running(shared: RunningService) -> None:
    response = shared.client.get("/readyz")

    assert response.status_code == 200
    assert response.json() == {"status": "ready"}


def test_docs_serve_swagger_ui_for_the_openapi_document(shared: RunningService) -> None:
    response = shared.client.get("/docs")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "swagger" in response.text.lower()
    assert "/openapi.json" in response.text


def test_redoc_is_served(shared: RunningService) -> None:
    response = shared.client.get("/redoc")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "redoc" in response.text.lower()
    assert "/openapi.json" in response.text


def test_openapi_lists_every_v1_operation(openapi: dict[str, Any]) -> None:
    operations = {(path, method) for path, item in openapi["paths"].items() for method in item}

    assert openapi["info"]["version"] == __version__
    assert {
        ("/v1/jobs", "post"),
        ("/v1/jobs", "get"),
        ("/v1/jobs/{job_id}", "get"),
        ("/v1/jobs/{job_id}", "delete"),
        ("/v1/jobs/{job_id}/stream", "get"),
        ("/v1/check", "post"),
        ("/v1/status", "get"),
        ("/healthz", "get"),
        ("/readyz", "get"),
    } <= operations
    for path, item in openapi["paths"].items():
        for method, operation in item.items():
            assert operation.get("summary"), f"{method.upper()} {path} has no summary"


def _undocumented(schemas: dict[str, Any], root: str) -> list[str]:
    """Properties without a description in `root` and every object schema it refers to."""
    missing: list[str] = []
    seen: set[str] = set()
    pending = [root]
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        for prop, spec in schemas[name].get("properties", {}).items():
            if not spec.get("description"):
                missing.append(f"{name}.{prop}")
            pending.extend(_refs(spec))
    return sorted(missing)


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            yield ref.rsplit("/", 1)[-1]
        for value in node.values():
            yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


@pytest.mark.parametrize("root", ["CheckResult", "JobHeader", "JobOptions"])
def test_every_property_of_public_schemas_is_described(openapi: dict[str, Any], root: str) -> None:
    schemas = openapi["components"]["schemas"]

    assert _undocumented(schemas, root) == []


def test_the_stream_is_documented_as_ndjson(openapi: dict[str, Any]) -> None:
    ok = openapi["paths"]["/v1/jobs/{job_id}/stream"]["get"]["responses"]["200"]

    assert set(ok["content"]) == {"application/x-ndjson"}
    line = ok["content"]["application/x-ndjson"]["schema"]
    assert set(_refs(line)) == {"StreamLine"}
    assert "`result` lines" in ok["description"]
    assert "`end` line" in ok["description"]


def test_a_stream_line_is_a_result_or_the_end(openapi: dict[str, Any]) -> None:
    schemas = openapi["components"]["schemas"]

    assert set(_refs(schemas["StreamLine"])) == {"StreamResult", "StreamEnd"}


def test_the_stream_line_shapes_the_docs_name_are_in_the_document(
    openapi: dict[str, Any],
) -> None:
    # The stream's description tells clients to expect `StreamResult` and `StreamEnd` lines;
    # a client (or a code generator) can only rely on them if their schemas are published.
    schemas = openapi["components"]["schemas"]

    assert {"StreamResult", "StreamEnd"} <= set(schemas)


def test_unknown_path_is_404_json(shared: RunningService) -> None:
    response = shared.client.get("/v2/nothing-here")

    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == {"detail": "Not Found"}


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_health_endpoints_answer_head_for_load_balancers(shared: RunningService, path: str) -> None:
    response = shared.client.head(path)

    assert response.status_code == 200
    assert response.content == b""


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("PUT", "/v1/jobs/abc", {"GET", "DELETE"}),
        ("PATCH", "/v1/jobs", {"GET", "POST"}),
        ("POST", "/v1/status", {"GET"}),
        ("DELETE", "/healthz", {"GET", "HEAD"}),
    ],
)
def test_405_lists_every_method_the_path_supports(
    shared: RunningService, method: str, path: str, allowed: set[str]
) -> None:
    response = shared.client.request(method, path)

    assert response.status_code == 405
    assert response.headers["content-type"].startswith("application/json")
    listed = {item.strip() for item in response.headers["allow"].split(",")}
    assert allowed <= listed
    assert method not in listed


def test_timeout_s_is_described_alike_everywhere(openapi: dict[str, Any]) -> None:
    # The checker gives each attempt one deadline for all its hops (app/engine/checker.py).
    repo = Path(__file__).resolve().parents[2]
    readme = (repo / "README.md").read_text(encoding="utf-8")
    defaults = (repo / "config" / "defaults.toml").read_text(encoding="utf-8")
    schemas = openapi["components"]["schemas"]
    descriptions = {
        "README": next(line for line in readme.splitlines() if line.startswith("| `timeout_s`")),
        "defaults.toml": next(
            line for line in defaults.splitlines() if line.startswith("default_timeout_s")
        ),
        "JobOptions": schemas["JobOptions"]["properties"]["timeout_s"]["description"],
        "CheckOptionsPublic": schemas["CheckOptionsPublic"]["properties"]["timeout_s"][
            "description"
        ],
    }

    for where, text in descriptions.items():
        assert "per attempt" in text, (where, text)
        assert "whole check" not in text, (where, text)
