"""JSON merge patch (RFC 7396) of a stored monitor definition, secrets kept.

Header values and the URL's secrets are write-only: a client never reads them back, so it
cannot send them back. A header the patch leaves out is kept (merge patch semantics), and a
header value or URL sent back exactly as a read showed it (`***`, the masked URL) means
"keep what is stored" rather than "store the mask".
"""

from __future__ import annotations

from typing import Any

from app.monitors.masking import MASK, mask_url


def merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def patch_definition(stored: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """`stored` (a definition as written, secrets included) with `patch` applied."""
    merged: dict[str, Any] = merge_patch(stored, patch)
    if merged.get("url") == mask_url(stored["url"]) and "url" in patch:
        merged["url"] = stored["url"]
    old_headers = stored.get("options", {}).get("headers") or {}
    options = merged.get("options")
    if isinstance(options, dict) and isinstance(options.get("headers"), dict):
        headers = options["headers"]
        for name, value in headers.items():
            if value == MASK and name in old_headers:
                headers[name] = old_headers[name]
    return merged
