"""A stored check result as it may be shown: URLs without credentials, query or fragment
(a monitor's URL is a secret: tokens hide in both)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit, urlunsplit


def public_url(url: str) -> str:
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if ":" in host:  # an IPv6 literal gets its brackets back
            host = f"[{host}]"
        port = f":{parts.port}" if parts.port is not None else ""
    except ValueError:
        return "(invalid URL)"
    return urlunsplit((parts.scheme, host + port, parts.path, "", ""))


def public_result(stored: bytes | None) -> dict[str, Any] | None:
    """The stored CheckResult JSON as a dict, its URLs made public."""
    if stored is None:
        return None
    result: dict[str, Any] = json.loads(stored)
    for key in ("url", "final_url"):
        if isinstance(result.get(key), str):
            result[key] = public_url(result[key])
    for hop in result.get("redirects") or []:
        for key in ("url", "location"):
            if isinstance(hop.get(key), str):
                hop[key] = public_url(hop[key])
    return result
