"""The one place settings come from: defaults here (documented in config/defaults.toml),
an optional TOML file of overrides, then environment variables prefixed ``URLHEALTH_``."""

from __future__ import annotations

import ipaddress
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

ENV_PREFIX = "URLHEALTH_"

# Comma-separated in the environment ("127.0.0.0/8,::1/128"), a list in TOML.
NetworkList = Annotated[tuple[str, ...], NoDecode]


class SettingsError(ValueError):
    """A setting has a bad value; the message names the setting and the reason."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", frozen=True)

    # Server
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"

    # Engine
    workers: int = Field(64, ge=1, le=4096)
    # Run fewer checks at once than there are workers while the API's event loop falls
    # behind (the GIL is the bottleneck then, not the number of workers).
    adaptive_concurrency: bool = True
    max_queued_checks: int = Field(10_000, ge=1)
    max_urls_per_job: int = Field(1000, ge=1)
    max_url_length: int = Field(2048, ge=16, le=65_536)
    max_sync_urls: int = Field(20, ge=1)
    user_agent: str = "urlhealth/0.1"

    # Check defaults and their ceilings (a job may choose within them)
    default_timeout_s: float = Field(10.0, gt=0)
    max_timeout_s: float = Field(60.0, gt=0)
    default_max_redirects: int = Field(10, ge=0)
    max_redirects_limit: int = Field(30, ge=0)
    default_expected_status: str = "200-399"
    max_body_bytes: int = Field(1_048_576, ge=0)
    max_body_bytes_limit: int = Field(16_777_216, ge=0)

    # Destination policy
    allowed_networks: NetworkList = ()
    denied_networks: NetworkList = ()
    allowed_ports: Annotated[tuple[int, ...], NoDecode] = ()
    max_connections_per_host: int = Field(8, ge=1)
    min_host_interval_s: float = Field(0.0, ge=0)
    ca_bundle: Path | None = None

    # Retries (a job asks for them with the `retries` option)
    max_retries: int = Field(5, ge=0, le=20)
    retry_backoff_s: float = Field(0.5, ge=0)
    retry_max_delay_s: float = Field(30.0, ge=0)

    # Results store
    retention_max_jobs: int = Field(1000, ge=1)
    retention_max_age_s: float = Field(3600.0, gt=0)
    # Bytes the kept jobs' results may take (their JSON plus an estimate of the rest);
    # finished jobs are evicted, oldest first, beyond it. At least 1 MiB: a budget below one
    # job's results would evict every job as soon as the next one finished.
    retention_max_bytes: int = Field(268_435_456, ge=1_048_576)

    # Lifecycle
    shutdown_grace_s: float = Field(10.0, ge=0)

    @field_validator("allowed_networks", "denied_networks", mode="before")
    @classmethod
    def _split_networks(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(item.strip() for item in value.split(",") if item.strip())
        return value

    @field_validator("allowed_ports", mode="before")
    @classmethod
    def _split_ports(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(item.strip() for item in value.split(",") if item.strip())
        return value

    @field_validator("allowed_ports")
    @classmethod
    def _ports_in_range(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        for port in value:
            if not 1 <= port <= 65535:
                raise ValueError(f"port {port} is outside 1-65535")
        return value

    @field_validator("ca_bundle")
    @classmethod
    def _ca_exists(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"{value}: no such file")
        return value

    @field_validator("allowed_networks", "denied_networks")
    @classmethod
    def _parse_networks(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for item in value:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError as exc:
                raise ValueError(f"{item!r} is not a network in CIDR form: {exc}") from None
        return value

    @field_validator("default_expected_status")
    @classmethod
    def _parse_expected(cls, value: str) -> str:
        from app.engine.options import parse_status_ranges

        parse_status_ranges(value)
        return value

    @model_validator(mode="after")
    def _defaults_within_ceilings(self) -> Settings:
        pairs = [
            ("default_timeout_s", "max_timeout_s"),
            ("default_max_redirects", "max_redirects_limit"),
            ("max_body_bytes", "max_body_bytes_limit"),
        ]
        pairs += [("max_urls_per_job", "max_queued_checks"), ("max_sync_urls", "max_queued_checks")]
        for default, ceiling in pairs:
            if getattr(self, default) > getattr(self, ceiling):
                # Otherwise a request could be refused with 429 forever.
                raise ValueError(f"{default} must not exceed {ceiling}")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))


class _ConfigLocation(BaseSettings):
    """Where the override file is, for `uvicorn app.main:app`, which has no --config."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")
    config_file: Path | None = None


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build the settings; a bad value raises SettingsError naming the setting."""
    path = config_file if config_file is not None else _ConfigLocation().config_file
    if path is not None and not path.is_file():
        raise SettingsError(f"config file {path}: no such file")

    class _Loaded(Settings):
        model_config = SettingsConfigDict(toml_file=path)

    try:
        return _Loaded(**overrides)
    except ValidationError as exc:
        raise SettingsError(_describe(exc)) from exc
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"config file {path}: not valid TOML: {exc}") from exc


def _describe(exc: ValidationError) -> str:
    lines = []
    for error in exc.errors():
        field = ".".join(str(part) for part in error["loc"]) or "settings"
        name = f"{ENV_PREFIX}{field.upper()}" if field != "settings" else field
        lines.append(f"{name} ({field}): {error['msg']}")
    return "invalid settings: " + "; ".join(lines)
