"""Secrets stay secret: a monitor's URL credentials and query values, and its header values,
are shown as `***` in every read, error message and label.

The URL is split, not parsed and rebuilt, so what is shown is the URL as written apart from
the masked parts. A query part without `=` may be a bare token: it is masked whole.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import SplitResult, unquote, urlsplit, urlunsplit

MASK = "***"
# Secrets shorter than this are not scrubbed from free text: replacing every "1" or "ab" in
# an error message would garble it while hiding nothing worth hiding.
MIN_SCRUB = 4
# Fields of a CheckResult (and its hops) that hold URLs: masked as URLs.
_URL_FIELDS = frozenset({"url", "final_url", "location"})


def _split(url: str) -> SplitResult | None:
    try:
        return urlsplit(url)
    except ValueError:
        return None


def mask_url(url: str) -> str:
    """`https://***:***@host/path?token=***`: credentials and query values masked."""
    parts = _split(url)
    if parts is None:
        return MASK
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, host = netloc.rpartition("@")
        netloc = f"{MASK}:{MASK}@{host}" if ":" in userinfo else f"{MASK}@{host}"
    query = "&".join(_mask_pair(pair) for pair in parts.query.split("&")) if parts.query else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _mask_pair(pair: str) -> str:
    if not pair:
        return pair
    key, equals, _value = pair.partition("=")
    return f"{key}={MASK}" if equals else MASK


def mask_headers(headers: Mapping[str, str] | None) -> dict[str, str] | None:
    return None if headers is None else dict.fromkeys(headers, MASK)


def secrets_of(url: str, headers: Mapping[str, str] | None = None) -> list[str]:
    """The secret strings of a URL and headers, as written and percent-decoded, longest
    first (so a secret containing another is replaced whole)."""
    found: set[str] = set()
    parts = _split(url)
    if parts is not None:
        if "@" in parts.netloc:
            userinfo = parts.netloc.rpartition("@")[0]
            found.update(userinfo.split(":", 1))
        for pair in parts.query.split("&"):
            key, equals, value = pair.partition("=")
            found.add(value if equals else key)
    found.update((headers or {}).values())
    found |= {unquote(secret) for secret in found}
    return sorted((s for s in found if len(s) >= MIN_SCRUB), key=len, reverse=True)


def scrub(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, MASK)
    return text


def mask_data(data: Any, secrets: list[str], key: str | None = None) -> Any:
    """A JSON-like value (a dumped CheckResult) with URLs masked and secrets scrubbed from
    every string in it."""
    if isinstance(data, str):
        return mask_url(data) if key in _URL_FIELDS else scrub(data, secrets)
    if isinstance(data, dict):
        return {k: mask_data(v, secrets, k) for k, v in data.items()}
    if isinstance(data, list):
        return [mask_data(item, secrets) for item in data]
    return data
