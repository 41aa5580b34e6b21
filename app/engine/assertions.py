"""Judge an answer against a job's assertions: every failure is listed, nothing ever raises.

Decisions worth knowing:
- Body assertions see only the bytes read (the engine's cap). `body_contains` on a truncated
  body says so when the text is missing; `body_not_contains` and `body_regex` judge the part
  read. JSONPath assertions fail on a truncated body: a JSON prefix is not a document.
- `min_days_left` is skipped when `days_left` is None (plain http: no certificate).
- Each regex search is bounded by REGEX_TIMEOUT_S; a timeout is a failed assertion.
- JSON equality: numbers by value (1 == 1.0), but booleans are not numbers and "1" is not 1.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

from jsonpath_ng.jsonpath import JSONPath
from jsonpath_ng.parser import parse as parse_jsonpath

from app.schemas.assertions import Assertions, FailedAssertion, compile_pattern

REGEX_TIMEOUT_S = 0.1
Outcome = Literal["up", "degraded", "down"]
Severity = Literal["degraded", "down"]
Check = Callable[..., str | None]  # None when the assertion holds, else what was seen
_DEGRADING = frozenset({"max_latency_ms", "min_days_left"})


class _Headers(Mapping[str, str]):
    """Case-insensitive, read-only; repeated names joined with ", " (as httpx.Headers does)."""

    __slots__ = ("_items",)

    def __init__(self, source: Mapping[str, str]) -> None:
        items: dict[str, str] = {}
        for name, value in source.items():
            key = name.lower()
            items[key] = f"{items[key]}, {value}" if key in items else value
        self._items = items

    def __getitem__(self, name: str) -> str:
        return self._items[name.lower()]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)


@dataclass(frozen=True, slots=True)
class Observed:
    """What the engine saw of the final answer."""

    status_code: int
    headers: Mapping[str, str]  # any mapping (dict, httpx.Headers); read case-insensitively
    body: bytes | None  # the bytes read, up to the engine's cap; None when not kept
    body_truncated: bool
    latency_ms: float
    content_type: str | None = None  # defaults to the Content-Type header
    days_left: int | None = None  # certificate days left; None for plain http

    def __post_init__(self) -> None:
        object.__setattr__(self, "headers", _Headers(self.headers))
        if self.content_type is None:
            object.__setattr__(self, "content_type", self.headers.get("content-type"))


def evaluate(assertions: Assertions, observed: Observed) -> list[FailedAssertion]:
    """Every failed assertion, in the order the fields are declared; empty when all passed."""
    failures: list[FailedAssertion] = []
    body = _Body(observed)

    def judge(name: str, expected: str, check: Check, *args: Any) -> None:
        try:
            actual = check(*args)
        except (_NoBody, _BadJson) as exc:
            actual = str(exc)
        except Exception as exc:  # a safety net: an odd answer must never crash a worker
            actual = f"could not evaluate: {type(exc).__name__}: {exc}"
        if actual is not None:
            severity: Severity = "degraded" if name in _DEGRADING else "down"
            failures.append(
                FailedAssertion(assertion=name, expected=expected, actual=actual, severity=severity)
            )

    limit = assertions.max_latency_ms
    if limit is not None and observed.latency_ms > limit:
        judge("max_latency_ms", f"<= {limit:.10g} ms", str, f"{observed.latency_ms:.1f} ms")
    days, minimum = observed.days_left, assertions.min_days_left
    if minimum is not None and days is not None and days < minimum:
        judge("min_days_left", f">= {minimum} days", str, f"{days} days")
    for needle in assertions.body_contains:
        judge("body_contains", f"contains {_show(needle)}", body.lacks, needle)
    for needle in assertions.body_not_contains:
        judge("body_not_contains", f"does not contain {_show(needle)}", body.has, needle)
    if assertions.body_regex is not None:
        judge(
            "body_regex", f"matches /{assertions.body_regex}/", body.no_match, assertions.body_regex
        )
    for item in assertions.json_path:
        name = f"json_path {item.path}"
        if item.exists is not None:
            want = "exists" if item.exists else "does not exist"
            judge(name, want, body.json_exists, item.path, item.exists)
        if item.has_equals:
            judge(name, f"equals {_show(item.equals)}", body.json_equals, item.path, item.equals)
    for header in assertions.headers:
        value = observed.headers.get(header.name)
        name = f"header {header.name}"
        if header.exists is False:
            if value is not None:
                judge(name, "absent", str, f"present: {_show(value)}")
        elif value is None:
            judge(name, _header_wants(header.equals, header.matches), str, "missing")
        else:
            if header.equals is not None and value != header.equals:
                judge(name, f"equals {_show(header.equals)}", _show, value)
            if header.matches is not None:
                judge(name, f"matches /{header.matches}/", _search, header.matches, value, None)
    return failures


def outcome(failures: Sequence[FailedAssertion]) -> Outcome:
    if any(f.severity == "down" for f in failures):
        return "down"
    return "degraded" if failures else "up"


class _Body:
    """The body, decoded and parsed lazily, once, for all the assertions that read it."""

    def __init__(self, observed: Observed) -> None:
        self._raw = observed.body
        self._truncated = observed.body_truncated
        self._charset = _charset(observed.content_type)
        self._text: str | None = None
        self._json: tuple[Any, str | None] | None = None

    def _read(self) -> str:
        if self._raw is None:
            raise _NoBody
        if self._text is None:
            self._text = _decode(self._raw, self._charset or "utf-8")
        return self._text

    def _where(self) -> str:
        size = len(self._raw or b"")
        return f"the first {size} bytes (body truncated)" if self._truncated else f"{size} bytes"

    def lacks(self, needle: str) -> str | None:
        return None if needle in self._read() else f"not found in {self._where()}"

    def has(self, needle: str) -> str | None:
        text = self._read()
        at = text.find(needle)
        if at < 0:
            return None
        return f"found at character {at}: {_show(text[max(0, at - 40) : at + len(needle) + 40])}"

    def no_match(self, pattern: str) -> str | None:
        return _search(pattern, self._read(), f"no match in {self._where()}")

    def _document(self) -> Any:
        if self._json is None:
            self._json = _parse_json(self._raw, self._truncated, self._charset)
        document, problem = self._json
        if problem is not None:
            raise _BadJson(problem)
        return document

    def json_exists(self, path: str, exists: bool | None) -> str | None:
        matches = _compiled_path(path).find(self._document())
        if exists and not matches:
            return "no match"
        if not exists and matches:
            return f"found: {_show(matches[0].value)}"
        return None

    def json_equals(self, path: str, expected: Any) -> str | None:
        matches = _compiled_path(path).find(self._document())
        if not matches:
            return "no match"
        actual = matches[0].value
        return None if _json_equal(actual, expected) else _show(actual)


class _NoBody(Exception):
    def __str__(self) -> str:
        return "no body was kept (HEAD request, or the engine did not read it)"


class _BadJson(Exception):
    """The body is not a JSON document; the message says why."""


def _parse_json(raw: bytes | None, truncated: bool, charset: str | None) -> tuple[Any, str | None]:
    if raw is None:
        return None, str(_NoBody())
    if truncated:
        return None, f"body truncated at {len(raw)} bytes"
    try:
        # Without a charset json.loads detects UTF-8/16/32 and skips a BOM itself.
        source = raw if charset is None else raw.decode(charset).removeprefix("\ufeff")
        return json.loads(source), None
    except RecursionError:
        return None, "body is not valid JSON: nested too deeply"
    except Exception as exc:  # ValueError, UnicodeError, LookupError for a bogus charset
        return None, f"body is not valid JSON: {exc}"


def _json_equal(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, list) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_json_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_json_equal(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b  # str and None


@lru_cache(maxsize=256)
def _compiled_path(path: str) -> JSONPath:
    return parse_jsonpath(path)


def _search(pattern: str, text: str, failure: str | None) -> str | None:
    """None when `pattern` is found in `text`; else `failure` (or `text` itself, shown)."""
    try:
        found = compile_pattern(pattern).search(text, timeout=REGEX_TIMEOUT_S)
    except TimeoutError:
        return f"regex timed out after {REGEX_TIMEOUT_S:g} s"
    if found is not None:
        return None
    return _show(text) if failure is None else failure


def _charset(content_type: str | None) -> str | None:
    for param in (content_type or "").split(";")[1:]:
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset":
            name = value.strip().strip("\"'")
            if len(name) > 40:  # also bounds what odd names add to the codecs cache
                return None
            try:
                info = codecs.lookup(name)
            except (LookupError, ValueError):  # ValueError: a NUL in the name
                return None
            # base64, rot13, zlib...: codecs, but not text encodings.
            return info.name if getattr(info, "_is_text_encoding", True) else None
    return None


def _decode(raw: bytes, charset: str) -> str:
    try:
        return raw.decode(charset, errors="replace")
    except Exception:  # a non-text codec, or one (idna) that refuses errors="replace"
        return raw.decode("utf-8", errors="replace")


def _header_wants(equals: str | None, matches: str | None) -> str:
    wants = [f"equals {_show(equals)}"] if equals is not None else []
    wants += [f"matches /{matches}/"] if matches is not None else []
    return " and ".join(wants) or "present"


def _show(value: Any) -> str:
    try:
        return json.dumps(value, ensure_ascii=False)
    except Exception:  # RecursionError on a deep value, or not JSON at all
        return f"<{type(value).__name__}>"
