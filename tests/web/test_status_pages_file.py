"""Status pages defined in the monitors file (`[[status_pages]]`), on a real service: chosen
by label or group, added by a reload, and a bad page failing the reload whole."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import RunningService

MONITORS = """
[[monitors]]
name = "Shop front"
slug = "shop-front"
url = "http://127.0.0.1:9/a"
group = "Shop"
labels = { team = "payments", env = "prod" }

[[monitors]]
name = "Checkout"
slug = "checkout"
url = "http://127.0.0.1:9/b"
group = "Shop"
labels = { team = "payments", env = "staging" }

[[monitors]]
name = "Blog"
slug = "blog"
url = "http://127.0.0.1:9/c"
labels = { team = "payments", env = "prod" }

[[monitors]]
name = "Docs"
slug = "docs"
url = "http://127.0.0.1:9/d"
labels = { team = "web" }
"""

PROD_PAGE = """
[[status_pages]]
slug = "prod-payments"
title = "Payments in production"
labels = { team = "payments", env = "prod" }
"""


@pytest.fixture
def monitors_file(tmp_path: Path) -> Path:
    path = tmp_path / "monitors.toml"
    path.write_text(MONITORS + PROD_PAGE, encoding="utf-8")
    return path


@pytest.fixture
def svc(
    service_factory: Callable[..., RunningService], tmp_path: Path, monitors_file: Path
) -> RunningService:
    return service_factory(
        database_url=f"sqlite:///{tmp_path / 'urlhealth.db'}", monitors_file=monitors_file
    )


def _tiles(svc: RunningService, path: str) -> set[str]:
    html = svc.client.get(path).text
    return {
        slug for slug in ("shop-front", "checkout", "blog", "docs") if f'data-slug="{slug}"' in html
    }


def test_a_page_chosen_by_label_shows_exactly_the_monitors_carrying_every_label(
    svc: RunningService,
) -> None:
    page = svc.client.get("/status/prod-payments")
    assert page.status_code == 200, page.text
    assert "Payments in production" in page.text
    assert _tiles(svc, "/status/prod-payments") == {"shop-front", "blog"}
    states = svc.client.get("/status-tiles.json?group=prod-payments").json()["monitors"]
    assert sorted(m["slug"] for m in states) == ["blog", "shop-front"]
    # Group pages are still there beside the defined ones.
    assert _tiles(svc, "/status/shop") == {"shop-front", "checkout"}


def test_a_reload_that_adds_a_page_makes_it_appear(
    svc: RunningService, monitors_file: Path
) -> None:
    assert svc.client.get("/status/shop-prod").status_code == 404
    monitors_file.write_text(
        MONITORS
        + PROD_PAGE
        + '\n[[status_pages]]\nslug = "shop-prod"\ntitle = "Shop (prod)"\n'
        + 'groups = ["Shop"]\nlabels = { env = "prod" }\n',
        encoding="utf-8",
    )
    response = svc.client.post("/v1/monitors/reload")
    assert response.status_code == 200, response.text
    assert _tiles(svc, "/status/shop-prod") == {"shop-front"}
    assert "Shop (prod)" in svc.client.get("/").text  # named in the pages' navigation


@pytest.mark.parametrize(
    ("table", "field", "words"),
    [
        ('slug = "Not A Slug"\ntitle = "X"\ngroups = ["Shop"]', "slug", "lowercase"),
        ('slug = "prod-payments"\ntitle = "X"\ngroups = ["Shop"]', "slug", "status_pages[0]"),
        ('slug = "empty"\ntitle = "X"', "groups", "selects no monitor"),
    ],
)
def test_an_invalid_page_fails_the_reload_naming_it_and_changes_nothing(
    svc: RunningService, monitors_file: Path, table: str, field: str, words: str
) -> None:
    monitors_file.write_text(
        MONITORS.replace('"Docs"', '"Docs v2"') + PROD_PAGE + f"\n[[status_pages]]\n{table}\n",
        encoding="utf-8",
    )
    response = svc.client.post("/v1/monitors/reload")
    assert response.status_code == 422, response.text
    (error,) = response.json()["detail"]
    assert error["loc"] == ["status_pages", 1, field]
    assert error["where"] == f"status_pages[1]: {field}"
    assert words in error["msg"]
    # Nothing changed: the old page still serves, and the monitors kept their names.
    assert _tiles(svc, "/status/prod-payments") == {"shop-front", "blog"}
    assert svc.client.get("/v1/monitors/docs").json()["name"] == "Docs"
