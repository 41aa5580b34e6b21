"""`urlhealth keys create|list|revoke` as a subprocess, on the SQLite file a service then
opens: the keys it made authenticate there (and the one it revoked does not)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from tests.auth.support import bearer
from tests.conftest import RunningService


def _keys(database: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("URLHEALTH_")}
    env["URLHEALTH_DATABASE_URL"] = f"sqlite:///{database}"
    return subprocess.run(
        [sys.executable, "-m", "app", "keys", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_keys_made_and_revoked_by_the_cli_hold_in_the_service(
    service_factory: Callable[..., RunningService], tmp_path: Path
) -> None:
    database = tmp_path / "urlhealth.db"
    made = _keys(database, "create", "--scope", "check", "--name", "ci")
    assert made.returncode == 0, made.stderr
    check_key = made.stdout.splitlines()[-1]
    assert check_key.startswith("uh_")
    doomed = _keys(database, "create", "--scope", "read", "--name", "old")
    read_key = doomed.stdout.splitlines()[-1]
    revoked = _keys(database, "revoke", "2")
    assert revoked.returncode == 0, revoked.stderr

    listed = _keys(database, "list")
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert [line.split("\t")[:4] for line in lines] == [
        ["1", check_key[:8] + "…", "check", "ci"],
        ["2", read_key[:8] + "…", "read", "old"],
    ]
    assert lines[0].endswith("active")
    assert "revoked" in lines[1]
    assert check_key not in listed.stdout

    assert _keys(database, "revoke", "99").returncode == 1
    svc = service_factory(auth="required", data_dir=tmp_path, database_url=f"sqlite:///{database}")
    job = {"urls": ["http://127.0.0.1:9/"]}
    assert svc.client.post("/v1/jobs", json=job, headers=bearer(check_key)).status_code == 202
    assert svc.client.get("/v1/status", headers=bearer(read_key)).status_code == 401
    assert not (tmp_path / "admin.key").exists()  # a key existed: none generated


def test_keys_create_requires_a_known_scope(tmp_path: Path) -> None:
    wrong = _keys(tmp_path / "x.db", "create", "--scope", "root", "--name", "n")
    assert wrong.returncode == 2
    assert "invalid choice" in wrong.stderr
