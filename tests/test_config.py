"""Settings: built-in defaults, an optional TOML file, then URLHEALTH_* environment variables."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app.config import Settings, SettingsError, load_settings
from tests.support.servers import free_port

REPO = Path(__file__).resolve().parents[1]
DEFAULTS_TOML = REPO / "config" / "defaults.toml"
EXAMPLE_TOML = REPO / "config" / "example.toml"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The developer's own URLHEALTH_* variables must not leak into these tests."""
    for name in list(os.environ):
        if name.startswith("URLHEALTH_"):
            monkeypatch.delenv(name)


def write_toml(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _default(name: str) -> Any:
    return Settings.model_fields[name].get_default(call_default_factory=True)


# --- config/defaults.toml documents the built-in defaults ---------------------------------


def _commented_out() -> set[str]:
    """Settings whose default is unset: TOML has no null, so they are shown commented out."""
    text = DEFAULTS_TOML.read_text(encoding="utf-8")
    return set(re.findall(r"^# (\w+) = ", text, flags=re.MULTILINE))


def test_defaults_toml_lists_exactly_the_settings_fields() -> None:
    documented = tomllib.loads(DEFAULTS_TOML.read_text(encoding="utf-8"))

    assert set(documented) | _commented_out() == set(Settings.model_fields)


@pytest.mark.parametrize("name", sorted(Settings.model_fields))
def test_defaults_toml_value_equals_the_built_in_default(name: str) -> None:
    documented = tomllib.loads(DEFAULTS_TOML.read_text(encoding="utf-8"))
    default = _default(name)
    value = documented.get(name)

    if default is None:
        assert name not in documented
        assert name in _commented_out()
    elif isinstance(default, tuple):
        assert value == list(default)
    elif isinstance(default, Path):
        assert Path(str(value)) == default
    else:
        assert value == default
        assert type(value) is type(default), f"{name}: {value!r} vs {default!r}"


def test_loading_defaults_toml_changes_nothing() -> None:
    assert load_settings(DEFAULTS_TOML).model_dump() == load_settings().model_dump()


def test_example_toml_is_a_valid_override_file() -> None:
    example = tomllib.loads(EXAMPLE_TOML.read_text(encoding="utf-8"))

    settings = load_settings(EXAMPLE_TOML)

    for name, value in example.items():
        got = getattr(settings, name)
        assert (list(got) if isinstance(got, tuple) else got) == value


# --- where values come from, and which wins -----------------------------------------------


def test_environment_overrides_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("URLHEALTH_WORKERS", "7")
    monkeypatch.setenv("URLHEALTH_ALLOWED_NETWORKS", "127.0.0.0/8,::1/128")

    settings = load_settings()

    assert settings.workers == 7
    assert settings.allowed_networks == ("127.0.0.0/8", "::1/128")
    assert settings.max_sync_urls == _default("max_sync_urls")


def test_network_list_from_environment_tolerates_spaces_and_empty_items(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("URLHEALTH_DENIED_NETWORKS", " 10.0.0.0/8 , ,192.168.0.0/16,")

    assert load_settings().denied_networks == ("10.0.0.0/8", "192.168.0.0/16")


def test_config_file_overrides_defaults(tmp_path: Path) -> None:
    path = write_toml(
        tmp_path / "urlhealth.toml",
        'workers = 5\nmax_sync_urls = 3\nallowed_networks = ["10.20.0.0/16"]\n',
    )

    settings = load_settings(path)

    assert settings.workers == 5
    assert settings.max_sync_urls == 3
    assert settings.allowed_networks == ("10.20.0.0/16",)
    assert settings.port == _default("port")


def test_environment_beats_the_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_toml(tmp_path / "urlhealth.toml", "workers = 5\nmax_sync_urls = 3\n")
    monkeypatch.setenv("URLHEALTH_WORKERS", "9")

    settings = load_settings(path)

    assert settings.workers == 9
    assert settings.max_sync_urls == 3


def test_explicit_overrides_beat_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # `urlhealth serve --port` passes its flags this way: they win over URLHEALTH_PORT.
    monkeypatch.setenv("URLHEALTH_PORT", "8100")

    assert load_settings(None, port=8200).port == 8200


def test_config_file_env_var_selects_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_toml(tmp_path / "from-env.toml", "max_urls_per_job = 42\n")
    monkeypatch.setenv("URLHEALTH_CONFIG_FILE", str(path))

    assert load_settings().max_urls_per_job == 42


# --- bad values stop startup with a message naming the setting ----------------------------


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("URLHEALTH_WORKERS", "0"),
        ("URLHEALTH_WORKERS", "many"),
        ("URLHEALTH_ALLOWED_NETWORKS", "10.0.0.0/33"),
        ("URLHEALTH_DENIED_NETWORKS", "127.0.0.0/8,not-a-network"),
        ("URLHEALTH_PORT", "70000"),
        ("URLHEALTH_LOG_LEVEL", "loud"),
        ("URLHEALTH_DEFAULT_EXPECTED_STATUS", "abc"),
        ("URLHEALTH_MAX_URL_LENGTH", "8"),
    ],
)
def test_bad_environment_value_raises_settings_error_naming_it(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)

    with pytest.raises(SettingsError, match=variable):
        load_settings()


@pytest.mark.parametrize(
    ("default", "ceiling", "value"),
    [
        ("default_timeout_s", "max_timeout_s", "61"),
        ("default_max_redirects", "max_redirects_limit", "31"),
        ("max_body_bytes", "max_body_bytes_limit", "16777217"),
    ],
)
def test_default_above_its_ceiling_raises_settings_error_naming_both(
    monkeypatch: pytest.MonkeyPatch, default: str, ceiling: str, value: str
) -> None:
    monkeypatch.setenv(f"URLHEALTH_{default.upper()}", value)

    with pytest.raises(SettingsError) as caught:
        load_settings()

    assert default in str(caught.value)
    assert ceiling in str(caught.value)


def test_bad_value_in_config_file_raises_settings_error_naming_it(tmp_path: Path) -> None:
    path = write_toml(tmp_path / "bad.toml", "workers = 0\n")

    with pytest.raises(SettingsError, match="workers"):
        load_settings(path)


def test_unknown_setting_in_config_file_is_an_error_not_ignored(tmp_path: Path) -> None:
    path = write_toml(tmp_path / "typo.toml", "worker = 5\n")

    with pytest.raises(SettingsError, match="worker"):
        load_settings(path)


def test_malformed_config_file_raises_settings_error(tmp_path: Path) -> None:
    path = write_toml(tmp_path / "broken.toml", "workers = \n")

    with pytest.raises(SettingsError, match=r"broken\.toml"):
        load_settings(path)


def test_missing_config_file_raises_settings_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"

    with pytest.raises(SettingsError, match=r"nope\.toml"):
        load_settings(missing)


def test_missing_config_file_named_by_env_raises_settings_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("URLHEALTH_CONFIG_FILE", str(tmp_path / "gone.toml"))

    with pytest.raises(SettingsError, match=r"gone\.toml"):
        load_settings()


# --- the CLI turns a SettingsError into exit code 2 and one line on stderr ----------------


def _serve(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("URLHEALTH_")}
    # Should a bad value be accepted, the server would listen here, on loopback only.
    base.update(URLHEALTH_HOST="127.0.0.1", URLHEALTH_PORT=str(free_port()), **env)
    return subprocess.run(
        [sys.executable, "-m", "app", "serve", *args],
        env=base,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_cli_exits_2_naming_a_bad_environment_setting() -> None:
    done = _serve(URLHEALTH_WORKERS="0")

    assert done.returncode == 2, done.stderr
    assert "URLHEALTH_WORKERS" in done.stderr
    assert "Traceback" not in done.stderr


def test_cli_exits_2_when_the_config_file_is_missing(tmp_path: Path) -> None:
    done = _serve("--config", str(tmp_path / "absent.toml"))

    assert done.returncode == 2, done.stderr
    assert "absent.toml" in done.stderr
    assert "Traceback" not in done.stderr


# --- messages say where a value came from, and what it was ---------------------------------


def test_bad_value_in_config_file_is_reported_under_the_file_not_a_variable(
    tmp_path: Path,
) -> None:
    path = write_toml(tmp_path / "bad.toml", "workers = 0\n")

    with pytest.raises(SettingsError) as caught:
        load_settings(path)

    message = str(caught.value)
    assert "URLHEALTH_WORKERS" not in message
    assert f"workers = 0 in config file {path}" in message


def test_bad_environment_value_is_reported_with_its_value_and_origin(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("URLHEALTH_WORKERS", "many")

    with pytest.raises(SettingsError) as caught:
        load_settings()

    assert "URLHEALTH_WORKERS='many' in the environment" in str(caught.value)


def test_cross_setting_error_names_both_settings_their_values_and_origins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_toml(tmp_path / "limits.toml", "max_queued_checks = 500\n")
    monkeypatch.setenv("URLHEALTH_MAX_URLS_PER_JOB", "2000")

    with pytest.raises(SettingsError) as caught:
        load_settings(path)

    message = str(caught.value)
    assert "settings (settings)" not in message
    assert "max_urls_per_job = 2000 (URLHEALTH_MAX_URLS_PER_JOB in the environment)" in message
    assert f"max_queued_checks = 500 (in config file {path})" in message


def test_unknown_setting_in_config_file_suggests_the_closest(tmp_path: Path) -> None:
    path = write_toml(tmp_path / "typo.toml", "worker = 5\n")

    with pytest.raises(SettingsError, match="did you mean workers"):
        load_settings(path)


@pytest.fixture
def config_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    # The app's "urlhealth" logger stops propagation once an app is built: listen directly.
    logger = logging.getLogger("urlhealth.config")
    logger.addHandler(caplog.handler)
    caplog.set_level(logging.WARNING, logger="urlhealth.config")
    yield caplog
    logger.removeHandler(caplog.handler)


def test_a_misspelt_environment_variable_warns_naming_the_closest_setting(
    monkeypatch: pytest.MonkeyPatch, config_log: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("URLHEALTH_WORKER", "5")
    monkeypatch.setenv("URLHEALTH_ALLOWED_NETWORK", "127.0.0.0/8")

    settings = load_settings()

    assert settings.workers == _default("workers")
    warnings = [r.getMessage() for r in config_log.records if r.levelno == logging.WARNING]
    assert any(
        "URLHEALTH_WORKER " in w and "did you mean URLHEALTH_WORKERS" in w for w in warnings
    ), warnings
    assert any("did you mean URLHEALTH_ALLOWED_NETWORKS" in w for w in warnings), warnings


def test_known_environment_variables_do_not_warn(
    monkeypatch: pytest.MonkeyPatch, config_log: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("URLHEALTH_WORKERS", "5")
    monkeypatch.setenv("URLHEALTH_CONFIG_FILE", str(DEFAULTS_TOML))

    load_settings()

    assert [r.getMessage() for r in config_log.records] == []


def test_cli_warns_about_a_misspelt_variable_before_starting() -> None:
    # The bad URLHEALTH_WORKERS stops the start, so the warning is all there is to see.
    done = _serve(URLHEALTH_WORKES="5", URLHEALTH_WORKERS="0")

    assert done.returncode == 2, done.stderr
    assert "URLHEALTH_WORKES" in done.stderr
    assert "URLHEALTH_WORKERS" in done.stderr


# --- former names (config.ALIASES) -------------------------------------------------------


def test_former_name_in_the_environment_sets_the_per_replica_setting(
    monkeypatch: pytest.MonkeyPatch, config_log: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("URLHEALTH_MAX_CONNECTIONS_PER_HOST", "3")

    settings = load_settings()

    assert settings.max_connections_per_host_per_replica == 3
    assert [r.getMessage() for r in config_log.records] == []  # a known variable: no warning


def test_former_name_in_a_config_file_sets_the_per_replica_setting(tmp_path: Path) -> None:
    config = write_toml(tmp_path / "c.toml", "max_connections_per_host = 4\n")

    assert load_settings(config).max_connections_per_host_per_replica == 4


def test_former_name_as_an_argument_sets_the_per_replica_setting() -> None:
    settings = load_settings(max_connections_per_host=5)

    assert settings.max_connections_per_host_per_replica == 5


def test_the_new_name_works_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("URLHEALTH_MAX_CONNECTIONS_PER_HOST_PER_REPLICA", "6")

    assert load_settings().max_connections_per_host_per_replica == 6


def test_both_names_given_is_an_error_naming_both_and_where_they_came_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write_toml(tmp_path / "c.toml", "max_connections_per_host_per_replica = 4\n")
    monkeypatch.setenv("URLHEALTH_MAX_CONNECTIONS_PER_HOST", "3")

    with pytest.raises(SettingsError) as caught:
        load_settings(config)

    message = str(caught.value)
    assert 'max_connections_per_host = "3" (URLHEALTH_MAX_CONNECTIONS_PER_HOST' in message
    assert f"max_connections_per_host_per_replica = 4 (in config file {config})" in message
    assert "give only the second" in message


def test_both_names_in_the_environment_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("URLHEALTH_MAX_CONNECTIONS_PER_HOST", "3")
    monkeypatch.setenv("URLHEALTH_MAX_CONNECTIONS_PER_HOST_PER_REPLICA", "3")

    with pytest.raises(SettingsError, match="URLHEALTH_MAX_CONNECTIONS_PER_HOST_PER_REPLICA"):
        load_settings()


def test_a_bad_value_under_the_former_name_is_reported_under_that_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("URLHEALTH_MAX_CONNECTIONS_PER_HOST", "0")

    with pytest.raises(SettingsError) as caught:
        load_settings()

    message = str(caught.value)
    assert "URLHEALTH_MAX_CONNECTIONS_PER_HOST='0' in the environment" in message, message
    assert "greater than or equal to 1" in message


def test_cli_serve_names_a_bad_former_variable_and_does_not_call_it_unknown() -> None:
    done = _serve(URLHEALTH_MAX_CONNECTIONS_PER_HOST="0")

    assert done.returncode == 2, done.stderr
    assert "URLHEALTH_MAX_CONNECTIONS_PER_HOST='0' in the environment" in done.stderr
    assert "is not a setting" not in done.stderr
