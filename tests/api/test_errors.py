"""The error renderer: whatever a request held, its error renders as small, valid JSON."""

from __future__ import annotations

import json
from typing import Any

from app.api.errors import ECHO_CHARS, error_response


def _rendered(status: int, detail: Any) -> Any:
    response = error_response(status, detail)
    assert response.status_code == status
    return json.loads(bytes(response.body).decode("utf-8"))["detail"]


def test_text_that_no_encoder_can_write_is_shown_escaped_anywhere_in_an_error() -> None:
    error = {
        "type": "t\udfff",
        "loc": ("body", "key\ud800", 3),
        "msg": "bad \ud83d",
        "input": {"k\ud800": ["v\udc00", float("inf"), float("nan"), b"raw", object()]},
        "ctx": {"error": ValueError("\ud800")},
    }

    (item,) = _rendered(422, [error])

    assert item["loc"] == ["body", "key\\ud800", 3]
    assert item["msg"] == "bad \\ud83d"
    assert item["type"] == "t\\udfff"
    assert item["input"]["k\\ud800"][:3] == ["v\\udc00", "inf", "nan"]
    assert item["ctx"] == {"error": "\\ud800"}


def test_a_long_input_is_cut_and_says_its_length() -> None:
    (item,) = _rendered(422, [{"loc": ("body",), "msg": "m", "type": "t", "input": "x" * 10**6}])

    assert item["input"] == "x" * ECHO_CHARS + "…"
    assert item["input_cut"] == {"length": 10**6}


def test_a_large_structure_is_cut_as_its_json_text() -> None:
    value = {"urls": ["http://a.test/" + "a" * 100] * 1000}

    (item,) = _rendered(422, [{"loc": ("body",), "msg": "m", "type": "t", "input": value}])

    assert item["input"].startswith('{"urls": ["http://a.test/aaa')
    assert len(item["input"]) == ECHO_CHARS + 1
    assert item["input_cut"]["length"] > 100_000


def test_a_plain_detail_renders_too() -> None:
    assert _rendered(500, "internal error: \ud800" + "x" * 5000).startswith(
        "internal error: \\ud800xxx"
    )
