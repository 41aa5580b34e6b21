"""`Auth`: what the API asks about a call (who, may it, how fast), from the settings."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

from app.auth.bootstrap import first_admin_key
from app.auth.keys import KeyStore, Principal, Scope, mark_used
from app.auth.policy import ClientAddress, keys_required
from app.auth.ratelimit import RateLimits
from app.config import Settings
from app.db.engine import Database
from app.db.writer import Writer, WriterClosed, WriterFull

# With keys not required, every call acts as this: as open as before keys existed.
OPEN = Principal(None, "open", Scope.admin)
WRITE_TIMEOUT_S = 30.0


@dataclass(eq=False)
class Auth:
    required: bool
    keys: KeyStore
    limits: RateLimits
    clients: ClientAddress
    writer: Writer

    @classmethod
    def build(cls, settings: Settings, database: Database, writer: Writer) -> Auth:
        def write(fn: Any) -> Any:
            return writer.submit(fn).result(WRITE_TIMEOUT_S)

        keys = KeyStore(database.engine, write)
        required = keys_required(settings.auth, settings.host)
        secret = settings.admin_key
        admin_key = secret.get_secret_value() if secret else None
        first_admin_key(keys, admin_key, settings.data_dir, required)
        return cls(
            required,
            keys,
            RateLimits(settings.rate_limit_per_key, settings.rate_limit_per_address),
            ClientAddress(settings.trusted_proxies),
            writer,
        )

    def authenticate(self, key: str) -> Principal | None:
        principal = self.keys.authenticate(key)
        key_id = principal.key_id if principal else None
        if key_id is not None and self.keys.due_for_last_used(key_id):
            # A full or closed queue: this stamp is skipped, the call goes on.
            with contextlib.suppress(WriterFull, WriterClosed):
                self.writer.put(mark_used(key_id))
        return principal
