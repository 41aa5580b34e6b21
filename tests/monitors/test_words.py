"""Slugs and masking: the small rules every read, route and label depends on."""

from __future__ import annotations

import pytest

from app.monitors.masking import mask_data, mask_url, scrub, secrets_of
from app.monitors.merge import merge_patch
from app.monitors.slugs import slug_problem, slugify, unique_slug


@pytest.mark.parametrize(
    ("name", "slug"),
    [
        ("Web home", "web-home"),
        ("  API: /health!! ", "api-health"),
        ("Café Zürich", "cafe-zurich"),
        ("日本", "monitor"),
        ("2024", "monitor-2024"),
        ("Reload", "monitor-reload"),
        ("x" * 100, "x" * 64),
    ],
)
def test_a_name_suggests_a_slug(name: str, slug: str) -> None:
    assert slugify(name) == slug
    assert slug_problem(slug) is None


def test_a_taken_slug_gets_the_first_free_suffix_within_64_characters() -> None:
    assert unique_slug("web", {"web", "web-2"}) == "web-3"
    long = "y" * 64
    assert unique_slug(long, {long}) == "y" * 62 + "-2"


@pytest.mark.parametrize("slug", ["", "-a", "a-", "A", "a_b", "123", "summary", "x" * 65])
def test_a_bad_slug_says_why(slug: str) -> None:
    assert slug_problem(slug)


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        (
            "https://u:p@example.org/a?token=t&x=1#f",
            "https://***:***@example.org/a?token=***&x=***#f",
        ),
        ("https://user@example.org/", "https://***@example.org/"),
        ("http://127.0.0.1:8080/p?bare-token", "http://127.0.0.1:8080/p?***"),
        ("http://127.0.0.1/p", "http://127.0.0.1/p"),
    ],
)
def test_a_url_shows_no_credentials_or_query_values(url: str, masked: str) -> None:
    assert mask_url(url) == masked


def test_secrets_are_scrubbed_from_text_as_written_and_decoded() -> None:
    secrets = secrets_of("http://127.0.0.1/?token=a%2Fbcd", {"Authorization": "Bearer xyz1"})
    text = "failed for http://127.0.0.1/?token=a%2Fbcd (a/bcd) with Bearer xyz1"
    assert scrub(text, secrets) == "failed for http://127.0.0.1/?token=*** (***) with ***"


def test_a_result_is_masked_in_its_urls_and_messages() -> None:
    secrets = secrets_of("http://h/?k=secret1")
    result = {
        "url": "http://h/?k=secret1",
        "redirects": [{"url": "http://h/?k=secret1", "location": "http://i/?z=other"}],
        "error": {"kind": "connect", "message": "no answer from http://h/?k=secret1"},
    }
    assert mask_data(result, secrets) == {
        "url": "http://h/?k=***",
        "redirects": [{"url": "http://h/?k=***", "location": "http://i/?z=***"}],
        "error": {"kind": "connect", "message": "no answer from http://h/?k=***"},
    }


def test_a_merge_patch_follows_rfc_7396() -> None:
    # RFC 7396, section 3's example.
    target = {"a": "b", "c": {"d": "e", "f": "g"}}
    assert merge_patch(target, {"a": "z", "c": {"f": None}}) == {"a": "z", "c": {"d": "e"}}
    assert merge_patch({"a": [1]}, {"a": [2]}) == {"a": [2]}
    assert merge_patch({"a": 1}, {"b": {"c": None}}) == {"a": 1, "b": {}}
