"""Per-check options: the expected-status parser and the status test."""

from __future__ import annotations

import pytest

from app.engine.options import CheckOptions, parse_status_ranges


@pytest.mark.parametrize(
    ("spec", "ranges"),
    [
        ("200-299,304", ((200, 299), (304, 304))),
        ("200", ((200, 200),)),
        (" 200 - 299 , 404 ", ((200, 299), (404, 404))),
        ("200-299,,304,", ((200, 299), (304, 304))),
        ("100-599", ((100, 599),)),
        ("599", ((599, 599),)),
        ([200, "300-399"], ((200, 200), (300, 399))),
        (["204"], ((204, 204),)),
    ],
)
def test_parse_status_ranges_accepts_codes_and_ranges(
    spec: str | list[int | str], ranges: tuple[tuple[int, int], ...]
) -> None:
    assert parse_status_ranges(spec) == ranges


@pytest.mark.parametrize(
    "spec",
    [
        "abc",
        "99",
        "600",
        "300-200",
        "0",
        "-200",
        "200-",
        "200-300-400",
        "2xx",
        "200;300",
        "",
        ",",
        [],
        [99],
        ["200-abc"],
    ],
)
def test_parse_status_ranges_rejects_invalid_specs(spec: str | list[int | str]) -> None:
    with pytest.raises(ValueError, match=r"."):
        parse_status_ranges(spec)


@pytest.mark.parametrize(
    ("code", "expected"),
    [(199, False), (200, True), (299, True), (300, False), (303, False), (304, True), (305, False)],
)
def test_status_expected_is_inclusive_on_both_ends(code: int, expected: bool) -> None:
    options = CheckOptions(expected_status=parse_status_ranges("200-299,304"))
    assert options.status_expected(code) is expected


def test_default_options_expect_200_to_399() -> None:
    options = CheckOptions()
    assert options.status_expected(200)
    assert options.status_expected(399)
    assert not options.status_expected(400)
    assert not options.status_expected(199)
