"""The monitors file synced to the table, through a real service: loaded at start, reloaded
on POST /v1/monitors/reload; a bad file or a clash with an API monitor changes nothing;
file monitors are read-only over the API."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import RunningService
from tests.support.backends import url_for

TWO = """
[defaults]
interval_s = 30

[[monitors]]
name = "Alpha"
slug = "alpha"
url = "http://127.0.0.1:9/a"

[[monitors]]
name = "Beta"
slug = "beta"
url = "http://127.0.0.1:9/b"
"""


@pytest.fixture
def monitors_file(tmp_path: Path) -> Path:
    path = tmp_path / "monitors.toml"
    path.write_text(TWO, encoding="utf-8")
    return path


@pytest.fixture
def svc(
    service_factory: Callable[..., RunningService], tmp_path: Path, monitors_file: Path
) -> RunningService:
    return service_factory(
        database_url=f"sqlite:///{tmp_path / 'urlhealth.db'}",
        monitors_file=monitors_file,
        monitor_min_interval_s=2.0,
    )


@pytest.fixture(params=["sqlite", "postgresql"])
def any_svc(
    service_factory: Callable[..., RunningService],
    tmp_path: Path,
    monitors_file: Path,
    request: pytest.FixtureRequest,
) -> RunningService:
    """For the syncs whose statements differ by dialect (bulk insert, renames)."""
    return service_factory(
        database_url=url_for(request.param, tmp_path, request),
        monitors_file=monitors_file,
        monitor_min_interval_s=2.0,
    )


def listed(svc: RunningService) -> dict[str, dict[str, Any]]:
    response = svc.client.get("/v1/monitors")
    assert response.status_code == 200, response.text
    return {m["slug"]: m for m in response.json()["monitors"]}


# Kept by the scheduler and the recorder, not by a reload: the schedule moves on its own.
_RUNTIME = ("next_due_at", "state", "state_since", "pending", "last_checked_at", "last_result")


def definitions(svc: RunningService) -> dict[str, dict[str, Any]]:
    """The monitors as defined, without what running them changes."""
    return {
        slug: {key: value for key, value in monitor.items() if key not in _RUNTIME}
        for slug, monitor in listed(svc).items()
    }


def reload(svc: RunningService) -> Any:
    return svc.client.post("/v1/monitors/reload")


def test_the_file_is_loaded_at_start_as_file_monitors(svc: RunningService) -> None:
    monitors = listed(svc)
    assert sorted(monitors) == ["alpha", "beta"]
    assert {m["source"] for m in monitors.values()} == {"file"}
    assert monitors["alpha"]["interval_s"] == 30


def test_reload_creates_updates_deletes_and_reports_each(
    any_svc: RunningService, monitors_file: Path
) -> None:
    svc = any_svc
    before = listed(svc)
    monitors_file.write_text(
        """
[[monitors]]
name = "Alpha renamed"
slug = "alpha"
url = "http://127.0.0.1:9/a2"

[[monitors]]
name = "Gamma"
url = "http://127.0.0.1:9/c"
interval_s = 30
""",
        encoding="utf-8",
    )
    response = reload(svc)
    assert response.status_code == 200, response.text
    assert response.json() == {
        "created": ["gamma"],
        "updated": ["alpha"],
        "deleted": ["beta"],
        "unchanged": [],
    }
    after = listed(svc)
    assert sorted(after) == ["alpha", "gamma"]
    # The slug was kept: the same monitor (id and history), renamed, a new generation.
    assert after["alpha"]["id"] == before["alpha"]["id"]
    assert after["alpha"]["name"] == "Alpha renamed"
    assert after["alpha"]["generation"] == 2
    # The interval came from the old defaults; without them, the setting's default.
    assert after["alpha"]["interval_s"] == svc.services.settings.monitor_default_interval_s
    again = reload(svc)
    assert again.json()["unchanged"] == ["alpha", "gamma"]


def test_two_monitors_may_swap_names_in_one_reload(
    any_svc: RunningService, monitors_file: Path
) -> None:
    svc = any_svc
    before = listed(svc)
    swapped = (
        TWO.replace('"Alpha"', '"TMP"').replace('"Beta"', '"Alpha"').replace('"TMP"', '"Beta"')
    )
    monitors_file.write_text(swapped, encoding="utf-8")
    response = reload(svc)
    assert response.status_code == 200, response.text
    after = listed(svc)
    assert after["alpha"]["name"] == "Beta"
    assert after["beta"]["name"] == "Alpha"
    assert after["alpha"]["id"] == before["alpha"]["id"]


def test_a_bad_file_changes_nothing_and_names_the_monitor_and_field(
    svc: RunningService, monitors_file: Path
) -> None:
    before = definitions(svc)
    monitors_file.write_text(
        TWO + '\n[[monitors]]\nname = "Broken"\nurl = "http://127.0.0.1:9/"\ninterval_s = 1\n',
        encoding="utf-8",
    )
    response = reload(svc)
    assert response.status_code == 422, response.text
    (error,) = response.json()["detail"]
    assert error["loc"] == ["monitors", 2, "interval_s"]
    assert error["monitor"] == "Broken"
    assert definitions(svc) == before


def test_a_name_an_api_monitor_holds_fails_the_reload(
    svc: RunningService, monitors_file: Path
) -> None:
    api = svc.client.post(
        "/v1/monitors", json={"name": "Gamma", "url": "http://127.0.0.1:9/api", "interval_s": 30}
    )
    assert api.status_code == 201, api.text
    before = definitions(svc)
    monitors_file.write_text(
        TWO + '\n[[monitors]]\nname = "Gamma"\nslug = "g"\nurl = "http://127.0.0.1:9/"\n',
        encoding="utf-8",
    )
    response = reload(svc)
    assert response.status_code == 422, response.text
    (error,) = response.json()["detail"]
    assert error["loc"] == ["monitors", 2, "name"]
    assert "API" in error["msg"]
    assert definitions(svc) == before


def test_file_monitors_are_read_only_over_the_api(svc: RunningService) -> None:
    for response in (
        svc.client.patch("/v1/monitors/alpha", json={"paused": True}),
        svc.client.delete("/v1/monitors/alpha"),
    ):
        assert response.status_code == 409, response.text
        assert "monitors file" in response.json()["detail"][0]["msg"]
    assert listed(svc)["alpha"]["paused"] is False


@pytest.mark.parametrize("fields", [{"name": "Alpha"}, {"name": "Other", "slug": "beta"}])
def test_an_api_create_whose_name_or_slug_the_file_holds_is_409(
    svc: RunningService, fields: dict[str, str]
) -> None:
    body = {"url": "http://127.0.0.1:9/", **fields}
    response = svc.client.post("/v1/monitors", json=body)
    assert response.status_code == 409, response.text
    assert "monitors file" in response.json()["detail"][0]["msg"]


def test_reload_without_a_file_set_is_409(
    service_factory: Callable[..., RunningService],
) -> None:
    response = reload(service_factory())
    assert response.status_code == 409, response.text
    assert "monitors_file" in response.json()["detail"]
