"""`urlhealth serve [--host --port --config]`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import uvicorn

from app import __version__
from app.config import SettingsError, load_settings
from app.lifecycle.connections import protocol_for
from app.lifecycle.server import Server
from app.main import create_app


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="urlhealth", description="Concurrent URL health checks.")
    parser.add_argument("--version", action="version", version=f"urlhealth {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the HTTP service")
    serve.add_argument("--host", help="listen address (setting: URLHEALTH_HOST)")
    serve.add_argument("--port", type=int, help="listen port (setting: URLHEALTH_PORT)")
    serve.add_argument("--config", type=Path, help="TOML file of settings overrides")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    try:
        settings = load_settings(args.config, **overrides)
    except SettingsError as exc:
        print(f"urlhealth: {exc}", file=sys.stderr)
        return 2
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
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


if __name__ == "__main__":
    sys.exit(main())
