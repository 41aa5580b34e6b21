"""Keys at rest (hashed: the table holds nothing that authenticates) and the first admin key
(a file of mode 0600 whose path, never the key, is logged)."""

from __future__ import annotations

import logging
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from app.db.schema import api_keys
from tests.auth.support import ADMIN_KEY, bearer, create_key, locked_service
from tests.conftest import RunningService


@pytest.fixture
def auth_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    # The "urlhealth" logger does not propagate: listen on it directly.
    logger = logging.getLogger("urlhealth")
    logger.addHandler(caplog.handler)
    caplog.set_level(logging.DEBUG, logger="urlhealth")
    try:
        yield caplog
    finally:
        logger.removeHandler(caplog.handler)


def test_the_table_holds_no_usable_key_and_a_stored_hash_does_not_authenticate(
    service_factory: Callable[..., RunningService], tmp_path: Path
) -> None:
    svc = locked_service(service_factory, tmp_path)
    key = create_key(svc, "admin")["key"]
    with svc.services.storage.database.engine.connect() as connection:
        rows = [row._mapping for row in connection.execute(select(api_keys)).all()]
    assert len(rows) == 2  # URLHEALTH_ADMIN_KEY's and the new one
    for row in rows:
        values = " ".join(str(value) for value in row.values())
        assert key not in values
        assert ADMIN_KEY not in values
        assert len(row["prefix"]) <= 8
        assert svc.client.get("/v1/status", headers=bearer(row["key_hash"])).status_code == 401
    assert svc.client.get("/v1/status", headers=bearer(key)).status_code == 200


def test_a_generated_admin_key_is_written_mode_0600_and_only_its_path_is_logged(
    service_factory: Callable[..., RunningService],
    tmp_path: Path,
    auth_log: pytest.LogCaptureFixture,
) -> None:
    svc = service_factory(auth="required", data_dir=tmp_path, log_level="info")
    path = tmp_path / "admin.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    key = path.read_text().strip()
    assert str(path) in auth_log.text
    assert key not in auth_log.text
    answer = svc.client.post("/v1/keys", json={"name": "ci", "scope": "read"}, headers=bearer(key))
    assert answer.status_code == 201
    assert key not in auth_log.text


def test_no_key_file_once_a_key_exists_or_when_one_is_given(
    service_factory: Callable[..., RunningService], tmp_path: Path
) -> None:
    locked_service(service_factory, tmp_path)  # URLHEALTH_ADMIN_KEY given
    assert not (tmp_path / "admin.key").exists()
