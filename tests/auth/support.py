"""A service that requires API keys, with a known admin key."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.conftest import RunningService

ADMIN_KEY = "uh_test-admin-key-" + "x" * 32


def locked_service(
    service_factory: Callable[..., RunningService], data_dir: Path, **overrides: Any
) -> RunningService:
    """Test settings listen on 127.0.0.1, where `auth = "auto"` leaves the API open."""
    overrides.setdefault("admin_key", ADMIN_KEY)
    return service_factory(auth="required", data_dir=data_dir, **overrides)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def create_key(svc: RunningService, scope: str, name: str = "test") -> dict[str, Any]:
    answer = svc.client.post(
        "/v1/keys", json={"name": name, "scope": scope}, headers=bearer(ADMIN_KEY)
    )
    assert answer.status_code == 201, answer.text
    created: dict[str, Any] = answer.json()
    return created
