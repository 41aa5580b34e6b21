"""The first admin key: from URLHEALTH_ADMIN_KEY, or generated into a file no one else reads.

A generated key is never logged: the log says where the file is, and the file is created
mode 0600 (never readable by others, not even for an instant).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from app.auth.keys import KeyStore, Scope

log = logging.getLogger("urlhealth.auth")

ADMIN_KEY_FILE = "admin.key"


def first_admin_key(
    keys: KeyStore, admin_key: str | None, data_dir: Path, required: bool
) -> Path | None:
    """Adds URLHEALTH_ADMIN_KEY's key unless it has a row (a revoked one stays revoked), or,
    with keys required and none at all yet, generates one. Returns the file written, if any."""
    if admin_key:
        if not keys.known(admin_key):
            keys.create("URLHEALTH_ADMIN_KEY", Scope.admin, admin_key)
            log.info("admin key from URLHEALTH_ADMIN_KEY added")
        return None
    if not required or keys.count():
        return None
    _, key = keys.create("first admin key", Scope.admin)
    path = data_dir / ADMIN_KEY_FILE
    data_dir.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)  # a key of a database since replaced: useless now
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(key + "\n")
    log.warning("no API key existed: an admin key was written to %s (mode 0600)", path)
    return path
