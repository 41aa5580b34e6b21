"""compose.yaml, checked as far as a machine with no container engine can: every urlhealth
service's command is a real `urlhealth` command line, its environment is valid settings (no
unknown variable), keys are required, and compose waits longer than the drain before a kill."""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.cli import _parser
from app.config import load_settings

COMPOSE = Path(__file__).resolve().parents[2] / "compose.yaml"
SECRETS = {"POSTGRES_PASSWORD": "pw_test", "URLHEALTH_ADMIN_KEY": "uh_test_admin_key"}


def compose() -> dict[str, Any]:
    """The file as compose reads it, ${NAME:?message} and ${NAME} filled in from SECRETS."""
    text = COMPOSE.read_text(encoding="utf-8")
    text = re.sub(r"\$\{(\w+)(?::\?[^}]*)?\}", lambda m: SECRETS[m.group(1)], text)
    loaded: dict[str, Any] = yaml.safe_load(text)
    return loaded


def seconds(duration: str) -> float:
    match = re.fullmatch(r"(\d+)s", duration)
    assert match, duration
    return float(match.group(1))


def test_every_secret_is_required_not_defaulted() -> None:
    # compose refuses to start without them instead of running with an empty password or key.
    text = COMPOSE.read_text(encoding="utf-8")
    for name in SECRETS:
        assert re.search(r"\$\{" + name + r":\?", text), name
        assert not re.search(r"\$\{" + name + r"(:?-)", text), name


@pytest.mark.parametrize(("service", "role"), [("api", "api"), ("worker", "worker")])
def test_service_runs_a_real_urlhealth_command_with_valid_settings(
    service: str,
    role: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    spec = compose()["services"][service]
    command = spec["command"]
    assert command[0] == "urlhealth"
    args = _parser().parse_args(command[1:])
    assert (args.command, args.role) == ("serve", role)

    for name in [n for n in os.environ if n.startswith("URLHEALTH_")]:
        monkeypatch.delenv(name)
    for name, value in spec["environment"].items():
        monkeypatch.setenv(name, str(value))
    caplog.set_level(logging.WARNING, logger="urlhealth.config")
    settings = load_settings(role=args.role)

    assert [r.getMessage() for r in caplog.records] == []  # no unknown URLHEALTH_* variable
    assert settings.clustered
    assert settings.database_url is not None
    assert settings.database_url.get_secret_value().startswith("postgresql://")
    assert "@postgres:5432/" in settings.database_url.get_secret_value()
    # Listening on every interface of its container: keys are required ("auto"), and the
    # first admin key is the one from .env.
    assert (settings.host, settings.auth) == ("0.0.0.0", "auto")
    assert settings.admin_key is not None
    assert settings.admin_key.get_secret_value() == SECRETS["URLHEALTH_ADMIN_KEY"]

    # SIGTERM, then a kill only after the drain: the running checks' grace, the replica's
    # close (at most grace + 5 s) and the writer's flush.
    drain_s = 2 * settings.shutdown_grace_s + 5 + settings.db_flush_timeout_s
    assert seconds(spec["stop_grace_period"]) > drain_s
    assert spec.get("stop_signal", "SIGTERM") == "SIGTERM"

    assert spec["depends_on"]["postgres"] == {"condition": "service_healthy"}
    probe = " ".join(spec["healthcheck"]["test"])
    assert f"127.0.0.1:{settings.port}/readyz" in probe


def test_topology_is_postgres_one_api_two_workers_with_named_volumes() -> None:
    spec = compose()
    services = spec["services"]
    assert set(services) == {"postgres", "api", "worker"}
    assert services["worker"]["deploy"]["replicas"] == 2
    assert "ports" not in services["worker"]
    assert services["api"]["ports"] == ["127.0.0.1:8000:8000"]
    # Workers start once the API migrated the schema and added the admin key.
    assert services["worker"]["depends_on"]["api"] == {"condition": "service_healthy"}
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    named = set(spec["volumes"])
    for service in services.values():
        for volume in service["volumes"]:
            assert volume.split(":", 1)[0] in named, volume
