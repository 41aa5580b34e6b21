"""Rate limits: per key, and per client address for calls without a valid key."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tests.auth.support import ADMIN_KEY, bearer, create_key, locked_service
from tests.conftest import RunningService


def test_a_key_over_its_rate_gets_429_with_retry_after(
    service_factory: Callable[..., RunningService], tmp_path: Path
) -> None:
    svc = locked_service(service_factory, tmp_path, rate_limit_per_key="3/minute")
    statuses = [
        svc.client.get("/v1/status", headers=bearer(ADMIN_KEY)).status_code for _ in range(3)
    ]
    assert statuses == [200, 200, 200]
    answer = svc.client.get("/v1/status", headers=bearer(ADMIN_KEY))
    assert answer.status_code == 429
    assert 1 <= int(answer.headers["retry-after"]) <= 60
    assert "rate limit" in answer.json()["detail"]


def test_keys_are_limited_apart(
    service_factory: Callable[..., RunningService], tmp_path: Path
) -> None:
    svc = locked_service(service_factory, tmp_path, rate_limit_per_key="2/minute")
    other = create_key(svc, "read")["key"]  # the admin key's first call
    assert svc.client.get("/v1/status", headers=bearer(ADMIN_KEY)).status_code == 200
    assert svc.client.get("/v1/status", headers=bearer(ADMIN_KEY)).status_code == 429
    assert svc.client.get("/v1/status", headers=bearer(other)).status_code == 200


def test_calls_without_a_valid_key_are_limited_by_address(
    service_factory: Callable[..., RunningService], tmp_path: Path
) -> None:
    svc = locked_service(service_factory, tmp_path, rate_limit_per_address="2/minute")
    statuses = [svc.client.get("/v1/status", headers=bearer("uh_guess")).status_code]
    statuses.append(svc.client.get("/v1/status").status_code)
    answer = svc.client.get("/v1/status", headers=bearer("uh_guess"))
    assert statuses == [401, 401]
    assert answer.status_code == 429
    assert int(answer.headers["retry-after"]) >= 1
    # A valid key is counted as itself, not by the address.
    assert svc.client.get("/v1/status", headers=bearer(ADMIN_KEY)).status_code == 200
