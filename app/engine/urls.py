"""URL acceptance rules, using the same parser as the fetch (httpx's), so no parser
differential lets a URL past validation that the fetch would read differently."""

from __future__ import annotations

import httpx

SCHEMES = frozenset({"http", "https"})


def normalize_url(raw: str, max_length: int) -> str:
    """Return the URL as httpx will fetch it, or raise ValueError saying why it is refused."""
    return str(parse_url(raw, max_length))


def parse_url(raw: str, max_length: int) -> httpx.URL:
    """The URL parsed as the fetch will use it (parsed once, then passed along), or
    ValueError saying why it is refused."""
    if len(raw) > max_length:
        raise ValueError(f"longer than {max_length} characters ({len(raw)})")
    if not raw:
        raise ValueError("empty")
    if any(ch.isspace() for ch in raw):
        raise ValueError("contains whitespace")
    try:
        url = httpx.URL(raw)
        host = url.host  # decoding the IDNA host can fail here, after parsing
    except (httpx.InvalidURL, UnicodeError) as exc:
        raise ValueError(f"not a valid URL: {exc}") from None
    if url.scheme not in SCHEMES:
        shown = url.scheme or "none"
        raise ValueError(f"scheme must be http or https, not {shown!r}")
    if not host:
        raise ValueError("has no host")
    if url.userinfo:
        raise ValueError("must not contain user:password credentials")
    if url.port is not None and not 1 <= url.port <= 65535:
        raise ValueError(f"port {url.port} is outside 1-65535")
    return url


DedupeKey = tuple[str, str, int, bytes]


def dedupe_key(url: str | httpx.URL) -> DedupeKey:
    """Two spellings of one resource (`http://a.com` and `HTTP://A.com:80/`) share a key."""
    parsed = url if isinstance(url, httpx.URL) else httpx.URL(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    return parsed.scheme, parsed.host, port, parsed.raw_path
