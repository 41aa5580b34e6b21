"""API keys: made from 32 random bytes, kept only as their SHA-256, with nested scopes.

A key has 256 bits of entropy, so one unsalted SHA-256 is enough (no password-hash work
factor is needed to resist guessing) and lets a key be found by its hash.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, insert, select, update

from app.db.schema import api_keys

T = TypeVar("T")
# Runs one write transaction: the service's writer thread, or a short one of the CLI's own.
Write = Callable[[Callable[[Connection], T]], T]

KEY_PREFIX = "uh_"
SHOWN_CHARS = 8  # of a key, shown again in lists: "uh_" and 5 random characters
# last_used_at is written at most this often per key, not on every call.
LAST_USED_EVERY_S = 60.0


class Scope(StrEnum):
    read = "read"
    check = "check"
    admin = "admin"

    def allows(self, needed: Scope) -> bool:
        """Nested: read ⊂ check ⊂ admin."""
        return _RANK[self] >= _RANK[needed]


_RANK = {Scope.read: 0, Scope.check: 1, Scope.admin: 2}


@dataclass(frozen=True)
class Principal:
    """Who a call comes from: a key's id and name, or nobody (auth not in force)."""

    key_id: int | None
    name: str
    scope: Scope


@dataclass(frozen=True)
class KeyInfo:
    id: int
    name: str
    prefix: str
    scope: Scope
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()


class KeyStore:
    def __init__(self, engine: Engine, write: Write[Any]) -> None:
        self._engine = engine
        self._write = write
        self._lock = threading.Lock()
        self._used: dict[int, float] = {}  # key id -> monotonic time last_used_at was written

    def create(self, name: str, scope: Scope, key: str | None = None) -> tuple[KeyInfo, str]:
        """A new key (or `key` given, e.g. URLHEALTH_ADMIN_KEY): its row and the key itself,
        which nothing can show again."""
        key = key or new_key()
        now = datetime.now(UTC)
        prefix = key[:SHOWN_CHARS]
        row = {
            "name": name,
            "prefix": prefix,
            "key_hash": hash_key(key),
            "scope": scope.value,
            "created_at": now,
        }

        def write(connection: Connection) -> int:
            inserted = connection.execute(insert(api_keys).values(row)).inserted_primary_key
            assert inserted is not None
            return int(inserted[0])

        key_id = self._write(write)
        info = KeyInfo(key_id, name, prefix, scope, now, None, None)
        return info, key

    def list(self) -> list[KeyInfo]:
        with self._engine.connect() as connection:
            rows = connection.execute(select(api_keys).order_by(api_keys.c.id)).all()
        return [_info(row._mapping) for row in rows]

    def count(self) -> int:
        return len(self.list())

    def known(self, key: str) -> bool:
        """Whether this key has a row, revoked or not."""
        with self._engine.connect() as connection:
            found = connection.execute(
                select(api_keys.c.id).where(api_keys.c.key_hash == hash_key(key))
            ).first()
        return found is not None

    def revoke(self, key_id: int) -> bool:
        """False if there is no such key; revoking twice keeps the first time."""

        def write(connection: Connection) -> bool:
            exists = connection.execute(select(api_keys.c.id).where(api_keys.c.id == key_id))
            if exists.first() is None:
                return False
            connection.execute(
                update(api_keys)
                .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
                .values(revoked_at=datetime.now(UTC))
            )
            return True

        return bool(self._write(write))

    def authenticate(self, key: str) -> Principal | None:
        """The key's principal, or None for an unknown or revoked key."""
        digest = hash_key(key)
        with self._engine.connect() as connection:
            row = connection.execute(
                select(api_keys.c.id, api_keys.c.name, api_keys.c.scope, api_keys.c.key_hash).where(
                    api_keys.c.key_hash == digest, api_keys.c.revoked_at.is_(None)
                )
            ).first()
        # Found by its hash already; compared in constant time all the same.
        if row is None or not hmac.compare_digest(row.key_hash, digest):
            return None
        return Principal(row.id, row.name, Scope(row.scope))

    def due_for_last_used(self, key_id: int) -> bool:
        """Whether last_used_at should be written now (at most once a minute per key)."""
        now = time.monotonic()
        with self._lock:
            if now - self._used.get(key_id, -LAST_USED_EVERY_S) < LAST_USED_EVERY_S:
                return False
            self._used[key_id] = now
        return True


def mark_used(key_id: int) -> Callable[[Connection], None]:
    """The write that records a key's use, for the writer's queue."""

    def write(connection: Connection) -> None:
        connection.execute(
            update(api_keys).where(api_keys.c.id == key_id).values(last_used_at=datetime.now(UTC))
        )

    return write


def _info(row: Any) -> KeyInfo:
    return KeyInfo(
        row["id"],
        row["name"],
        row["prefix"],
        Scope(row["scope"]),
        row["created_at"],
        row["last_used_at"],
        row["revoked_at"],
    )
