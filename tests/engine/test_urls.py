"""URL acceptance and duplicate detection."""

from __future__ import annotations

import pytest

from app.engine.urls import dedupe_key, normalize_url

MAX = 2048


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("http://example.com", "http://example.com"),
        ("https://example.com/path?q=1#frag", "https://example.com/path?q=1#frag"),
        ("HTTP://Example.COM/", "http://example.com/"),
        ("http://example.com:8080/", "http://example.com:8080/"),
        ("http://example.com:65535/", "http://example.com:65535/"),
        ("http://127.0.0.1:1/", "http://127.0.0.1:1/"),
        ("http://[::1]:8080/", "http://[::1]:8080/"),
        ("http://bücher.example/", "http://xn--bcher-kva.example/"),
    ],
)
def test_normalize_url_accepts_http_and_https(raw: str, normalized: str) -> None:
    assert normalize_url(raw, MAX) == normalized


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        ("ftp://example.com/", "scheme"),
        ("file:///etc/passwd", "scheme"),
        ("javascript:alert(1)", "scheme"),
        ("//example.com/", "scheme"),
        ("example.com", "scheme"),
        ("http://user:pw@example.com/", "credentials"),
        ("http://user@example.com/", "credentials"),
        ("http://exa mple.com/", "whitespace"),
        ("http://example.com/a b", "whitespace"),
        ("http://example.com/\t", "whitespace"),
        (" http://example.com/", "whitespace"),
        ("http://example.com\n/", "whitespace"),
        ("http://example.com:0/", "port"),
        ("http://example.com:99999/", "port"),
        ("http:///path", "host"),
        ("", "empty"),
        ("http://☃.com/", "valid URL"),
        ("http://xn--zz.com/", r"\w"),
        ("http://xn--/", r"\w"),
    ],
)
def test_normalize_url_rejects_with_a_reason(raw: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        normalize_url(raw, MAX)


def test_normalize_url_rejects_urls_longer_than_the_limit() -> None:
    url = "http://example.com/" + "a" * 31  # 50 characters
    assert normalize_url(url, 50) == url
    with pytest.raises(ValueError, match="longer than 50"):
        normalize_url(url + "a", 50)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("http://A.com", "http://a.com:80/"),
        ("HTTP://A.com:80/", "http://a.com"),
        ("https://a.com", "https://a.com:443/"),
        ("http://a.com/x?q=1", "http://A.COM:80/x?q=1"),
        ("http://a.com/p#one", "http://a.com/p#two"),
    ],
)
def test_dedupe_key_equates_spellings_of_one_resource(a: str, b: str) -> None:
    assert dedupe_key(a) == dedupe_key(b)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("http://a.com/", "https://a.com/"),
        ("http://a.com/", "http://a.com:8080/"),
        ("http://a.com/x", "http://a.com/y"),
        ("http://a.com/?q=1", "http://a.com/?q=2"),
        ("http://a.com/", "http://b.com/"),
        ("https://a.com:80/", "http://a.com/"),
    ],
)
def test_dedupe_key_keeps_different_resources_apart(a: str, b: str) -> None:
    assert dedupe_key(a) != dedupe_key(b)
