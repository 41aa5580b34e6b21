"""Slugs: a monitor's stable short id in URLs, badges and metric labels.

Lowercase ASCII letters, digits and `-`, at most 64 characters, starting and ending with a
letter or digit. Never all digits (`/v1/monitors/{ref}` reads digits as the numeric id), and
never a word a route under /v1/monitors/ uses.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Container

MAX_SLUG = 64
RESERVED = frozenset({"summary", "reload"})
_SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")
_NOT_SLUG = re.compile(r"[^a-z0-9]+")


def slug_problem(slug: str) -> str | None:
    """Why `slug` cannot be a slug, or None if it can."""
    if not _SLUG.match(slug):
        return (
            f"a slug is 1-{MAX_SLUG} lowercase letters a-z, digits and '-', starting and "
            "ending with a letter or digit"
        )
    if slug.isdigit():
        return "a slug must not be all digits: those name a monitor by its numeric id"
    if slug in RESERVED:
        return f"{slug!r} is reserved: /v1/monitors/{slug} is a route of its own"
    return None


def slugify(name: str) -> str:
    """The slug a name suggests (before uniqueness): accents dropped, runs of anything else
    turned into one `-`."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    slug = _NOT_SLUG.sub("-", ascii_name.lower()).strip("-")[:MAX_SLUG].rstrip("-")
    if not slug:
        return "monitor"
    if slug.isdigit() or slug in RESERVED:
        slug = f"monitor-{slug}"[:MAX_SLUG].rstrip("-")
    return slug


def unique_slug(base: str, taken: Container[str]) -> str:
    """`base`, or `base-2`, `base-3`, ... (cut to fit) for the first one not taken."""
    if base not in taken:
        return base
    n = 2
    while True:  # ends: `taken` is finite
        suffix = f"-{n}"
        candidate = base[: MAX_SLUG - len(suffix)].rstrip("-") + suffix
        if candidate not in taken:
            return candidate
        n += 1
