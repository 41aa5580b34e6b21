"""Which of a check's request headers go on to a redirect's target.

Credentials are for the origin the job named: a redirect to another origin (scheme, host or
effective port) drops `Authorization`, `Cookie`, `Proxy-Authorization` and the headers the
job lists as sensitive, as requests and browsers do, and what was dropped stays dropped for
the hops after (the set is carried hop to hop). A job's own `Host` (allowed by the operator)
names the first hop's virtual host only.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

import httpx

from app.engine.options import ForwardPolicy

CREDENTIAL_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})
_DEFAULT_PORTS = {"http": 80, "https": 443}


def first_hop_headers(defaults: dict[str, str], job: Mapping[str, str]) -> dict[str, str]:
    """The service's default headers, each replaced by the job's of the same name (in any
    case), then the job's."""
    if not job:
        return defaults
    overridden = {name.lower() for name in job}
    merged = {name: value for name, value in defaults.items() if name.lower() not in overridden}
    merged.update(job)
    return merged


def keeps_credentials(old: httpx.URL, new: httpx.URL) -> bool:
    """Whether a hop from `old` to `new` may keep credentials: the same origin, or requests'
    one exception (``Session.should_strip_auth``), the upgrade from http on port 80 to https
    on port 443 of the same host."""
    if old.host != new.host:  # httpx lowercases host names
        return False
    old_port, new_port = _port(old), _port(new)
    if old.scheme == "http" and old_port == 80 and new.scheme == "https" and new_port == 443:
        return True
    return old.scheme == new.scheme and old_port == new_port


def next_hop_headers(
    headers: Mapping[str, str],
    old: httpx.URL,
    new: httpx.URL,
    sensitive: Collection[str],
    forward: ForwardPolicy,
) -> dict[str, str]:
    """The headers for the hop to `new`, from those sent to `old`. `sensitive` holds
    lowercase names, dropped with the credentials."""
    dropped = {"host"}
    if forward == "same-origin" and not keeps_credentials(old, new):
        dropped |= CREDENTIAL_HEADERS
        dropped.update(sensitive)
    return {name: value for name, value in headers.items() if name.lower() not in dropped}


def _port(url: httpx.URL) -> int | None:
    return url.port if url.port is not None else _DEFAULT_PORTS.get(url.scheme)
