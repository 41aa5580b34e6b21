"""Turns URLs and options as written (a request, the monitors file) into engine inputs, or an
InputError naming each bad field.

The limits come from settings, so they are checked here rather than in the static schema;
the errors have FastAPI's own shape (`loc`, `msg`, `type`) so clients see one format, and the
API answers them as a 422.
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

import httpx

from app.config import Settings
from app.engine.options import CheckOptions, format_status_ranges, parse_status_ranges
from app.engine.urls import DedupeKey, dedupe_key, parse_url
from app.schemas.jobs import CheckOptionsPublic, JobOptions
from app.schemas.text import unrenderable

_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_FRAMING = "it frames the request, which urlhealth does itself (checks send no body)"
_HOP_BY_HOP = "it is hop-by-hop: it governs urlhealth's own connection, not the target"
# Headers a job may never set, and why: its copy would corrupt the framing of its own request
# or the kept-alive connection later checks reuse.
_FORBIDDEN_HEADERS = {
    "content-length": _FRAMING,
    "transfer-encoding": _FRAMING,
    "trailer": _FRAMING,
    "expect": "urlhealth sends no body to wait for",
    "connection": _HOP_BY_HOP,
    "upgrade": _HOP_BY_HOP,
    "te": _HOP_BY_HOP,
}
_HOST_REFUSED = (
    "Host would let a job reach any virtual host behind an allowed address; the operator "
    "can allow it with the setting allow_host_header (URLHEALTH_ALLOW_HOST_HEADER=true)"
)
MAX_HEADERS = 50
MAX_HEADER_BYTES = 8192


class InputError(ValueError):
    """Bad input; `errors` has one entry per bad field (`type`, `loc`, `msg`, `input`)."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__("; ".join(f"{error['loc']}: {error['msg']}" for error in errors))
        self.errors = errors


def _error(loc: tuple[str | int, ...], msg: str, value: Any, kind: str) -> dict[str, Any]:
    return {"type": kind, "loc": ("body", *loc), "msg": msg, "input": value}


class Targets(NamedTuple):
    """The URLs to check, in first-seen order, as submitted and as parsed for the fetch."""

    urls: list[str]
    parsed: list[httpx.URL]
    keys: list[DedupeKey]
    duplicates: int


def prepare_urls(urls: list[str], settings: Settings, limit: int) -> Targets:
    """Validate and dedupe, parsing each URL once."""
    if len(urls) > limit:
        msg = f"at most {limit} URLs per request, got {len(urls)}"
        raise InputError([_error(("urls",), msg, len(urls), "too_many_urls")])
    errors = []
    unique: dict[DedupeKey, tuple[str, httpx.URL]] = {}
    for index, raw in enumerate(urls):
        try:
            parsed = parse_url(raw, settings.max_url_length)
        except ValueError as exc:
            errors.append(_error(("urls", index), f"URL {exc!s}", raw, "url_invalid"))
            continue
        unique.setdefault(dedupe_key(parsed), (raw, parsed))
    if errors:
        raise InputError(errors)
    firsts = list(unique.values())
    return Targets(
        urls=[raw for raw, _ in firsts],
        parsed=[parsed for _, parsed in firsts],
        keys=list(unique),
        duplicates=len(urls) - len(unique),
    )


def resolve_options(
    options: JobOptions, settings: Settings
) -> tuple[CheckOptions, CheckOptionsPublic]:
    errors: list[dict[str, Any]] = []

    def within(name: str, value: float | None, default: float, ceiling: float) -> float:
        if value is None:
            return default
        if value > ceiling:
            errors.append(
                _error(
                    ("options", name),
                    f"must be at most {ceiling} (server limit)",
                    value,
                    "less_than_equal",
                )
            )
        return value

    timeout_s = within(
        "timeout_s", options.timeout_s, settings.default_timeout_s, settings.max_timeout_s
    )
    max_redirects = int(
        within(
            "max_redirects",
            options.max_redirects,
            settings.default_max_redirects,
            settings.max_redirects_limit,
        )
    )
    max_body = int(
        within(
            "max_body_bytes",
            options.max_body_bytes,
            settings.max_body_bytes,
            settings.max_body_bytes_limit,
        )
    )
    spec = (
        options.expected_status
        if options.expected_status is not None
        else (settings.default_expected_status)
    )
    try:
        ranges = parse_status_ranges(spec)
    except ValueError as exc:
        errors.append(_error(("options", "expected_status"), str(exc), spec, "value_error"))
        ranges = ((200, 399),)
    retries = int(within("retries", options.retries, 0, settings.max_retries))
    headers = _check_headers(options.headers or {}, errors, settings.allow_host_header)
    sensitive = _check_header_names(options.sensitive_headers or [], errors)
    if errors:
        raise InputError(errors)
    engine = CheckOptions(
        method=options.method or "GET",
        timeout_s=timeout_s,
        follow_redirects=True if options.follow_redirects is None else options.follow_redirects,
        max_redirects=max_redirects,
        expected_status=ranges,
        headers=headers,
        sensitive_headers=sensitive,
        forward_headers_on_redirect=options.forward_headers_on_redirect or "same-origin",
        verify_tls=True if options.verify_tls is None else options.verify_tls,
        max_body_bytes=max_body,
        retries=retries,
        assertions=options.assertions,
    )
    public = public_options(engine)
    # Nothing is stored unless its answer renders faithfully: JSON has no inf (1e400 parses
    # as one) and no lone surrogates, and a stored job that cannot render breaks every list.
    errors = list(unrenderable(public.model_dump(), ("body", "options"), finite=True))
    if errors:
        raise InputError(errors)
    return engine, public


def public_options(options: CheckOptions) -> CheckOptionsPublic:
    """The options as a job shows them, defaults filled in."""
    return CheckOptionsPublic(
        method=options.method,
        timeout_s=options.timeout_s,
        follow_redirects=options.follow_redirects,
        max_redirects=options.max_redirects,
        expected_status=format_status_ranges(options.expected_status),
        headers=dict(options.headers),
        sensitive_headers=list(options.sensitive_headers),
        forward_headers_on_redirect=options.forward_headers_on_redirect,
        verify_tls=options.verify_tls,
        max_body_bytes=options.max_body_bytes,
        retries=options.retries,
        assertions=options.assertions,
    )


def engine_options(stored: CheckOptionsPublic) -> CheckOptions:
    """The options a job was accepted with, as the engine takes them (the inverse of
    public_options: a worker replica runs a chunk with the options its job was kept with)."""
    return CheckOptions(
        method=stored.method,
        timeout_s=stored.timeout_s,
        follow_redirects=stored.follow_redirects,
        max_redirects=stored.max_redirects,
        expected_status=parse_status_ranges(stored.expected_status),
        headers=dict(stored.headers),
        sensitive_headers=tuple(stored.sensitive_headers),
        forward_headers_on_redirect=stored.forward_headers_on_redirect,
        verify_tls=stored.verify_tls,
        max_body_bytes=stored.max_body_bytes,
        retries=stored.retries,
        assertions=stored.assertions,
    )


def _check_headers(
    headers: dict[str, str], errors: list[dict[str, Any]], allow_host: bool
) -> dict[str, str]:
    if len(headers) > MAX_HEADERS:
        errors.append(
            _error(
                ("options", "headers"), f"at most {MAX_HEADERS} headers", None, "too_many_headers"
            )
        )
    size = 0
    seen: dict[str, str] = {}
    for name, value in headers.items():
        loc = ("options", "headers", name)
        size += len(name) + len(value)
        first = seen.setdefault(name.lower(), name)
        if first != name:  # both spellings would be sent, and one could escape stripping
            msg = f"the same header as {first!r}: header names are case-insensitive"
            errors.append(_error(loc, msg, name, "header_duplicate"))
        elif not _TOKEN.match(name):
            errors.append(_error(loc, "header name must be an HTTP token", name, "header_name"))
        elif name.lower() in _FORBIDDEN_HEADERS or (name.lower() == "host" and not allow_host):
            why = _FORBIDDEN_HEADERS.get(name.lower(), _HOST_REFUSED)
            msg = f"this header is managed by urlhealth: {why}"
            errors.append(_error(loc, msg, name, "header_name"))
        if any(ch in value for ch in "\r\n\0") or not value.isascii():
            errors.append(
                _error(
                    loc, "header value must be printable ASCII without CR/LF", value, "header_value"
                )
            )
    if size > MAX_HEADER_BYTES:
        errors.append(
            _error(
                ("options", "headers"),
                f"headers exceed {MAX_HEADER_BYTES} bytes",
                None,
                "headers_too_large",
            )
        )
    return headers


def _check_header_names(names: list[str], errors: list[dict[str, Any]]) -> tuple[str, ...]:
    """`sensitive_headers`: HTTP tokens, compared case-insensitively, so kept lowercase."""
    if len(names) > MAX_HEADERS:
        msg = f"at most {MAX_HEADERS} names"
        errors.append(_error(("options", "sensitive_headers"), msg, None, "too_many_headers"))
    for index, name in enumerate(names):
        if not _TOKEN.match(name):
            loc = ("options", "sensitive_headers", index)
            errors.append(_error(loc, "header name must be an HTTP token", name, "header_name"))
    return tuple(dict.fromkeys(name.lower() for name in names))
