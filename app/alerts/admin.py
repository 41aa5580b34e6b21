"""Channels, alert rules and maintenance windows as rows: the writes (functions of a
Connection, run by the writer) and the reads the API and the monitors file share.

A channel's `config` is stored whole, secrets included; what leaves this module for a reader
is the senders' `masked()` form, made by the caller (app/alerts/contract.py's Codec)."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Row, Table, delete, insert, select, update

SLUG_CHARS = 64


def slugify(name: str) -> str:
    """A channel's slug from its name: lower-case ASCII words joined by '-'."""
    text = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:SLUG_CHARS].rstrip("-")
    return slug or "channel"


def add(connection: Connection, table: Table, values: Mapping[str, Any]) -> int:
    """Insert a row stamped created/updated now; its id."""
    now = datetime.now(UTC)
    row = {"created_at": now, "updated_at": now, **values}
    return int(connection.execute(insert(table).values(row).returning(table.c.id)).scalar_one())


def change(connection: Connection, table: Table, row_id: int, values: Mapping[str, Any]) -> bool:
    """Update a row's fields (stamped updated now); False if it is gone."""
    stamped = {**values, "updated_at": datetime.now(UTC)}
    return (
        connection.execute(update(table).where(table.c.id == row_id).values(stamped)).rowcount == 1
    )


def remove(connection: Connection, table: Table, row_id: int) -> bool:
    return connection.execute(delete(table).where(table.c.id == row_id)).rowcount == 1


def find(connection: Connection, table: Table, ref: str) -> Row[Any] | None:
    """A row by id (digits) or, where the table has one, by slug."""
    if ref.isascii() and ref.isdigit():
        return connection.execute(select(table).where(table.c.id == int(ref))).first()
    if "slug" in table.c:
        return connection.execute(select(table).where(table.c.slug == ref)).first()
    return None


def sync_file(connection: Connection, table: Table, rows: list[dict[str, Any]]) -> list[str]:
    """Make the `source: file` rows of `table` exactly `rows` (by slug), inside the caller's
    transaction; a slug or name an API row holds is reported and nothing is changed."""
    existing = {row.slug: row for row in connection.execute(select(table))}
    names = {row.name: row for row in existing.values()}
    taken = [
        f"{row['name']!r} is defined over the API: rename one of them"
        for row in rows
        for found in (existing.get(row["slug"]) or names.get(row["name"]),)
        if found is not None and found.source != "file"
    ]
    if taken:
        return taken
    now = datetime.now(UTC)
    wanted = {row["slug"] for row in rows}
    for row in rows:
        found = existing.get(row["slug"])
        if found is None:
            add(connection, table, {**row, "source": "file"})
        elif any(getattr(found, key) != value for key, value in row.items()):
            values = {**row, "updated_at": now}
            connection.execute(update(table).where(table.c.id == found.id).values(values))
    for slug, found in existing.items():
        if found.source == "file" and slug not in wanted:
            remove(connection, table, found.id)
    return []


def page(connection: Connection, table: Table, offset: int, limit: int) -> list[Row[Any]]:
    query = select(table).order_by(table.c.id).offset(offset).limit(limit)
    return list(connection.execute(query))


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396 JSON merge patch."""
    if not isinstance(patch, Mapping):
        return patch
    merged = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = merge_patch(merged.get(key), value)
    return merged
