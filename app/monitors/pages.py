"""The monitors file's `[[status_pages]]` tables: status pages chosen by group and/or label.

    [[status_pages]]
    slug = "shop"                   # served at /status/shop (before a group of that slug)
    title = "Shop"
    groups = ["Shop", "Payments"]   # monitors in any of these groups ...
    labels = { env = "prod" }       # ... carrying every one of these labels

A page needs `groups` or `labels` (or both: then a monitor must match both). Checked with
the rest of the file: a bad slug, a duplicate slug, a missing title or no selection is an
error naming the table's index and field, and the reload changes nothing. The pages live in
memory on the monitors facade (no table: the file is their only source), replaced on reload.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from app.monitors.slugs import slug_problem, slugify

MAX_PAGES = 1_000
MAX_TITLE = 200


@dataclass(frozen=True, slots=True)
class StatusPage:
    slug: str
    title: str
    groups: frozenset[str] = frozenset()  # group slugs: "Shop" and "shop" are one group
    labels: Mapping[str, str] = field(default_factory=dict)

    def selects(self, group: str | None, labels: Mapping[str, str] | None) -> bool:
        if self.groups and slugify(group or "Ungrouped") not in self.groups:
            return False
        own = labels or {}
        return all(own.get(name) == value for name, value in self.labels.items())


def parse(value: Any, errors: list[dict[str, Any]]) -> dict[str, StatusPage]:
    """The file's pages by slug; each problem appended to `errors`."""
    if value is None:
        return {}
    if not isinstance(value, list) or len(value) > MAX_PAGES:
        msg = f"must be an array of at most {MAX_PAGES} tables ([[status_pages]])"
        errors.append(_error(None, None, msg))
        return {}
    pages: dict[str, StatusPage] = {}
    seen: dict[str, int] = {}
    for index, table in enumerate(value):
        page = _page(index, table, errors)
        if page is None:
            continue
        if page.slug in seen:
            msg = f"slug {page.slug!r} is used by status_pages[{seen[page.slug]}] too"
            errors.append(_error(index, "slug", msg))
            continue
        seen[page.slug] = index
        pages[page.slug] = page
    return pages


def _page(index: int, table: Any, errors: list[dict[str, Any]]) -> StatusPage | None:
    if not isinstance(table, dict):
        errors.append(_error(index, None, "must be a table"))
        return None
    before = len(errors)
    unknown = sorted(set(table) - {"slug", "title", "groups", "labels"})
    for key in unknown:
        errors.append(_error(index, key, "unknown field: expected slug, title, groups, labels"))
    slug = table.get("slug")
    problem = slug_problem(slug) if isinstance(slug, str) else "required: a slug string"
    if problem is not None:
        errors.append(_error(index, "slug", problem))
    title = table.get("title")
    if not isinstance(title, str) or not 0 < len(title) <= MAX_TITLE:
        errors.append(_error(index, "title", f"required: 1-{MAX_TITLE} characters"))
    groups = table.get("groups", [])
    if not isinstance(groups, list) or not all(isinstance(g, str) and g for g in groups):
        errors.append(_error(index, "groups", "must be an array of group names"))
        groups = []
    labels = table.get("labels", {})
    if not isinstance(labels, dict) or not all(isinstance(v, str) for v in labels.values()):
        errors.append(_error(index, "labels", 'must be a table of name = "value"'))
        labels = {}
    if not groups and not labels:
        msg = "selects no monitor: give `groups` or `labels` (or both)"
        errors.append(_error(index, "groups", msg))
    if len(errors) > before:
        return None
    assert isinstance(slug, str)
    assert isinstance(title, str)
    return StatusPage(slug, title, frozenset(slugify(g) for g in groups), dict(labels))


def _error(index: int | None, field_name: str | None, msg: str) -> dict[str, Any]:
    """Shaped like the rest of the file's errors: `where` reads `status_pages[1]: slug`."""
    where = "status_pages" + (f"[{index}]" if index is not None else "")
    where += f": {field_name}" if field_name else ""
    loc: list[Any] = ["status_pages"]
    loc += [index] if index is not None else []
    loc += [field_name] if field_name else []
    return {"type": "value_error", "loc": loc, "msg": msg, "monitor": None, "where": where}
