"""`urlhealth check`'s flags turned into engine inputs, validated as the API validates a job
(app/inputs.py); a bad URL or option becomes a UsageError naming it (exit code 2)."""

from __future__ import annotations

import argparse
import json
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from pydantic import ValidationError

from app.config import Settings
from app.engine.options import CheckOptions
from app.engine.policy import DestinationPolicy, parse_networks
from app.inputs import InputError, prepare_urls, resolve_options
from app.schemas.assertions import Assertions
from app.schemas.jobs import JobOptions

# The flag each JobOptions field comes from, so an error names what the user typed.
FLAGS = {
    "timeout_s": "--timeout",
    "expected_status": "--expected-status",
    "method": "--method",
    "retries": "--retries",
    "headers": "--header",
    "sensitive_headers": "--sensitive-header",
    "follow_redirects": "--no-follow-redirects",
    "max_redirects": "--max-redirects",
    "max_body_bytes": "--max-body-bytes",
    "verify_tls": "--insecure",
    "forward_headers_on_redirect": "--forward-headers-on-redirect",
    "assertions": "--assertions",
}


class UsageError(ValueError):
    """Bad usage: the message names the URL, flag or file at fault."""


@dataclass(frozen=True)
class Plan:
    urls: list[str]
    parsed: list[httpx.URL]
    duplicates: int
    options: CheckOptions
    policy: DestinationPolicy


def plan(args: argparse.Namespace, settings: Settings) -> Plan:
    urls = list(args.urls) + (_read_list(args.file) if args.file else [])
    if not urls:
        raise UsageError("no URLs: give them as arguments or with -f FILE (- for stdin)")
    try:
        targets = prepare_urls(urls, settings, limit=len(urls))
    except InputError as exc:
        raise UsageError(_describe(exc)) from None
    options = _options(args, settings)
    return Plan(targets.urls, targets.parsed, targets.duplicates, options, _policy(args, settings))


def _read_list(name: str) -> list[str]:
    """One URL a line; blank lines and lines starting with # are skipped."""
    try:
        text = sys.stdin.read() if name == "-" else Path(name).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"-f {name}: {exc}") from None
    lines = (line.strip() for line in text.splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def _options(args: argparse.Namespace, settings: Settings) -> CheckOptions:
    fields: dict[str, Any] = {
        "method": args.method,
        "timeout_s": args.timeout,
        "expected_status": args.expected_status,
        "retries": args.retries,
        "max_redirects": args.max_redirects,
        "max_body_bytes": args.max_body_bytes,
        "forward_headers_on_redirect": args.forward_headers_on_redirect,
        "headers": _headers(args.header) if args.header else None,
        "sensitive_headers": args.sensitive_header or None,
        "follow_redirects": False if args.no_follow_redirects else None,
        "verify_tls": False if args.insecure else None,
        "assertions": _assertions(args.assertions) if args.assertions else None,
    }
    try:
        job = JobOptions(**{k: v for k, v in fields.items() if v is not None})
        engine, _ = resolve_options(job, settings)
    except ValidationError as exc:
        raise UsageError(_describe_validation(exc)) from None
    except InputError as exc:
        raise UsageError(_describe(exc)) from None
    return engine


def _headers(values: list[str]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for value in values:
        name, colon, rest = value.partition(":")
        if not colon or not name.strip():
            raise UsageError(f"--header {value!r}: expected 'Name: value'")
        headers[name.strip()] = rest.strip()
    return headers


def _assertions(path: Path) -> Assertions:
    """A JSON file, or TOML when its name ends in .toml, with the API's assertion fields."""
    try:
        text = path.read_text(encoding="utf-8")
        data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
        return Assertions.model_validate(data)
    except (OSError, UnicodeDecodeError, ValueError) as exc:  # JSON/TOML/validation errors
        detail = _describe_validation(exc) if isinstance(exc, ValidationError) else str(exc)
        raise UsageError(f"--assertions {path}: {detail}") from None


def _policy(args: argparse.Namespace, settings: Settings) -> DestinationPolicy:
    """The service's policy (built-in rules, settings' allowed/denied networks and ports),
    opened by --allow-network. No own endpoint: this process listens nowhere."""
    try:
        extra = parse_networks(args.allow_network or [])
    except ValueError as exc:
        raise UsageError(f"--allow-network: {exc}") from None
    return DestinationPolicy(
        allowed_networks=(*parse_networks(settings.allowed_networks), *extra),
        denied_networks=parse_networks(settings.denied_networks),
        allowed_ports=frozenset(settings.allowed_ports) or None,
    )


def _describe(exc: InputError) -> str:
    return "; ".join(_one(error["loc"], error["msg"], error.get("input")) for error in exc.errors)


def _describe_validation(exc: ValidationError) -> str:
    return "; ".join(
        _one(("body", "options", *e["loc"]), e["msg"], e.get("input")) for e in exc.errors()
    )


def _one(loc: tuple[Any, ...], msg: str, value: Any) -> str:
    parts = [part for part in loc if part != "body"]
    if parts and parts[0] == "urls":
        return f"URL {value!r}: {msg}"
    if parts and parts[0] == "options" and len(parts) > 1:
        flag = FLAGS.get(str(parts[1]), str(parts[1]))
        rest = "".join(f"[{part}]" for part in parts[2:])
        return f"{flag}{rest} {value!r}: {msg}"
    return f"{'.'.join(map(str, parts))}: {msg}"
