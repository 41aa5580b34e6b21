"""Assertions on an answer: the schema that validates them and the engine that judges them."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from app.engine.assertions import REGEX_TIMEOUT_S, Observed, evaluate, outcome
from app.schemas.assertions import (
    MAX_SHOWN,
    Assertions,
    FailedAssertion,
    HeaderAssertion,
    JsonPathAssertion,
)

CATASTROPHIC = "(a+)+$"
EVIL_INPUT = "a" * 5000 + "b"


def seen(
    body: bytes | None = b"",
    *,
    headers: Any = None,
    truncated: bool = False,
    latency_ms: float = 10.0,
    content_type: str | None = None,
    days_left: int | None = None,
    status_code: int = 200,
) -> Observed:
    return Observed(
        status_code=status_code,
        headers=headers if headers is not None else {},
        body=body,
        body_truncated=truncated,
        latency_ms=latency_ms,
        content_type=content_type,
        days_left=days_left,
    )


def check(spec: dict[str, Any], observed: Observed) -> list[FailedAssertion]:
    return evaluate(Assertions.model_validate(spec), observed)


def only(failures: list[FailedAssertion]) -> FailedAssertion:
    assert len(failures) == 1, failures
    return failures[0]


def json_seen(document: Any, **kwargs: Any) -> Observed:
    return seen(json.dumps(document).encode(), content_type="application/json", **kwargs)


# --- latency and certificate: degraded --------------------------------------------------------


def test_latency_within_limit_passes_and_at_the_limit_too() -> None:
    assert check({"max_latency_ms": 100}, seen(latency_ms=99.5)) == []
    assert check({"max_latency_ms": 100}, seen(latency_ms=100)) == []


def test_latency_over_limit_is_a_degraded_failure() -> None:
    failure = only(check({"max_latency_ms": 100}, seen(latency_ms=250.5)))
    assert failure.model_dump() == {
        "assertion": "max_latency_ms",
        "expected": "<= 100 ms",
        "actual": "250.5 ms",
        "severity": "degraded",
    }
    assert outcome([failure]) == "degraded"


def test_min_days_left_passes_with_enough_days_and_degrades_with_fewer() -> None:
    assert check({"min_days_left": 14}, seen(days_left=14)) == []
    failure = only(check({"min_days_left": 14}, seen(days_left=3)))
    assert (failure.assertion, failure.expected, failure.actual) == (
        "min_days_left",
        ">= 14 days",
        "3 days",
    )
    assert failure.severity == "degraded"


def test_min_days_left_is_skipped_for_plain_http() -> None:
    assert check({"min_days_left": 14}, seen(days_left=None)) == []


def test_expired_certificate_with_negative_days_fails() -> None:
    assert only(check({"min_days_left": 0}, seen(days_left=-2))).actual == "-2 days"


# --- body text ---------------------------------------------------------------------------------


def test_body_contains_passes_when_every_text_is_present() -> None:
    assert check({"body_contains": ["alpha", "gamma"]}, seen(b"alpha beta gamma")) == []


def test_body_contains_lists_each_missing_text() -> None:
    failures = check({"body_contains": ["alpha", "delta", "omega"]}, seen(b"alpha beta"))
    assert [(f.assertion, f.expected, f.actual, f.severity) for f in failures] == [
        ("body_contains", 'contains "delta"', "not found in 10 bytes", "down"),
        ("body_contains", 'contains "omega"', "not found in 10 bytes", "down"),
    ]


def test_body_contains_on_a_truncated_body_says_only_a_prefix_was_searched() -> None:
    failure = only(check({"body_contains": ["tail"]}, seen(b"x" * 64, truncated=True)))
    assert failure.actual == "not found in the first 64 bytes (body truncated)"


def test_body_not_contains_passes_when_absent_and_shows_where_it_was_found() -> None:
    assert check({"body_not_contains": ["error"]}, seen(b"all fine")) == []
    failure = only(check({"body_not_contains": ["error"]}, seen(b"status: error 42")))
    assert failure.assertion == "body_not_contains"
    assert failure.expected == 'does not contain "error"'
    assert failure.actual == 'found at character 8: "status: error 42"'


def test_body_regex_passes_on_a_match_and_fails_without_one() -> None:
    spec = {"body_regex": r"version \d+\.\d+"}
    assert check(spec, seen(b"app version 2.14 ready")) == []
    failure = only(check(spec, seen(b"app version two")))
    assert failure.expected == r"matches /version \d+\.\d+/"
    assert failure.actual == "no match in 15 bytes"


def test_body_regex_timeout_is_a_failure_reported_within_a_bounded_time() -> None:
    started = time.monotonic()
    failure = only(check({"body_regex": CATASTROPHIC}, seen(EVIL_INPUT.encode())))
    assert time.monotonic() - started < 5
    assert failure.actual == f"regex timed out after {REGEX_TIMEOUT_S:g} s"
    assert failure.severity == "down"


def test_body_is_decoded_with_the_content_type_charset() -> None:
    body = "Grüße from café".encode("iso-8859-1")
    spec = {"body_contains": ["Grüße", "café"]}
    assert check(spec, seen(body, content_type="text/plain; charset=ISO-8859-1")) == []
    assert check(spec, seen(body, headers={"Content-Type": 'text/plain; charset="latin-1"'})) == []
    # Read as UTF-8 (no charset) the same bytes do not contain the text.
    assert len(check(spec, seen(body, content_type="text/plain"))) == 2


@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "text/plain",
        "text/plain; charset=no-such-charset",
        "text/plain; charset=base64",  # a codec, but bytes to bytes
        "text/plain; charset=rot13",
        "text/plain; charset=utf-8\x00",
        "text/plain; charset=" + "x" * 5000,
        "text/plain; charset=",
        ";;;charset",
    ],
)
def test_body_defaults_to_utf8_and_survives_unknown_or_odd_charsets(
    content_type: str | None,
) -> None:
    body = "naïve ✓".encode()
    spec = {"body_contains": ["naïve ✓"], "json_path": [{"path": "$", "exists": False}]}
    failure = only(check(spec, seen(body, content_type=content_type)))
    assert failure.assertion == "json_path $"  # the body was decoded as UTF-8
    assert failure.actual.startswith("body is not valid JSON")


def test_binary_garbage_body_is_judged_not_raised() -> None:
    garbage = bytes(range(256)) * 64
    spec = {
        "body_contains": ["healthy"],
        "body_not_contains": ["\x00"],
        "body_regex": "ok",
        "json_path": [{"path": "$.a", "exists": True}],
    }
    failures = check(spec, seen(garbage, content_type="application/json; charset=idna"))
    assert [f.assertion for f in failures] == [
        "body_contains",
        "body_not_contains",
        "body_regex",
        "json_path $.a",
    ]
    assert failures[-1].actual.startswith("body is not valid JSON")


def test_body_assertions_fail_when_no_body_was_kept() -> None:
    failures = check(
        {"body_contains": ["x"], "json_path": [{"path": "$", "exists": True}]}, seen(None)
    )
    assert len(failures) == 2
    assert all(f.actual.startswith("no body was kept") for f in failures)


# --- JSON paths ------------------------------------------------------------------------------

DOC = {
    "status": "ok",
    "code": 1,
    "ready": True,
    "nothing": None,
    "db": {"latency": {"p99": 12.5}},
    "checks": [{"name": "db", "ok": True}, {"name": "cache", "ok": False}],
}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("$.status", "ok"),
        ("$.code", 1.0),  # JSON numbers compare by value
        ("$.db.latency.p99", 12.5),
        ("$.checks[1].name", "cache"),
        ("$.checks[0]", {"name": "db", "ok": True}),
        ("$.nothing", None),
        ("$.ready", True),
        ("$..name", "db"),  # several matches: the first decides
        ("$.checks[*].ok", True),
    ],
)
def test_json_path_equals_passes(path: str, expected: Any) -> None:
    assert check({"json_path": [{"path": path, "equals": expected}]}, json_seen(DOC)) == []


@pytest.mark.parametrize(
    ("path", "expected", "actual"),
    [
        ("$.status", "down", '"ok"'),
        ("$.code", "1", "1"),  # a string is not a number
        ("$.code", True, "1"),  # nor is a boolean
        ("$.ready", 1, "true"),
        ("$.nothing", 0, "null"),
        ("$.checks[0]", {"name": "db"}, '{"name": "db", "ok": true}'),
        ("$.missing", "x", "no match"),
        ("$.checks[5].name", "x", "no match"),
    ],
)
def test_json_path_equals_fails_showing_the_value_seen(
    path: str, expected: Any, actual: str
) -> None:
    failure = only(check({"json_path": [{"path": path, "equals": expected}]}, json_seen(DOC)))
    assert failure.assertion == f"json_path {path}"
    assert failure.expected == f"equals {json.dumps(expected)}"
    assert failure.actual == actual
    assert failure.severity == "down"


def test_json_path_equals_null_differs_from_not_giving_equals() -> None:
    asks_null = JsonPathAssertion.model_validate({"path": "$.status", "equals": None})
    asks_exists = JsonPathAssertion.model_validate({"path": "$.status", "exists": True})
    assert asks_null.has_equals
    assert not asks_exists.has_equals
    failures = evaluate(Assertions(json_path=[asks_null, asks_exists]), json_seen(DOC))
    assert only(failures).expected == "equals null"


def test_json_path_exists_and_not_exists() -> None:
    spec = {
        "json_path": [
            {"path": "$.db.latency", "exists": True},
            {"path": "$.error", "exists": False},
        ]
    }
    assert check(spec, json_seen(DOC)) == []
    failures = check(spec, json_seen({"error": "boom"}))
    assert [(f.assertion, f.expected, f.actual) for f in failures] == [
        ("json_path $.db.latency", "exists", "no match"),
        ("json_path $.error", "does not exist", 'found: "boom"'),
    ]


def test_json_path_on_invalid_json_fails_every_json_assertion() -> None:
    spec = {"json_path": [{"path": "$.a", "exists": True}, {"path": "$.b", "equals": 1}]}
    failures = check(spec, seen(b"<html>not json</html>"))
    assert len(failures) == 2
    assert all(f.actual.startswith("body is not valid JSON: Expecting value") for f in failures)


def test_json_path_on_a_truncated_body_fails_even_if_the_prefix_parses() -> None:
    failure = only(
        check({"json_path": [{"path": "$", "exists": True}]}, seen(b"[1]", truncated=True))
    )
    assert failure.actual == "body truncated at 3 bytes"


def test_json_body_decoding_follows_charset_and_bom() -> None:
    spec = {"json_path": [{"path": "$.name", "equals": "café"}]}
    utf16 = json.dumps({"name": "café"}).encode("utf-16")
    assert check(spec, seen(utf16)) == []  # detected without a charset
    bom = b"\xef\xbb\xbf" + json.dumps({"name": "café"}).encode()
    assert check(spec, seen(bom, content_type="application/json; charset=utf-8")) == []
    latin = '{"name": "café"}'.encode("latin-1")
    assert check(spec, seen(latin, content_type="application/json; charset=latin-1")) == []


def test_deeply_nested_json_is_reported_not_raised() -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    failure = only(check({"json_path": [{"path": "$[0]", "exists": True}]}, seen(deep)))
    assert failure.actual == "body is not valid JSON: nested too deeply"


def test_json_nested_just_below_the_parser_limit_is_evaluated_without_raising() -> None:
    # Parses, but recursive descent and comparison may run out of stack: still just results.
    for depth in (200, 600, 900):
        body = b"[" * depth + b"]" * depth
        spec = {"json_path": [{"path": "$..x", "exists": True}, {"path": "$", "equals": [1]}]}
        failures = check(spec, seen(body))
        assert len(failures) == 2


# --- headers -----------------------------------------------------------------------------------


def test_header_presence_equals_and_matches_pass() -> None:
    headers = {"Content-Type": "application/json; charset=utf-8", "Cache-Control": "no-store"}
    spec = {
        "headers": [
            {"name": "content-type"},
            {"name": "CACHE-CONTROL", "equals": "no-store"},
            {"name": "Content-Type", "matches": "^application/json"},
            {"name": "x-powered-by", "exists": False},
        ]
    }
    assert check(spec, seen(headers=headers)) == []


def test_header_failures_show_the_value_seen_or_missing() -> None:
    headers = {"content-type": "text/html", "server": "nginx"}
    spec = {
        "headers": [
            {"name": "Content-Type", "equals": "TEXT/HTML"},  # values are case-sensitive
            {"name": "content-type", "matches": "json"},
            {"name": "x-request-id"},
            {"name": "etag", "equals": "abc", "matches": "a"},
            {"name": "server", "exists": False},
        ]
    }
    failures = check(spec, seen(headers=headers))
    assert [(f.assertion, f.expected, f.actual) for f in failures] == [
        ("header content-type", 'equals "TEXT/HTML"', '"text/html"'),
        ("header content-type", "matches /json/", '"text/html"'),
        ("header x-request-id", "present", "missing"),
        ("header etag", 'equals "abc" and matches /a/', "missing"),
        ("header server", "absent", 'present: "nginx"'),
    ]
    assert {f.severity for f in failures} == {"down"}


def test_httpx_headers_are_read_case_insensitively_with_repeats_joined() -> None:
    headers = httpx.Headers([("Vary", "Accept"), ("vary", "Origin"), ("X-Id", "7")])
    observed = seen(headers=headers)
    assert observed.headers["VARY"] == "Accept, Origin"
    assert observed.headers.get("x-id") == "7"
    spec = {"headers": [{"name": "Vary", "equals": "Accept, Origin"}, {"name": "x-ID"}]}
    assert check(spec, observed) == []


def test_plain_dict_headers_differing_only_in_case_are_joined() -> None:
    observed = seen(headers={"Set-Cookie": "a=1", "set-cookie": "b=2"})
    assert observed.headers["set-cookie"] == "a=1, b=2"


def test_content_type_defaults_to_the_header() -> None:
    observed = seen(headers={"Content-Type": "text/plain; charset=latin-1"})
    assert observed.content_type == "text/plain; charset=latin-1"


def test_header_regex_timeout_is_a_failure() -> None:
    spec = {"headers": [{"name": "x-evil", "matches": CATASTROPHIC}]}
    started = time.monotonic()
    failure = only(check(spec, seen(headers={"x-evil": EVIL_INPUT})))
    assert time.monotonic() - started < 5
    assert failure.actual == f"regex timed out after {REGEX_TIMEOUT_S:g} s"


# --- all together ------------------------------------------------------------------------------


def test_every_failure_is_listed_together_and_down_outranks_degraded() -> None:
    spec = {
        "max_latency_ms": 100,
        "min_days_left": 30,
        "body_contains": ["ok"],
        "json_path": [{"path": "$.status", "equals": "ok"}],
        "headers": [{"name": "x-version"}],
    }
    observed = json_seen({"status": "starting"}, latency_ms=900, days_left=5)
    failures = check(spec, observed)
    assert [f.assertion for f in failures] == [
        "max_latency_ms",
        "min_days_left",
        "body_contains",
        "json_path $.status",
        "header x-version",
    ]
    assert [f.severity for f in failures] == ["degraded", "degraded", "down", "down", "down"]
    assert outcome(failures) == "down"
    assert outcome(failures[:2]) == "degraded"
    assert outcome([]) == "up"


def test_empty_assertions_pass_anything() -> None:
    assert evaluate(Assertions(), seen(None, latency_ms=1e9, days_left=-5)) == []


@settings(max_examples=150, deadline=None)
@given(
    body=st.binary(max_size=2048),
    content_type=st.one_of(
        st.none(),
        st.text(max_size=40),
        st.builds("text/plain; charset={}".format, st.text(max_size=20)),
        st.sampled_from(["application/json; charset=utf-16", "text/html; charset=idna"]),
    ),
    truncated=st.booleans(),
)
def test_evaluate_never_raises_on_any_body(
    body: bytes, content_type: str | None, truncated: bool
) -> None:
    spec = {
        "body_contains": ["a"],
        "body_not_contains": ["b"],
        "body_regex": "c+d",
        "json_path": [{"path": "$..x", "exists": True}, {"path": "$[0]", "equals": [1, {"a": 2}]}],
    }
    failures = check(spec, seen(body, content_type=content_type, truncated=truncated))
    assert all(f.severity == "down" for f in failures)


# --- schema ------------------------------------------------------------------------------------


def error_locations(exc: ValidationError) -> list[tuple[int | str, ...]]:
    return [tuple(error["loc"]) for error in exc.errors()]


@pytest.mark.parametrize(
    ("spec", "location", "message"),
    [
        ({"body_regex": "(unclosed"}, ("body_regex",), "invalid regex"),
        ({"body_regex": "(?:a{1000}){1000}"}, ("body_regex",), "counted repetitions"),
        ({"body_regex": "a{4294967294}"}, ("body_regex",), "counted repetitions"),
        ({"body_regex": "a" * 513}, ("body_regex",), "at most 512"),
        ({"body_regex": "a{1000}b{1000}"}, ("body_regex",), "counted repetitions"),
        ({"headers": [{"name": "x", "matches": "["}]}, ("headers", 0, "matches"), "invalid regex"),
        ({"headers": [{"name": "bad name"}]}, ("headers", 0, "name"), "header name"),
        ({"json_path": [{"path": "$.[[", "exists": True}]}, ("json_path", 0, "path"), "JSONPath"),
        ({"json_path": [{"path": "$..a..b", "exists": True}]}, ("json_path", 0, "path"), "(..)"),
        ({"json_path": [{"path": "$.a|b", "exists": True}]}, ("json_path", 0, "path"), "a | b"),
        ({"json_path": [{"path": "$.a,b", "exists": True}]}, ("json_path", 0, "path"), "a,b"),
        ({"json_path": [{"path": "$[0,1]", "exists": True}]}, ("json_path", 0, "path"), "[0,1]"),
        (
            {"json_path": [{"path": "$.a where b", "exists": True}]},
            ("json_path", 0, "path"),
            "where",
        ),
        (
            {"json_path": [{"path": "$.a.`parent`", "exists": True}]},
            ("json_path", 0, "path"),
            "parent",
        ),
        ({"json_path": [{"path": "$.a"}]}, ("json_path", 0), "give `equals`, `exists`"),
        (
            {"json_path": [{"path": "$.a", "exists": False, "equals": 1}]},
            ("json_path", 0),
            "cannot be combined",
        ),
        ({"headers": [{"name": "x", "exists": False, "equals": "1"}]}, ("headers", 0), "combined"),
        ({"body_contains": ["x"] * 21}, ("body_contains",), "at most 20"),
        ({"body_contains": [""]}, ("body_contains", 0), "at least 1"),
        ({"body_not_contains": ["x" * 1025]}, ("body_not_contains", 0), "at most 1024"),
        ({"json_path": [{"path": "$", "exists": True}] * 21}, ("json_path",), "at most 20"),
        ({"headers": [{"name": "x"}] * 21}, ("headers",), "at most 20"),
        ({"max_latency_ms": 0}, ("max_latency_ms",), "greater than 0"),
        ({"min_days_left": -1}, ("min_days_left",), "greater than or equal"),
        ({"body_contain": ["x"]}, ("body_contain",), "Extra inputs"),
    ],
)
@pytest.mark.filterwarnings("ignore:The `|` .union. operator is deprecated:DeprecationWarning")
def test_invalid_assertions_are_rejected_naming_the_field(
    spec: dict[str, Any], location: tuple[int | str, ...], message: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        Assertions.model_validate(spec)
    assert error_locations(caught.value) == [location]
    assert message in caught.value.errors()[0]["msg"]


@pytest.mark.parametrize(
    "pattern",
    [r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", r"\d{1,3}(?:\.\d{1,3}){3}"],
)
def test_ordinary_counted_repetitions_are_accepted(pattern: str) -> None:
    assert Assertions(body_regex=pattern).body_regex == pattern


@pytest.mark.parametrize(
    "path", ["$", "$.a.b", "$['a b']", "$[0]", "$[-1]", "$[1:3]", "$.*", "$[*].ok", "$..name"]
)
def test_plain_json_paths_are_accepted(path: str) -> None:
    assert JsonPathAssertion(path=path, exists=True).path == path


@pytest.mark.parametrize("value", [float("nan"), {1, 2}, b"bytes"])
def test_json_path_equals_must_be_a_json_value(value: Any) -> None:
    with pytest.raises(ValidationError, match="not a JSON value"):
        JsonPathAssertion(path="$", equals=value)


def test_header_names_are_normalised_to_lowercase() -> None:
    assert HeaderAssertion(name="Content-Type").name == "content-type"


def test_equals_survives_a_dump_and_reload_given_or_not() -> None:
    original = Assertions.model_validate(
        {"json_path": [{"path": "$.a", "exists": True}, {"path": "$.b", "equals": None}]}
    )
    dumped = json.loads(original.model_dump_json())
    assert dumped["json_path"] == [
        {"path": "$.a", "exists": True},
        {"path": "$.b", "equals": None, "exists": None},
    ]
    reloaded = Assertions.model_validate(dumped)
    assert [item.has_equals for item in reloaded.json_path] == [False, True]


def test_documented_schema_is_the_same_for_requests_and_responses() -> None:
    class Echo(BaseModel):
        assertions: Assertions

    served = Echo.model_json_schema(mode="serialization")
    assert served == Echo.model_json_schema(mode="validation")
    assert "equals" in served["$defs"]["JsonPathAssertion"]["properties"]


def test_needs_body_only_for_body_and_json_assertions() -> None:
    spec = {"max_latency_ms": 5, "min_days_left": 3, "headers": [{"name": "x"}]}
    assert not Assertions.model_validate(spec).needs_body
    assert Assertions(body_contains=["x"]).needs_body
    assert Assertions(body_not_contains=["x"]).needs_body
    assert Assertions(body_regex="x").needs_body
    assert Assertions.model_validate({"json_path": [{"path": "$", "exists": True}]}).needs_body


def test_failed_assertion_values_are_cut_to_a_readable_length() -> None:
    failure = only(check({"json_path": [{"path": "$", "equals": "short"}]}, json_seen("z" * 5000)))
    assert len(failure.actual) < MAX_SHOWN + 40
    assert failure.actual.startswith('"zzz')
    assert failure.actual.endswith("… (5002 chars)")
