"""`urlhealth keys create|list|revoke`: from another process than the service, so each write
is a short transaction of its own (the writer thread is the service's, in-process only).
A service holding a SQLite file refuses others by its lock: stop it, or use /v1/keys."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.config import SettingsError, load_settings

if TYPE_CHECKING:  # imported when run: `urlhealth check` never loads the database
    from sqlalchemy import Connection

    from app.auth.keys import KeyInfo, KeyStore
    from app.db.engine import Database

SCOPES = ("read", "check", "admin")  # app.auth.keys.Scope, without importing it here


def add_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    keys = commands.add_parser("keys", help="manage API keys (urlhealth keys create --help)")
    keys.add_argument("--config", type=Path, help="TOML file of settings overrides")
    keys.set_defaults(run=run)
    actions = keys.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="create a key; prints it, the only time")
    create.add_argument("--scope", choices=SCOPES, required=True)
    create.add_argument("--name", required=True, help="what the key is for")
    actions.add_parser("list", help="id, prefix, scope, name, created, last used, revoked")
    revoke = actions.add_parser("revoke", help="revoke a key at once")
    revoke.add_argument("id", type=int, help="the key's id (from list)")


def run(args: argparse.Namespace) -> int:
    try:
        settings = load_settings(args.config)
    except SettingsError as exc:
        print(f"urlhealth: {exc}", file=sys.stderr)
        return 2
    from app.auth.keys import KeyStore
    from app.db.engine import DatabaseError, open_database
    from app.db.migrator import upgrade
    from app.db.url import sqlalchemy_url

    secret = settings.database_url
    try:
        url = sqlalchemy_url(secret.get_secret_value() if secret else None, settings.data_dir)
        with open_database(url) as database:
            upgrade(database)
            return _act(args, KeyStore(database.engine, _short_transaction(database)))
    except DatabaseError as exc:
        print(f"urlhealth: {exc}", file=sys.stderr)
        return 1


def _short_transaction(database: Database) -> Callable[[Callable[[Connection], Any]], Any]:
    def write(fn: Callable[[Connection], Any]) -> Any:
        with database.engine.begin() as connection:
            return fn(connection)

    return write


def _act(args: argparse.Namespace, keys: KeyStore) -> int:
    from app.auth.keys import Scope

    if args.action == "create":
        info, key = keys.create(args.name, Scope(args.scope))
        print(f"key {info.id} ({info.scope.value}, {info.name!r}); shown this once:")
        print(key)
        return 0
    if args.action == "list":
        for info in keys.list():
            print(_line(info))
        return 0
    if not keys.revoke(args.id):
        print(f"urlhealth: no API key with id {args.id}", file=sys.stderr)
        return 1
    print(f"key {args.id} revoked")
    return 0


def _line(info: KeyInfo) -> str:
    used = info.last_used_at.isoformat() if info.last_used_at else "never"
    revoked = f"revoked {info.revoked_at.isoformat()}" if info.revoked_at else "active"
    return "\t".join(
        [
            str(info.id),
            info.prefix + "…",
            info.scope.value,
            info.name,
            info.created_at.isoformat(),
            f"used {used}",
            revoked,
        ]
    )
