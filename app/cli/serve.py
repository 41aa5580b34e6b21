"""`urlhealth serve [--host --port --config]` and `urlhealth db upgrade`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from app.config import SettingsError, load_settings


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = commands.add_parser("serve", help="run the HTTP service")
    serve.add_argument("--host", help="listen address (setting: URLHEALTH_HOST)")
    serve.add_argument("--port", type=int, help="listen port (setting: URLHEALTH_PORT)")
    serve.add_argument("--config", type=Path, help="TOML file of settings overrides")
    serve.add_argument(
        "--role",
        choices=["all", "api", "worker"],
        help="all: everything here (default); api: accept and serve, run no checks; worker: "
        "run checks, monitors and alerts. api and worker share a PostgreSQL database "
        "(setting: URLHEALTH_ROLE)",
    )
    serve.set_defaults(run=run)
    db = commands.add_parser("db", help="manage the database (URLHEALTH_DATABASE_URL)")
    db.add_argument("action", choices=["upgrade"], help="upgrade: apply schema migrations")
    db.add_argument("--config", type=Path, help="TOML file of settings overrides")
    db.set_defaults(host=None, port=None, role=None, run=run)


def run(args: argparse.Namespace) -> int:
    # Imported here: `urlhealth check` never loads the web app, uvicorn or the database.
    import uvicorn

    from app.db.engine import DatabaseError
    from app.lifecycle.connections import protocol_for
    from app.lifecycle.server import Server
    from app.main import create_app

    given = (("host", args.host), ("port", args.port), ("role", args.role))
    overrides = {k: v for k, v in given if v is not None}
    try:
        settings = load_settings(args.config, **overrides)
    except SettingsError as exc:
        print(f"urlhealth: {exc}", file=sys.stderr)
        return 2
    if args.command == "db":
        secret = settings.database_url
        return _db_upgrade(secret.get_secret_value() if secret else None, settings.data_dir)
    try:
        app = create_app(settings)  # opens and migrates the database
    except DatabaseError as exc:
        print(f"urlhealth: {exc}", file=sys.stderr)
        return 2
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        # Client addresses come from the trusted_proxies setting alone (app/auth/policy.py),
        # not from uvicorn's own X-Forwarded-For handling, which trusts 127.0.0.1 by default.
        proxy_headers=False,
        workers=1,  # the results store lives in this process
        http=protocol_for(settings),  # head and keep-alive timeouts, a connection cap
        lifespan="on",
        timeout_graceful_shutdown=int(settings.shutdown_grace_s) + 5,
    )
    coordinator = app.state.services.coordinator
    Server(config, coordinator).run()
    # What a process supervisor reads: 0 once every accepted check has its final state.
    if coordinator.clean:
        return 0
    print("urlhealth: the shutdown drain failed or did not finish in time", file=sys.stderr)
    return 1


def _db_upgrade(database_url: str | None, data_dir: Path) -> int:
    """`urlhealth db upgrade`: apply migrations from another process than the service (the
    write transaction begins IMMEDIATE and waits out the busy timeout). A service holding
    the SQLite file is refused by its lock: the service migrates at its own start."""
    from app.db.engine import DatabaseError, open_database
    from app.db.migrator import upgrade
    from app.db.url import sqlalchemy_url

    try:
        url = sqlalchemy_url(database_url, data_dir)
        with open_database(url) as database:
            done = upgrade(database)
    except DatabaseError as exc:
        print(f"urlhealth: {exc}", file=sys.stderr)
        return 1
    if done.applied:
        print(f"database {database.masked_url}: schema upgraded {done.before} -> {done.after}")
    else:
        print(f"database {database.masked_url}: schema already at {done.after}")
    return 0
