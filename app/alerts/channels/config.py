"""What a channel is: where alerts go and how fast, as a pydantic union on `kind`.

Secrets (HMAC secrets, SMTP passwords, and the tokens that webhook URLs carry in their path
or query) are write-only: `masked()` is the view for reads, `stored()` the one for the
database. Validation errors name the field (pydantic's `loc`, e.g. ("webhook", "url")).

Pacing and batching defaults per kind (the delivery thread applies them): a message at most
every `min_interval_s` per channel, listing at most `max_batch` alerts. Slack allows about one
message a second per webhook; Discord 5 requests per 2 s per webhook and about 30 messages a
minute per channel; Teams Workflows throttle per flow. The batch defaults are what fits one
message of typical alerts (a batch over the service's size limit goes as several, see
sender.py), so 1,000 monitors failing at once reach Slack in 20 messages, Teams and Discord in
25, about a second apart (measured: sending them takes well under a second of CPU).
"""

from __future__ import annotations

import re
from ipaddress import IPv6Address
from typing import Annotated, Any, Literal

import httpx
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    TypeAdapter,
    field_validator,
    model_validator,
)

MASK = "***"
# Headers the sender sets itself; a channel may not replace them.
RESERVED_HEADERS = frozenset(
    {"content-type", "content-length", "host", "connection", "transfer-encoding"}
)
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # RFC 9110 field name
_ADDRESS = re.compile(r"[^@\s<>,;\"]+@[^@\s<>,;\"]+")


class _Channel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    timeout_s: float = Field(10.0, gt=0, le=120, description="Whole send, connect to answer.")

    def masked(self) -> dict[str, Any]:
        """The configuration for reads: every secret as "***"."""
        return self.model_dump(mode="json")

    def stored(self) -> dict[str, Any]:
        """The configuration with its secrets, for the database; parse_channel() reads it."""
        return self.model_dump(mode="json")


class _UrlChannel(_Channel):
    url: str = Field(
        max_length=2048, description="The webhook URL; write-only: reads show it masked."
    )

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        return check_http_url(value)

    def masked(self) -> dict[str, Any]:
        data = self.model_dump(mode="json")
        data["url"] = mask_url(self.url)
        return data


class WebhookChannel(_UrlChannel):
    kind: Literal["webhook"] = "webhook"
    secret: SecretStr | None = Field(None, description="Signs each body (HMAC-SHA256).")
    headers: dict[str, str] = Field(
        default_factory=dict, max_length=20, description="Sent with each request."
    )
    min_interval_s: float = Field(0.0, ge=0, le=3600)
    max_batch: int = Field(100, ge=1, le=1000)

    @field_validator("headers")
    @classmethod
    def _headers(cls, value: dict[str, str]) -> dict[str, str]:
        for name, text in value.items():
            if not _TOKEN.fullmatch(name):
                raise ValueError(f"header name {name!r} is not a valid HTTP field name")
            lowered = name.lower()
            if lowered in RESERVED_HEADERS or lowered.startswith("x-urlhealth-"):
                raise ValueError(f"header {name!r} is set by the sender")
            if any(c in text for c in "\r\n\x00"):
                raise ValueError(f"header {name!r}: value has a line break or NUL")
        return value

    def masked(self) -> dict[str, Any]:
        data = super().masked()
        data["secret"] = MASK if self.secret is not None else None
        data["headers"] = dict.fromkeys(self.headers, MASK)  # often Authorization
        return data

    def stored(self) -> dict[str, Any]:
        data = super().stored()
        data["secret"] = self.secret.get_secret_value() if self.secret is not None else None
        return data


class SlackChannel(_UrlChannel):
    kind: Literal["slack"] = "slack"
    min_interval_s: float = Field(1.0, ge=0, le=3600)
    max_batch: int = Field(50, ge=1, le=100)


class DiscordChannel(_UrlChannel):
    kind: Literal["discord"] = "discord"
    min_interval_s: float = Field(1.0, ge=0, le=3600)
    max_batch: int = Field(40, ge=1, le=100)


class TeamsChannel(_UrlChannel):
    kind: Literal["teams"] = "teams"
    min_interval_s: float = Field(1.0, ge=0, le=3600)
    max_batch: int = Field(40, ge=1, le=100)


SMTP_PORTS = {"starttls": 587, "tls": 465, "none": 25}


class EmailChannel(_Channel):
    kind: Literal["email"] = "email"
    host: str = Field(min_length=1, max_length=253)
    port: int | None = Field(None, ge=1, le=65535, description="Default: 587, 465 or 25.")
    security: Literal["starttls", "tls", "none"] = "starttls"
    verify_tls: bool = True
    username: str | None = None
    password: SecretStr | None = None
    from_addr: str
    to_addrs: list[str] = Field(min_length=1, max_length=50)
    min_interval_s: float = Field(1.0, ge=0, le=3600)
    max_batch: int = Field(200, ge=1, le=1000)

    @field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        if any(c.isspace() or c in "/:@" for c in value) and not _is_ipv6(value):
            raise ValueError("a host name or IP address, without scheme or port")
        return value

    @field_validator("from_addr")
    @classmethod
    def _from(cls, value: str) -> str:
        return _address(value)

    @field_validator("to_addrs")
    @classmethod
    def _to(cls, value: list[str]) -> list[str]:
        return [_address(item) for item in value]

    @model_validator(mode="after")
    def _credentials(self) -> EmailChannel:
        if (self.username is None) != (self.password is None):
            raise ValueError("username and password: give both or neither")
        if self.password is not None and self.security == "none":
            # Refused rather than sent: the password would cross the network in clear.
            raise ValueError("password: refused with security 'none' (use starttls or tls)")
        return self

    @property
    def smtp_port(self) -> int:
        return self.port if self.port is not None else SMTP_PORTS[self.security]

    def masked(self) -> dict[str, Any]:
        data = super().masked()
        data["password"] = MASK if self.password is not None else None
        return data

    def stored(self) -> dict[str, Any]:
        data = super().stored()
        data["password"] = self.password.get_secret_value() if self.password else None
        return data


class AppriseChannel(_Channel):
    """Operator-only (the monitors file, never the API): Apprise resolves names and connects
    by itself, outside the destination policy, so only the operator may point it somewhere.
    Needs the optional extra `urlhealth[apprise]`."""

    kind: Literal["apprise"] = "apprise"
    urls: list[SecretStr] = Field(min_length=1, max_length=20, description="Apprise URLs.")
    min_interval_s: float = Field(1.0, ge=0, le=3600)
    max_batch: int = Field(50, ge=1, le=500)

    def masked(self) -> dict[str, Any]:
        data = super().masked()
        data["urls"] = [_scheme(url.get_secret_value()) + f"://{MASK}" for url in self.urls]
        return data

    def stored(self) -> dict[str, Any]:
        data = super().stored()
        data["urls"] = [url.get_secret_value() for url in self.urls]
        return data


ChannelConfig = Annotated[
    WebhookChannel | SlackChannel | DiscordChannel | TeamsChannel | EmailChannel,
    Field(discriminator="kind"),
]
CHANNEL_ADAPTER: TypeAdapter[ChannelConfig] = TypeAdapter(ChannelConfig)


# What the monitors file may define: every kind, and Apprise.
OperatorChannelConfig = Annotated[
    WebhookChannel | SlackChannel | DiscordChannel | TeamsChannel | EmailChannel | AppriseChannel,
    Field(discriminator="kind"),
]
OPERATOR_CHANNEL_ADAPTER: TypeAdapter[OperatorChannelConfig] = TypeAdapter(OperatorChannelConfig)


def parse_channel(data: Any) -> ChannelConfig:
    """A channel from the API or the database; raises pydantic's ValidationError (an
    "apprise" channel is refused here: it is for the monitors file only)."""
    return CHANNEL_ADAPTER.validate_python(data)


def parse_operator_channel(data: Any) -> OperatorChannelConfig:
    """A channel from the monitors file, where the operator may also use Apprise."""
    return OPERATOR_CHANNEL_ADAPTER.validate_python(data)


def check_http_url(value: str) -> str:
    try:
        url = httpx.URL(value)
    except (httpx.InvalidURL, TypeError) as exc:
        raise ValueError(f"not a URL: {exc}") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError("an http:// or https:// URL with a host expected")
    return value


def mask_url(value: str) -> str:
    """Scheme, host and port, the first path segment when more follow, query names; every
    other part (credentials, tokens in the path or query) as "***"."""
    url = httpx.URL(value)
    host = f"[{url.host}]" if ":" in url.host else url.host
    netloc = f"{MASK}@" if url.userinfo else ""
    netloc += host if url.port is None else f"{host}:{url.port}"
    segments = [part for part in url.path.split("/") if part]
    path = ""
    if len(segments) > 1:
        path = f"/{segments[0]}/{MASK}"
    elif segments:
        path = f"/{MASK}"
    query = "&".join(f"{name}={MASK}" for name in dict.fromkeys(url.params.keys()))
    return f"{url.scheme}://{netloc}{path}" + (f"?{query}" if query else "")


def _scheme(url: str) -> str:
    scheme, separator, _ = url.partition("://")
    return scheme if separator and scheme.isalnum() else "apprise"


def _address(value: str) -> str:
    if not _ADDRESS.fullmatch(value):
        raise ValueError(f"{value[:100]!r} is not a plain e-mail address (name@domain)")
    return value


def _is_ipv6(value: str) -> bool:
    try:
        IPv6Address(value)
    except ValueError:
        return False
    return True
