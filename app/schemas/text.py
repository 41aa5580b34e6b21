"""Text that JSON carries back faithfully: used by the API's errors and by every input check."""

from __future__ import annotations

import math
import re
from collections import deque
from collections.abc import Iterator
from typing import Any

# Characters of text an error shows (a message, a key in `loc`); longer is cut, and says so.
TEXT_CHARS = 1024
_SURROGATE = re.compile("[\ud800-\udfff]")


def readable(text: str, limit: int = TEXT_CHARS) -> str:
    """Text any encoder can write: lone surrogates become `\\udXXX`, and at most `limit`."""
    if len(text) > limit:
        text = text[:limit] + "…"
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def unrenderable(
    data: Any, loc: tuple[str | int, ...] = ("body",), finite: bool = False
) -> Iterator[dict[str, Any]]:
    """An error for each key or string in `data` holding a lone surrogate (and with `finite`,
    each inf or NaN), where it is: what JSON cannot carry back faithfully."""
    pending: deque[tuple[Any, tuple[str | int, ...]]] = deque([(data, loc)])
    while pending:
        value, where = pending.popleft()
        if isinstance(value, str):
            found = _SURROGATE.search(value)
            if found:
                yield _surrogate_error(where, value, found)
        elif isinstance(value, float) and finite and not math.isfinite(value):
            msg = "must be a finite number"
            yield {"type": "finite_number", "loc": where, "msg": msg, "input": value}
        elif isinstance(value, dict):
            for key, item in value.items():
                inner = (*where, readable(str(key)))
                found = _SURROGATE.search(str(key))
                if found:
                    yield _surrogate_error(inner, str(key), found, "key")
                pending.append((item, inner))
        elif isinstance(value, list | tuple):
            pending.extend((item, (*where, index)) for index, item in enumerate(value))


def _surrogate_error(
    loc: tuple[str | int, ...], text: str, found: re.Match[str], what: str = "text"
) -> dict[str, Any]:
    char = f"\\u{ord(found.group()):04x}"
    return {
        "type": "string_unicode",
        "loc": loc,
        "msg": f"{what} must be valid Unicode: lone UTF-16 surrogate {char} at "
        f"character {found.start()}",
        "input": text,
    }
