"""Keys on a real service: 401 (no, unknown or revoked key) vs 403 (scope too small)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tests.auth.support import ADMIN_KEY, bearer, create_key, locked_service
from tests.conftest import RunningService

JOB = {"urls": ["http://127.0.0.1:9/"]}


def test_a_call_without_a_key_is_401_with_a_bearer_challenge(
    service_factory: Callable[..., RunningService], tmp_path: Path
) -> None:
    svc = locked_service(service_factory, tmp_path)
    answer = svc.client.get("/v1/jobs")
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"] == "Bearer"
    assert "API key is required" in answer.json()["detail"]


def test_an_unknown_key_is_401_and_never_echoed(
    service_factory: Callable[..., RunningService], tmp_path: Path
) -> None:
    svc = locked_service(service_factory, tmp_path)
    answer = svc.client.get("/v1/status", headers=bearer("uh_made-up-key"))
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    assert "made-up" not in answer.text


def test_a_read_key_reads_but_gets_403_submitting_a_job(
    service_factory: Callable[..., RunningService], tmp_path: Path
) -> None:
    svc = locked_service(service_factory, tmp_path)
    read = create_key(svc, "read")["key"]
    assert svc.client.get("/v1/status", headers=bearer(read)).status_code == 200
    assert svc.client.get("/v1/monitors", headers=bearer(read)).status_code == 200
    assert svc.client.get("/metrics", headers=bearer(read)).status_code == 200
    answer = svc.client.post("/v1/jobs", json=JOB, headers=bearer(read))
    assert answer.status_code == 403
    assert "'read'" in answer.json()["detail"]
    assert "'check'" in answer.json()["detail"]


def test_a_check_key_submits_jobs_but_gets_403_writing_monitors_or_keys(
    service_factory: Callable[..., RunningService], tmp_path: Path
) -> None:
    svc = locked_service(service_factory, tmp_path)
    check = create_key(svc, "check")["key"]
    assert svc.client.post("/v1/jobs", json=JOB, headers=bearer(check)).status_code == 202
    monitor = {"name": "m", "url": "http://127.0.0.1:9/"}
    assert svc.client.post("/v1/monitors", json=monitor, headers=bearer(check)).status_code == 403
    assert svc.client.get("/v1/keys", headers=bearer(check)).status_code == 403
    assert (
        svc.client.post("/v1/monitors", json=monitor, headers=bearer(ADMIN_KEY)).status_code == 201
    )


def test_a_revoked_key_is_401_at_once(
    service_factory: Callable[..., RunningService], tmp_path: Path
) -> None:
    svc = locked_service(service_factory, tmp_path)
    created = create_key(svc, "read")
    assert svc.client.get("/v1/status", headers=bearer(created["key"])).status_code == 200
    revoked = svc.client.delete(f"/v1/keys/{created['id']}", headers=bearer(ADMIN_KEY))
    assert revoked.status_code == 204
    assert svc.client.get("/v1/status", headers=bearer(created["key"])).status_code == 401


def test_health_docs_openapi_and_the_status_page_stay_public(
    service_factory: Callable[..., RunningService], tmp_path: Path
) -> None:
    svc = locked_service(service_factory, tmp_path)
    for path in ("/healthz", "/readyz", "/docs", "/openapi.json", "/"):
        assert svc.client.get(path).status_code == 200, path


def test_the_openapi_document_has_the_bearer_scheme_on_protected_operations(
    service_factory: Callable[..., RunningService], tmp_path: Path
) -> None:
    svc = locked_service(service_factory, tmp_path)
    document = svc.client.get("/openapi.json").json()
    scheme = document["components"]["securitySchemes"]["apiKey"]
    assert scheme["type"] == "http"
    assert scheme["scheme"] == "bearer"
    assert document["paths"]["/v1/jobs"]["post"]["security"] == [{"apiKey": []}]
    assert document["paths"]["/v1/keys"]["get"]["security"] == [{"apiKey": []}]
    assert "security" not in document["paths"]["/healthz"]["get"]


def test_auto_leaves_the_api_open_on_loopback(
    service_factory: Callable[..., RunningService], tmp_path: Path
) -> None:
    svc = service_factory(data_dir=tmp_path)  # auth "auto", host 127.0.0.1
    assert svc.client.post("/v1/jobs", json=JOB).status_code == 202
    assert not (tmp_path / "admin.key").exists()


def test_auto_requires_keys_when_listening_beyond_loopback(
    service_factory: Callable[..., RunningService], tmp_path: Path
) -> None:
    # The settings say 0.0.0.0; the test server itself still binds loopback.
    svc = service_factory(data_dir=tmp_path, host="0.0.0.0")
    assert svc.client.post("/v1/jobs", json=JOB).status_code == 401
    key = (tmp_path / "admin.key").read_text().strip()
    assert svc.client.post("/v1/jobs", json=JOB, headers=bearer(key)).status_code == 202


def test_the_status_page_is_public_unless_made_private(
    service_factory: Callable[..., RunningService], tmp_path: Path
) -> None:
    open_page = locked_service(service_factory, tmp_path / "public")
    assert open_page.client.get("/").status_code == 200
    private = locked_service(service_factory, tmp_path / "private", status_page_public=False)
    assert private.client.get("/").status_code == 401
    assert private.client.get("/badges/any/shields.json").status_code == 401
    read = create_key(private, "read")["key"]
    assert private.client.get("/", headers=bearer(read)).status_code == 200
