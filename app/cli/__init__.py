"""`urlhealth`: the command line. `serve` and `db upgrade` run the service (app/cli/serve.py);
`check` runs checks in this process and prints a report (app/cli/check.py); `keys`
manages API keys (app/cli/keys.py)."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from app import __version__
from app.cli import check, keys, serve


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="urlhealth", description="Concurrent URL health checks.")
    parser.add_argument("--version", action="version", version=f"urlhealth {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    serve.add_commands(commands)
    check.add_command(commands)
    keys.add_command(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    run: Callable[[argparse.Namespace], int] = args.run
    return run(args)
