"""Assertions: what a healthy answer must look like, and how a failed one is reported."""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Literal

import regex
from jsonpath_ng import jsonpath as jp
from jsonpath_ng.parser import parse as parse_jsonpath
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    SerializerFunctionWrapHandler,
    StringConstraints,
    field_validator,
    model_serializer,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

MAX_PATTERN = 512
# regex expands counted repeats at compile time: "(?:a{1000}){1000}" costs 280 MB before any
# match runs. The product of every {m,n} bound in a pattern is capped, nested or not.
MAX_REPEAT_PRODUCT = 100_000
MAX_SHOWN = 200
_COUNTED = re.compile(r"\{\s*(\d*)\s*(?:,\s*(\d*)\s*)?\}")
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


def compile_pattern(pattern: str) -> regex.Pattern[str]:
    """Compile a user's regex, refusing patterns whose compilation alone is costly."""
    product = 1
    for low, high in _COUNTED.findall(pattern):
        product *= max(int(low or 0), int(high or 0), 1)
        if product > MAX_REPEAT_PRODUCT:
            raise ValueError(f"counted repetitions multiply to more than {MAX_REPEAT_PRODUCT}")
    try:
        return regex.compile(pattern)
    except Exception as exc:  # regex.error, and RecursionError/OverflowError on odd input
        raise ValueError(f"invalid regex: {exc}") from None


def clip(text: str, limit: int = MAX_SHOWN) -> str:
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} chars)"


def _check_pattern(pattern: str) -> str:
    compile_pattern(pattern)
    return pattern


def _check_path(path: str) -> str:
    try:
        tree = parse_jsonpath(path)
    except Exception as exc:
        raise ValueError(f"invalid JSONPath: {exc}") from None
    if _descents(tree) > 1:  # each `..` multiplies the work by the document's depth
        raise ValueError("at most one recursive descent (..) per path")
    return path


def _descents(node: jp.JSONPath) -> int:
    """Recursive descents in a parsed path. Refuses the parts whose cost can multiply
    (unions, `where`, several names or indices in one step) and `parent`."""
    if type(node) is jp.Child or type(node) is jp.Descendants:
        inner = _descents(node.left) + _descents(node.right)
        return inner + (type(node) is jp.Descendants)
    if type(node) in (jp.Root, jp.This, jp.Wildcard, jp.Slice):
        return 0
    if type(node) is jp.Fields and len(node.fields) == 1:
        return 0
    if type(node) is jp.Index and len(node.indices) == 1:
        return 0
    raise ValueError(f"unsupported in a JSONPath here: {node}")


Needle = Annotated[str, StringConstraints(min_length=1, max_length=1024)]
Pattern = Annotated[str, StringConstraints(max_length=MAX_PATTERN), AfterValidator(_check_pattern)]
Path = Annotated[
    str, StringConstraints(min_length=1, max_length=MAX_PATTERN), AfterValidator(_check_path)
]


def _without_serializer(schema: Any) -> Any:
    """The core schema with the model's own serializer removed (validators are kept)."""
    if not isinstance(schema, dict):
        return schema
    return {
        key: _without_serializer(value) if key == "schema" else value
        for key, value in schema.items()
        if key != "serialization" or schema.get("type") != "model"
    }


class JsonPathAssertion(BaseModel):
    """A JSONPath into the JSON body: the path must (or must not) match, or equal a value."""

    model_config = ConfigDict(extra="forbid")

    path: Path = Field(
        description="A JSONPath: `$`, `.name`, `['name']`, `[0]`, `[1:3]`, `*`, and at most "
        "one `..`. No filters, unions or `where`.",
        examples=["$.status", "$.checks[0].healthy", "$..version"],
    )
    equals: Any = Field(
        None,
        description='The first match must equal this JSON value (1 equals 1.0; "1" is not 1). '
        "`null` is a value: give it to require a JSON null; leave the field out otherwise.",
        examples=["ok", 200, True, None],
    )
    exists: bool | None = Field(
        None,
        description="true: the path must match something; false: it must match nothing.",
        examples=[True],
    )

    @model_validator(mode="after")
    def _asks_something(self) -> JsonPathAssertion:
        if self.exists is None and not self.has_equals:
            raise ValueError("give `equals`, `exists` or both")
        if self.exists is False and self.has_equals:
            raise ValueError("`exists: false` cannot be combined with `equals`")
        try:
            json.dumps(self.equals, allow_nan=False)
        except (TypeError, ValueError, RecursionError) as exc:
            raise ValueError(f"`equals` is not a JSON value: {exc}") from None
        return self

    @property
    def has_equals(self) -> bool:
        """True when `equals` was given, even as null."""
        return "equals" in self.model_fields_set

    @model_serializer(mode="wrap")
    def _drop_unset_equals(self, handler: SerializerFunctionWrapHandler) -> Any:
        # A dump must read back the same: `equals: null` would turn "not given" into "is null".
        data = handler(self)
        if isinstance(data, dict) and not self.has_equals:
            data.pop("equals", None)
        return data

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        # Without this the wrap serializer shows in the docs as an untyped object.
        return handler(_without_serializer(schema))


class HeaderAssertion(BaseModel):
    """A response header: present (the default), absent, equal to a value or matching a regex."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        min_length=1,
        max_length=256,
        description='Header name, any case; repeated headers are joined with ", ".',
        examples=["content-type"],
    )
    equals: str | None = Field(
        None,
        max_length=1024,
        description="The value must be exactly this (case-sensitive).",
        examples=["no-store"],
    )
    matches: Pattern | None = Field(
        None,
        description="A regex (Python `regex` syntax) searched for in the value.",
        examples=["^application/json"],
    )
    exists: bool | None = Field(
        None,
        description="false: the header must be absent. Alone, or with nothing else given, "
        "true is the default: the header must be present.",
        examples=[False],
    )

    @field_validator("name")
    @classmethod
    def _token(cls, value: str) -> str:
        if not _TOKEN.fullmatch(value):
            raise ValueError("not a valid header name")
        return value.lower()

    @model_validator(mode="after")
    def _consistent(self) -> HeaderAssertion:
        if self.exists is False and (self.equals is not None or self.matches is not None):
            raise ValueError("`exists: false` cannot be combined with `equals` or `matches`")
        return self


class Assertions(BaseModel):
    """Conditions on an answer, all evaluated. Latency and certificate failures make the check
    `degraded`; any other failure makes it `down`."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "max_latency_ms": 500,
                    "body_contains": ["healthy"],
                    "json_path": [{"path": "$.status", "equals": "ok"}],
                    "headers": [{"name": "content-type", "matches": "json"}],
                    "min_days_left": 14,
                }
            ]
        },
    )

    max_latency_ms: float | None = Field(
        None, gt=0, description="Slower answers are `degraded`.", examples=[500]
    )
    body_contains: list[Needle] = Field(
        default_factory=list,
        max_length=20,
        description="Texts the body must contain. Only the bytes read (max_body_bytes) are "
        "searched, after decoding with the Content-Type charset (else UTF-8).",
        examples=[["healthy"]],
    )
    body_not_contains: list[Needle] = Field(
        default_factory=list,
        max_length=20,
        description="Texts the body must not contain, within the bytes read.",
        examples=[["error", "maintenance"]],
    )
    body_regex: Pattern | None = Field(
        None,
        description="A regex (Python `regex` syntax) searched for in the body read; each "
        "search may take 0.1 s at most, a timeout counts as a failure.",
        examples=[r'"version":\s*"2\.'],
    )
    json_path: list[JsonPathAssertion] = Field(
        default_factory=list,
        max_length=20,
        description="Conditions on the JSON body; a truncated or invalid body fails them all.",
    )
    headers: list[HeaderAssertion] = Field(
        default_factory=list, max_length=20, description="Conditions on response headers."
    )
    min_days_left: int | None = Field(
        None,
        ge=0,
        description="TLS certificate days before expiry; fewer is `degraded`. Skipped for "
        "plain http answers.",
        examples=[14],
    )

    @property
    def needs_body(self) -> bool:
        """True when an assertion reads the body, so the engine must keep its bytes."""
        return bool(
            self.body_contains or self.body_not_contains or self.body_regex or self.json_path
        )


class FailedAssertion(BaseModel):
    """One assertion the answer failed, with what was expected and what was seen."""

    model_config = ConfigDict(frozen=True)

    assertion: str = Field(
        description="Which assertion: `body_contains`, `body_not_contains`, `body_regex`, "
        "`json_path <path>`, `header <name>`, `max_latency_ms` or `min_days_left`.",
        examples=["json_path $.status"],
    )
    expected: str = Field(description="What it asked for.", examples=['equals "ok"'])
    actual: str = Field(
        description=f"What was seen, cut to {MAX_SHOWN} characters.", examples=['"starting"']
    )
    severity: Literal["degraded", "down"] = Field(
        description="`degraded` for max_latency_ms and min_days_left, `down` otherwise."
    )

    @field_validator("expected", "actual")
    @classmethod
    def _clip(cls, value: str) -> str:
        return clip(value)
