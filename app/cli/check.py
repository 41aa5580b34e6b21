"""`urlhealth check`: check URLs from this process, with the service's engine and destination
policy, and print a report; no server, and nothing kept (no database is opened)."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

from app.cli.arguments import UsageError, plan
from app.cli.progress import Progress
from app.cli.reports import FORMATS, Report, Tally
from app.cli.runner import CheckRun
from app.config import SettingsError, load_settings

EXIT_UP, EXIT_DOWN, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

DESCRIPTION = """\
Check URLs now, from this machine, with the same engine and destination policy as the
service, and print a report. Nothing is kept: no server is started and no database is opened.
Results are printed as they complete (table, ndjson, csv); json, junit and markdown are
written when every check is done, in the order the URLs were given. On a terminal a progress
bar is drawn on stderr.

Like the service, urlhealth refuses private, loopback, link-local and cloud-metadata
addresses: such a URL ends as `blocked` without any connection. Open a network with
--allow-network (cloud-metadata addresses stay blocked unless named exactly)."""

EPILOG = """\
examples:
  urlhealth check https://example.org/ https://example.com/health
  urlhealth check -f urls.txt --format junit -o urlhealth.xml      # for CI test reports
  grep -h '^https' docs/*.txt | urlhealth check -f - --format ndjson
  urlhealth check --allow-network 10.0.0.0/8 --timeout 3 --retries 2 http://10.1.2.3/healthz
  urlhealth check --header "Authorization: Bearer $TOKEN" --expected-status 200-299 URL
  urlhealth check --assertions rules.toml --fail-on degraded URL
      rules.toml:  max_latency_ms = 500
                   body_contains = ["healthy"]
                   min_days_left = 14

assertions file (--assertions, JSON, or TOML when the name ends in .toml): the API's
assertion fields: max_latency_ms and min_days_left (failing them is `degraded`),
body_contains, body_not_contains, body_regex, json_path, headers (failing them is `down`).

formats (--format):
  table     one line per URL as it completes, then a summary (default)
  ndjson    one CheckResult JSON object per line, as each completes
  csv       header, then one row per URL as it completes
  json      {"summary": {...}, "results": [CheckResult, ...]}
  junit     JUnit XML: one testcase per URL; a failing one has <failure type="<error kind>"
            message="<error message>">, which CI systems (GitLab, Jenkins, GitHub actions
            reading JUnit) show per URL
  markdown  a table, e.g. for a pull-request comment

exit codes:
  0    every URL is up (degraded counts as up unless --fail-on degraded)
  1    at least one URL is down: any error kind, `blocked` included
  2    bad usage: a bad URL, option, file or setting (the message names it)
  130  interrupted (Ctrl-C): the results that finished are printed first

Defaults come from the settings (URLHEALTH_* variables or --config TOML) when set; none
are needed."""


def add_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "check",
        help="check URLs now, in this process, and print a report",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("urls", nargs="*", metavar="URL", help="http(s) URLs to check")
    parser.add_argument(
        "-f",
        "--file",
        metavar="FILE",
        help="read URLs from FILE, one a line (# comments); - is stdin",
    )
    out = parser.add_argument_group("report")
    out.add_argument("--format", choices=FORMATS, default="table", help="report format (table)")
    out.add_argument("-o", "--output", type=Path, metavar="FILE", help="write the report to FILE")
    out.add_argument(
        "--fail-on",
        choices=("down", "degraded"),
        default="down",
        help="exit 1 when any URL is down (default), or degraded or down",
    )
    out.add_argument("--no-progress", action="store_true", help="no progress bar on a terminal")
    opts = parser.add_argument_group("check options (defaults from the settings)")
    opts.add_argument("--timeout", type=float, metavar="SECONDS", help="deadline per attempt")
    opts.add_argument(
        "--expected-status", metavar="RANGES", help='healthy statuses, e.g. "200-299,304"'
    )
    opts.add_argument("--method", choices=("GET", "HEAD"), help="HTTP method (GET)")
    opts.add_argument("--retries", type=int, metavar="N", help="extra attempts on retryable errors")
    opts.add_argument(
        "--header",
        action="append",
        metavar="'NAME: VALUE'",
        help="extra request header (repeatable)",
    )
    opts.add_argument(
        "--sensitive-header",
        action="append",
        metavar="NAME",
        help="header dropped on a redirect to another origin (repeatable)",
    )
    opts.add_argument(
        "--forward-headers-on-redirect",
        choices=("same-origin", "all"),
        help="which headers follow a redirect to another origin (same-origin)",
    )
    opts.add_argument("--no-follow-redirects", action="store_true", help="report redirects as is")
    opts.add_argument("--max-redirects", type=int, metavar="N", help="redirect hops allowed")
    opts.add_argument("--max-body-bytes", type=int, metavar="N", help="body bytes read at most")
    opts.add_argument("--insecure", action="store_true", help="do not verify TLS certificates")
    opts.add_argument(
        "--assertions", type=Path, metavar="FILE", help="assertions, JSON or TOML (see below)"
    )
    run_group = parser.add_argument_group("run")
    run_group.add_argument(
        "--allow-network",
        action="append",
        metavar="CIDR",
        help="allow a network the destination policy refuses, e.g. 127.0.0.0/8 (repeatable)",
    )
    run_group.add_argument(
        "--workers", type=int, default=16, metavar="N", help="checks at once (16)"
    )
    run_group.add_argument("--config", type=Path, help="TOML file of settings overrides")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        settings = load_settings(args.config)
        if args.workers < 1:
            raise UsageError(f"--workers {args.workers}: must be at least 1")
        checks = plan(args, settings)  # may read stdin, where Ctrl-C is a KeyboardInterrupt
    except (UsageError, SettingsError) as exc:
        return _usage(str(exc))
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    tally = Tally(args.fail_on == "degraded", len(checks.urls), checks.duplicates)
    # The output first: a path that cannot be written is bad usage, before any check runs.
    with _output(args.output) as out:
        runner = CheckRun(checks, settings, args.workers)
        report = Report(args.format, out, tally, checks.urls)
        failed = False
        show = not args.no_progress and sys.stderr.isatty()
        with Progress(len(checks.urls), enabled=show) as progress:
            for result in runner.results():
                report.add(result)
                progress.advance(result)
                failed = failed or tally.failed(result)
        report.finish(runner.interrupted)
    if runner.interrupted:
        print(
            f"urlhealth check: interrupted, {tally.finished} of {tally.total} checks finished",
            file=sys.stderr,
        )
        sys.stdout.flush()
        sys.stderr.flush()
        # A check still stuck on a slow target must not hold the exit back.
        os._exit(EXIT_INTERRUPTED)
    return EXIT_DOWN if failed else EXIT_UP


@contextlib.contextmanager
def _output(path: Path | None) -> Iterator[Callable[[], IO[str]]]:
    if path is None:
        yield lambda: sys.stdout  # looked up per write: the progress display wraps stdout
        return
    try:
        handle = path.open("w", encoding="utf-8", newline="")
    except OSError as exc:
        raise SystemExit(_usage(f"-o {path}: {exc}")) from None
    with handle:
        yield lambda: handle


def _usage(message: str) -> int:
    print(f"urlhealth check: {message}", file=sys.stderr)
    return EXIT_USAGE
