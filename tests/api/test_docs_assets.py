"""/docs and /redoc load nothing from outside the service, and their pages carry a
Content-Security-Policy that forbids inline scripts (what they load is checked in a real
browser by test_docs_browser.py)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from tests.conftest import RunningService, make_settings
from tests.support.servers import free_port

PAGES = ("/docs", "/redoc")


@pytest.fixture(scope="module")
def shared() -> Iterator[RunningService]:
    svc = RunningService(make_settings(port=free_port()))
    yield svc
    svc.close()


def _references(page: str) -> list[str]:
    return re.findall(r'(?:src|href)="([^"]*)"', page)


@pytest.mark.parametrize("path", PAGES)
def test_a_docs_page_refers_only_to_this_service(shared: RunningService, path: str) -> None:
    page = shared.client.get(path).text

    references = _references(page)

    assert references
    assert [ref for ref in references if not ref.startswith("/")] == []
    for ref in references:
        response = shared.client.get(ref)
        assert response.status_code == 200, ref
        assert response.content, ref


@pytest.mark.parametrize("path", PAGES)
def test_a_docs_page_has_no_inline_script(shared: RunningService, path: str) -> None:
    page = shared.client.get(path).text

    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", page, flags=re.S)

    assert scripts
    assert [body for attrs, body in scripts if body.strip() or "src=" not in attrs] == []


@pytest.mark.parametrize("path", PAGES)
def test_a_docs_page_forbids_inline_scripts_and_framing(shared: RunningService, path: str) -> None:
    response = shared.client.get(path)

    policy = {
        directive.split()[0]: directive.split()[1:]
        for directive in response.headers["content-security-policy"].split(";")
    }
    assert policy["default-src"] == ["'self'"]
    assert "script-src" not in policy  # so default-src 'self' governs scripts
    assert policy["frame-ancestors"] == ["'none'"]
    assert response.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize(
    ("name", "media_type"),
    [
        ("swagger-ui-bundle.js", "text/javascript"),
        ("swagger-ui.css", "text/css"),
        ("swagger-init.js", "text/javascript"),
        ("redoc.standalone.js", "text/javascript"),
    ],
)
def test_the_assets_are_served_with_their_types(
    shared: RunningService, name: str, media_type: str
) -> None:
    response = shared.client.get(f"/docs/static/{name}")

    assert response.status_code == 200
    assert response.headers["content-type"].split(";")[0] == media_type
    assert response.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize("name", ["nothing.js", "..%2Fdocs.py", "%2Fetc%2Fpasswd"])
def test_only_the_known_assets_are_served(shared: RunningService, name: str) -> None:
    response = shared.client.get(f"/docs/static/{name}")

    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/json")
