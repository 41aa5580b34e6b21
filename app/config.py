"""The one place settings come from: defaults here (documented in config/defaults.toml),
an optional TOML file of overrides, then environment variables prefixed ``URLHEALTH_``."""

from __future__ import annotations

import difflib
import ipaddress
import json
import logging
import os
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

ENV_PREFIX = "URLHEALTH_"

# Former names of settings, still accepted in the environment, a config file or as arguments:
# former -> current. Giving both names is an error (which one was meant?).
ALIASES: dict[str, str] = {"max_connections_per_host": "max_connections_per_host_per_replica"}

log = logging.getLogger("urlhealth.config")

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

    # Request bodies: larger ones are refused with 413 before they are parsed. The default
    # holds a full job (max_urls_per_job URLs of max_url_length) twice over.
    max_request_bytes: int = Field(4_194_304, ge=1024)
    # Client connections (app/lifecycle/connections.py)
    request_head_timeout_s: float = Field(10.0, gt=0)
    keepalive_timeout_s: float = Field(5.0, gt=0)
    # File descriptors are shared with the checks: leave them most of a 1024 limit.
    max_connections: int = Field(512, ge=1)

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

    # A job's own Host header: checking a virtual host on a given address, off by default
    # since it lets a job reach every virtual host behind an allowed address
    allow_host_header: bool = False

    # Destination policy
    allowed_networks: NetworkList = ()
    denied_networks: NetworkList = ()
    allowed_ports: Annotated[tuple[int, ...], NoDecode] = ()
    # Checks of one host at once, in this process: N replicas that run checks allow N times
    # as many (the former name, max_connections_per_host, is still accepted: ALIASES).
    max_connections_per_host_per_replica: int = Field(8, ge=1)
    min_host_interval_s: float = Field(0.0, ge=0)
    ca_bundle: Path | None = None

    # Name resolution, shared fairly between jobs (see app/engine/dnscache.py)
    dns_max_in_flight: int = Field(32, ge=1)
    dns_slots_per_job: int = Field(8, ge=1)
    dns_cache_ttl_s: float = Field(30.0, ge=0)
    dns_negative_ttl_s: float = Field(5.0, ge=0)
    dns_cache_max_names: int = Field(10_000, ge=1)

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

    # Database (used from issue 8's durable store onward). A secret: the URL may hold a
    # password, and a secret is never shown by the settings' repr or in an error.
    database_url: SecretStr | None = None
    data_dir: Path = Path("data")
    db_flush_interval_s: float = Field(0.1, gt=0)
    db_queue_max: int = Field(10_000, ge=1)
    # Faults: while the database is away, writes are retried, waits doubling up to this.
    db_retry_max_delay_s: float = Field(5.0, gt=0)
    # On shutdown, how long the writer may take to flush; what it cannot write is logged.
    db_flush_timeout_s: float = Field(10.0, ge=0)
    # Retention on disk (app/db/retention.py), apart from the memory budget above: finished
    # jobs older than this many days, or beyond the newest max_jobs, are deleted.
    db_retention_days: float = Field(30.0, gt=0)
    db_retention_max_jobs: int = Field(100_000, ge=1)
    db_retention_interval_s: float = Field(600.0, gt=0)

    # Monitors (app/monitors/): URLs checked on a schedule.
    # A TOML file of monitors (config/monitors.example.toml), loaded at start and on SIGHUP.
    monitors_file: Path | None = None
    monitor_min_interval_s: float = Field(5.0, gt=0)
    monitor_default_interval_s: float = Field(60.0, gt=0)
    # Capacity only monitor checks may use, so a large batch job never delays them: extra
    # workers in the shared pool, and extra connections per host.
    monitor_workers: int = Field(16, ge=1, le=1024)
    monitor_slots_per_host: int = Field(2, ge=1)
    # /readyz fails when a due monitor check has waited longer than this to start.
    monitor_stall_s: float = Field(30.0, gt=0)
    # History: every result kept raw this long; hourly and daily rollups (and incidents)
    # this long.
    history_raw_days: float = Field(7.0, gt=0)
    history_rollup_days: float = Field(400.0, gt=0)

    # Alerts (app/alerts/): the outbox's delivery thread.
    # How often it looks for due rows without being told (retries, reminders, the end of
    # maintenance windows, another replica's rows, a claim whose lease ran out).
    alert_scan_interval_s: float = Field(5.0, gt=0)
    alert_send_workers: int = Field(4, ge=1, le=64)  # sends to different channels at once
    # A row claimed for sending longer ago than this (its sender was killed) is sent again.
    alert_lease_s: float = Field(120.0, gt=0)
    alert_retry_base_s: float = Field(5.0, gt=0)  # first retry's wait; doubles each attempt
    alert_retry_max_delay_s: float = Field(600.0, gt=0)
    # A message is given up (status failed) after this many attempts, or this old.
    alert_max_attempts: int = Field(10, ge=1)
    alert_max_age_s: float = Field(86_400.0, gt=0)
    # Outbox rows (and their attempts) older than this are deleted, once final.
    alert_retention_days: float = Field(30.0, gt=0)

    # API keys (app/auth/): "auto" requires a key for every API call unless the service
    # listens on loopback only; "required" always (use it behind a reverse proxy on the same
    # host, whose connections come from loopback); "off" never.
    auth: Literal["auto", "required", "off"] = "auto"
    # The first admin key, if given; else one is generated into <data_dir>/admin.key.
    admin_key: SecretStr | None = None
    # Peers whose X-Forwarded-For names the client (rate limits per address); others' is ignored.
    trusted_proxies: NetworkList = ()
    # Rate limits ("N/second|minute|hour"), while keys are required: per key, and per client
    # address for calls without a valid key. Held in this process: replicas do not share them.
    rate_limit_per_key: str = "6000/minute"
    rate_limit_per_address: str = "600/minute"
    # The status page and badges (app/web/) answer without a key; false puts them behind the
    # `read` scope like the API (when keys are in force).
    status_page_public: bool = True

    # Replicas (app/cluster/): several processes sharing one PostgreSQL, work handed out
    # through its queue. "all" runs everything in this process; "api" accepts jobs and
    # serves every read but runs no checks; "worker" runs chunks of jobs, monitors and
    # alert deliveries. "api" and "worker" imply `cluster`; `cluster` needs PostgreSQL.
    role: Literal["all", "api", "worker"] = "all"
    cluster: bool = False
    # URLs per unit of work a worker takes from the queue (a job of 2,000 URLs is 20 chunks).
    chunk_size: int = Field(100, ge=1, le=10_000)
    # A worker silent this long (killed, cut off) is presumed dead: its chunks run elsewhere.
    cluster_lease_s: float = Field(30.0, ge=2)

    # Lifecycle
    shutdown_grace_s: float = Field(10.0, ge=0)

    @field_validator("allowed_networks", "denied_networks", "trusted_proxies", mode="before")
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

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: SecretStr | None) -> SecretStr | None:
        from app.db.url import check_database_url

        if value is not None:
            check_database_url(value.get_secret_value())
        return value

    @field_validator("rate_limit_per_key", "rate_limit_per_address")
    @classmethod
    def _parse_rate(cls, value: str) -> str:
        from limits import parse

        try:
            parse(value)
        except ValueError:
            raise ValueError(f"{value!r} is not a rate like '600/minute'") from None
        return value

    @field_validator("allowed_networks", "denied_networks", "trusted_proxies")
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

    @model_validator(mode="before")
    @classmethod
    def _former_names(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        for former, current in ALIASES.items():
            if former not in data:
                continue
            if current in data:
                raise PydanticCustomError(
                    "settings_alias",
                    "the same setting under two names; give only the second",
                    {
                        "former": former,
                        "former_value": data[former],
                        "current": current,
                        "current_value": data[current],
                    },
                )
            data = {k: v for k, v in data.items() if k != former} | {current: data[former]}
        return data

    @property
    def clustered(self) -> bool:
        """Work goes through the queue shared by replicas (app/cluster/)."""
        return self.cluster or self.role != "all"

    @model_validator(mode="after")
    def _cluster_needs_postgres(self) -> Settings:
        if not self.clustered:
            return self
        url = self.database_url.get_secret_value() if self.database_url else ""
        if not url.split(":", 1)[0].startswith("postgres"):
            # Replicas share their state through PostgreSQL; an SQLite file is one process's.
            name = "cluster" if self.role == "all" else "role"
            raise PydanticCustomError(
                "settings_needs",
                "needs a postgresql:// database_url: replicas share their state through it",
                {"name": name, "value": self.cluster if name == "cluster" else self.role},
            )
        return self

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
                # Otherwise a request could be refused with 429 forever. The names ride in
                # ctx so that load_settings can say where each value came from.
                raise PydanticCustomError(
                    "settings_conflict",
                    "{default} ({default_value}) must not exceed {ceiling} ({ceiling_value})",
                    {
                        "default": default,
                        "default_value": getattr(self, default),
                        "ceiling": ceiling,
                        "ceiling_value": getattr(self, ceiling),
                    },
                )
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
        former = _FormerNamesInEnvironment(settings_cls)
        return (init_settings, env_settings, former, TomlConfigSettingsSource(settings_cls))


class _FormerNamesInEnvironment(PydanticBaseSettingsSource):
    """URLHEALTH_<FORMER NAME> variables (ALIASES), which the environment source, reading only
    the fields' own names, does not see."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        environ = {name.upper(): value for name, value in os.environ.items()}
        return {
            former: environ[_variable(former)] for former in ALIASES if _variable(former) in environ
        }


class _ConfigLocation(BaseSettings):
    """Where the override file is, for `uvicorn app.main:app`, which has no --config."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")
    config_file: Path | None = None


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build the settings; a bad value raises SettingsError naming the setting, its value
    and where that value came from. Unknown URLHEALTH_* variables are logged as warnings."""
    for warning in unknown_variables(os.environ):
        log.warning("%s", warning)
    path = config_file if config_file is not None else _ConfigLocation().config_file
    if path is not None and not path.is_file():
        raise SettingsError(f"config file {path}: no such file")

    class _Loaded(Settings):
        model_config = SettingsConfigDict(toml_file=path)

    try:
        return _Loaded(**overrides)
    except ValidationError as exc:
        raise SettingsError(_describe(exc, _Origins(path, overrides))) from exc
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"config file {path}: not valid TOML: {exc}") from exc


def _variable(name: str) -> str:
    return f"{ENV_PREFIX}{name.upper()}"


def unknown_variables(environ: Mapping[str, str]) -> Iterator[str]:
    """A warning for each URLHEALTH_* variable that names no setting (a typo would otherwise
    be ignored in silence), with the closest setting's variable."""
    names = [*Settings.model_fields, *ALIASES, "config_file"]
    known = {_variable(name) for name in names}
    for name in sorted(environ):
        upper = name.upper()
        if not upper.startswith(ENV_PREFIX) or upper in known:
            continue
        close = difflib.get_close_matches(upper, sorted(known), n=1, cutoff=0.6)
        hint = f"did you mean {close[0]}?" if close else "see config/defaults.toml"
        yield f"{name} is not a setting and is ignored; {hint}"


class _Origins:
    """Where each setting's value came from, by the sources' precedence: arguments, then the
    environment, then the config file, then the built-in default."""

    def __init__(self, path: Path | None, overrides: Mapping[str, Any]) -> None:
        self.path = path
        self.overrides = overrides
        self.environ = {
            name.upper(): value
            for name, value in os.environ.items()
            if name.upper().startswith(ENV_PREFIX)
        }
        self.file: dict[str, Any] = {}
        if path is not None:
            try:
                self.file = tomllib.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                self.file = {}

    def given_as(self, name: str) -> str:
        """The name a setting was given under: its own, or a former one (ALIASES)."""
        for former, current in ALIASES.items():
            if current == name and not self._given(name) and self._given(former):
                return former
        return name

    def _given(self, name: str) -> bool:
        return name in self.overrides or _variable(name) in self.environ or name in self.file

    def where(self, name: str, value: Any) -> str:
        """`name = value` and its origin, for a message about one setting."""
        name = self.given_as(name)
        if name in self.overrides:
            return f"{name} = {_shown(value, name)} given as an argument"
        if _variable(name) in self.environ:
            raw = self.environ[_variable(name)]
            shown = _shown(raw, name) if name in _SECRETS else repr(raw)
            return f"{_variable(name)}={shown} in the environment"
        if name in self.file:
            return f"{name} = {_shown(value, name)} in config file {self.path}"
        return f"{name} = {_shown(value, name)}"

    def named(self, name: str, value: Any) -> str:
        """`name = value (origin)`, for a message about two settings."""
        name = self.given_as(name)
        if name in self.overrides:
            origin = "given as an argument"
        elif _variable(name) in self.environ:
            origin = f"{_variable(name)} in the environment"
        elif name in self.file:
            origin = f"in config file {self.path}"
        else:
            origin = "the default"
        return f"{name} = {_shown(value, name)} ({origin})"


# Settings whose values never appear in a message (they may hold passwords).
_SECRETS = frozenset(
    name for name, info in Settings.model_fields.items() if "SecretStr" in str(info.annotation)
)


def _shown(value: Any, name: str = "") -> str:
    if name in _SECRETS:
        return "'**********'"
    try:
        return json.dumps(value, default=str)
    except ValueError:
        return repr(value)


def _describe(exc: ValidationError, origins: _Origins) -> str:
    lines = []
    for error in exc.errors():
        ctx = error.get("ctx") or {}
        if error["type"] == "settings_conflict":
            first = origins.named(ctx["default"], ctx["default_value"])
            second = origins.named(ctx["ceiling"], ctx["ceiling_value"])
            lines.append(f"{first} must not exceed {second}")
            continue
        if error["type"] == "settings_alias":
            first = origins.named(ctx["former"], ctx["former_value"])
            second = origins.named(ctx["current"], ctx["current_value"])
            lines.append(f"{first} and {second}: {error['msg']}")
            continue
        if error["type"] == "settings_needs":
            lines.append(f"{origins.named(ctx['name'], ctx['value'])} {error['msg']}")
            continue
        field = ".".join(str(part) for part in error["loc"][:1]) or "settings"
        where = origins.where(field, error.get("input"))
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            close = difflib.get_close_matches(field, sorted(Settings.model_fields), n=1)
            message = f"not a setting; did you mean {close[0]}?" if close else "not a setting"
        lines.append(f"{where}: {message}")
    return "invalid settings: " + "; ".join(lines)
