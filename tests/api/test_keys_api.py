"""`/v1/keys` (admin): create answers the key once; list shows prefixes; revoke."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tests.auth.support import ADMIN_KEY, bearer, create_key, locked_service
from tests.conftest import RunningService
from tests.support.process import wait_until


def test_admin_creates_lists_and_revokes_keys(
    service_factory: Callable[..., RunningService], tmp_path: Path
) -> None:
    svc = locked_service(service_factory, tmp_path)
    created = create_key(svc, "check", name="deploy")
    assert created["key"].startswith(created["prefix"])
    assert created["scope"] == "check"
    assert created["revoked_at"] is None
    svc.client.get("/v1/status", headers=bearer(created["key"]))

    listed = svc.client.get("/v1/keys", headers=bearer(ADMIN_KEY))
    assert listed.status_code == 200
    keys = {key["name"]: key for key in listed.json()["keys"]}
    assert set(keys) == {"URLHEALTH_ADMIN_KEY", "deploy"}
    assert "key" not in keys["deploy"]
    assert created["key"] not in listed.text
    assert keys["deploy"]["prefix"] == created["prefix"]

    def used() -> bool:
        listed = svc.client.get("/v1/keys", headers=bearer(ADMIN_KEY)).json()["keys"]
        return next(k for k in listed if k["id"] == created["id"])["last_used_at"] is not None

    assert wait_until(used, timeout_s=10.0)  # stamped through the writer, soon after the call

    gone = svc.client.delete(f"/v1/keys/{created['id']}", headers=bearer(ADMIN_KEY))
    assert gone.status_code == 204
    after = svc.client.get("/v1/keys", headers=bearer(ADMIN_KEY)).json()["keys"]
    assert next(k for k in after if k["id"] == created["id"])["revoked_at"] is not None


def test_revoking_an_unknown_key_is_404(
    service_factory: Callable[..., RunningService], tmp_path: Path
) -> None:
    svc = locked_service(service_factory, tmp_path)
    answer = svc.client.delete("/v1/keys/999", headers=bearer(ADMIN_KEY))
    assert answer.status_code == 404


def test_a_bad_scope_is_422(service_factory: Callable[..., RunningService], tmp_path: Path) -> None:
    svc = locked_service(service_factory, tmp_path)
    answer = svc.client.post(
        "/v1/keys", json={"name": "x", "scope": "root"}, headers=bearer(ADMIN_KEY)
    )
    assert answer.status_code == 422


def test_a_read_key_cannot_list_keys(
    service_factory: Callable[..., RunningService], tmp_path: Path
) -> None:
    svc = locked_service(service_factory, tmp_path)
    read = create_key(svc, "read")["key"]
    assert svc.client.get("/v1/keys", headers=bearer(read)).status_code == 403


def test_keys_work_on_postgresql(
    service_factory: Callable[..., RunningService], tmp_path: Path, pg_url: str
) -> None:
    svc = locked_service(service_factory, tmp_path, database_url=pg_url)
    created = create_key(svc, "read")
    assert svc.client.get("/v1/status", headers=bearer(created["key"])).status_code == 200
    gone = svc.client.delete(f"/v1/keys/{created['id']}", headers=bearer(ADMIN_KEY))
    assert gone.status_code == 204
    assert svc.client.get("/v1/status", headers=bearer(created["key"])).status_code == 401
