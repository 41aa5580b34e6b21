"""The hop header policy as a pure function: which request headers go on to a redirect's
target (the end-to-end behaviour is pinned in tests/api/test_redirect_headers.py)."""

from __future__ import annotations

import httpx
import pytest

from app.engine.headers import first_hop_headers, keeps_credentials, next_hop_headers

CREDENTIALS = {"Authorization": "a", "Cookie": "c", "Proxy-Authorization": "p"}


@pytest.mark.parametrize(
    ("old", "new", "keep"),
    [
        ("http://h/a", "http://h/b", True),
        ("http://h/a", "http://h:80/b", True),  # the default port, spelled out
        ("https://h/a", "https://h:443/b", True),
        ("http://h:8080/a", "http://h:8080/b", True),
        ("http://H.example/a", "http://h.EXAMPLE/b", True),  # host names are case-insensitive
        # requests' one exception: http on 80 upgraded to https on 443, same host.
        ("http://h/a", "https://h/b", True),
        ("http://h:80/a", "https://h:443/b", True),
        # Any other change of scheme, host or port is another origin.
        ("https://h/a", "http://h/b", False),  # a downgrade
        ("http://h:8080/a", "https://h/b", False),
        ("http://h/a", "https://h:8443/b", False),
        ("http://h/a", "http://h:8080/b", False),
        ("http://h:8080/a", "http://h:8081/b", False),
        ("http://h/a", "http://other/b", False),
        ("http://h/a", "https://other/b", False),
        ("http://127.0.0.1/a", "http://localhost/b", False),
        ("http://[::1]:8080/a", "http://[::1]:8081/b", False),
    ],
)
def test_keeps_credentials_follows_requests_should_strip_auth(
    old: str, new: str, keep: bool
) -> None:
    assert keeps_credentials(httpx.URL(old), httpx.URL(new)) is keep


def test_keeps_credentials_agrees_with_requests_itself() -> None:
    import requests

    session = requests.Session()
    pairs = [
        ("http://h/a", "https://h/b"),
        ("http://h:80/a", "https://h:443/b"),
        ("https://h/a", "http://h/b"),
        ("http://h/a", "http://h:8080/b"),
        ("http://h:8080/a", "https://h:8443/b"),
        ("https://h:443/a", "https://h/b"),
        ("http://a/x", "http://b/x"),
    ]
    for old, new in pairs:
        expected = not session.should_strip_auth(old, new)
        assert keeps_credentials(httpx.URL(old), httpx.URL(new)) is expected, (old, new)


def _next(
    headers: dict[str, str],
    old: str,
    new: str,
    sensitive: frozenset[str] = frozenset(),
    forward: str = "same-origin",
) -> dict[str, str]:
    return next_hop_headers(
        headers,
        httpx.URL(old),
        httpx.URL(new),
        sensitive,
        forward,  # type: ignore[arg-type]
    )


def test_cross_origin_drops_credentials_and_listed_names_whatever_their_case() -> None:
    headers = {**CREDENTIALS, "X-Api-Key": "k", "X-Trace": "t", "cookie": "lower"}

    kept = _next(headers, "http://a/", "http://b/", frozenset({"x-api-key"}))

    assert kept == {"X-Trace": "t"}


def test_same_origin_keeps_everything_but_host() -> None:
    headers = {**CREDENTIALS, "X-Api-Key": "k", "Host": "vhost"}

    kept = _next(headers, "http://a/", "http://a/next", frozenset({"x-api-key"}))

    assert kept == {**CREDENTIALS, "X-Api-Key": "k"}


def test_forward_all_keeps_credentials_but_never_host() -> None:
    headers = {**CREDENTIALS, "X-Api-Key": "k", "host": "vhost"}

    kept = _next(headers, "http://a/", "http://b/", frozenset({"x-api-key"}), "all")

    assert kept == {**CREDENTIALS, "X-Api-Key": "k"}


def test_the_input_is_not_changed() -> None:
    headers = dict(CREDENTIALS)
    _next(headers, "http://a/", "http://b/")
    assert headers == CREDENTIALS


def test_first_hop_headers_let_the_job_replace_a_default_in_any_case() -> None:
    defaults = {"Accept": "*/*", "User-Agent": "urlhealth"}

    merged = first_hop_headers(defaults, {"accept": "text/html", "X-A": "1"})

    assert merged == {"User-Agent": "urlhealth", "accept": "text/html", "X-A": "1"}
    assert defaults == {"Accept": "*/*", "User-Agent": "urlhealth"}
    assert first_hop_headers(defaults, {}) == defaults
