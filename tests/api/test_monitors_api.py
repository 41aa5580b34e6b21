"""The monitors CRUD API on a real service over SQLite: create, read, list, merge-patch,
delete, check now; secrets never read back; clashes 409, bad fields 422 naming them."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import RunningService
from tests.support.backends import url_for
from tests.support.servers import ThreadedUvicorn

SECRET_QUERY = "qs-s3cr3t-value"
SECRET_HEADER = "Bearer hdr-t0p-secret"


@pytest.fixture
def svc(service_factory: Callable[..., RunningService], tmp_path: Path) -> RunningService:
    return service_factory(
        database_url=f"sqlite:///{tmp_path / 'urlhealth.db'}", monitor_min_interval_s=2.0
    )


@pytest.fixture(params=["sqlite", "postgresql"])
def any_svc(
    service_factory: Callable[..., RunningService],
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> RunningService:
    """For the tests whose statements differ by dialect (JSON filters, RETURNING ids)."""
    url = url_for(request.param, tmp_path, request)
    return service_factory(database_url=url, monitor_min_interval_s=2.0)


def monitor(name: str = "Web home", **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": name,
        "url": f"http://127.0.0.1:9/health?token={SECRET_QUERY}&env=prod",
        "options": {"headers": {"Authorization": SECRET_HEADER}, "timeout_s": 2},
        "interval_s": 30,
        "group": "web",
        "labels": {"team": "site"},
    }
    body.update(fields)
    return body


def create(svc: RunningService, **fields: Any) -> dict[str, Any]:
    response = svc.client.post("/v1/monitors", json=monitor(**fields))
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def patch(
    svc: RunningService, ref: Any, body: Any, content_type: str = "application/merge-patch+json"
) -> Any:
    return svc.client.patch(
        f"/v1/monitors/{ref}", content=json.dumps(body), headers={"content-type": content_type}
    )


def assert_no_secrets(text: str) -> None:
    assert SECRET_QUERY not in text
    assert "hdr-t0p-secret" not in text


def test_create_answers_201_with_a_slug_and_every_read_masks_the_secrets(
    any_svc: RunningService,
) -> None:
    svc = any_svc
    response = svc.client.post("/v1/monitors", json=monitor())
    assert response.status_code == 201, response.text
    created = response.json()
    assert response.headers["location"] == "/v1/monitors/web-home"
    assert created["slug"] == "web-home"
    assert created["source"] == "api"
    assert created["state"] == "unknown"
    assert created["generation"] == 1
    assert created["url"] == "http://127.0.0.1:9/health?token=***&env=***"
    assert created["options"]["headers"] == {"Authorization": "***"}
    assert created["interval_s"] == 30
    assert created["labels"] == {"team": "site"}
    assert_no_secrets(response.text)
    by_id = svc.client.get(f"/v1/monitors/{created['id']}")
    by_slug = svc.client.get("/v1/monitors/web-home")
    listed = svc.client.get("/v1/monitors")
    for read in (by_id, by_slug, listed):
        assert read.status_code == 200, read.text
        assert_no_secrets(read.text)
    assert by_id.json() == by_slug.json() == created
    assert listed.json()["count"] == 1
    assert listed.json()["monitors"] == [created]


def test_interval_defaults_from_settings(svc: RunningService) -> None:
    body = monitor()
    del body["interval_s"]
    response = svc.client.post("/v1/monitors", json=body)
    assert response.status_code == 201, response.text
    assert response.json()["interval_s"] == svc.services.settings.monitor_default_interval_s


def test_a_duplicate_name_is_409_naming_the_name(svc: RunningService) -> None:
    create(svc)
    response = svc.client.post("/v1/monitors", json=monitor(slug="other"))
    assert response.status_code == 409, response.text
    assert response.json()["detail"][0]["loc"] == ["body", "name"]


def test_a_duplicate_slug_is_409_and_a_derived_one_gets_a_suffix(svc: RunningService) -> None:
    create(svc, slug="home")
    response = svc.client.post("/v1/monitors", json=monitor("Another", slug="home"))
    assert response.status_code == 409, response.text
    assert response.json()["detail"][0]["loc"] == ["body", "slug"]
    assert create(svc, name="Web: home!")["slug"] == "web-home"
    assert create(svc, name="web home")["slug"] == "web-home-2"


def test_an_interval_below_the_minimum_is_422_naming_interval_s(svc: RunningService) -> None:
    response = svc.client.post("/v1/monitors", json=monitor(interval_s=1))
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert [error["loc"] for error in detail] == [["body", "interval_s"]]
    assert "monitor_min_interval_s" in detail[0]["msg"]


@pytest.mark.parametrize(
    ("fields", "loc"),
    [
        ({"url": "ftp://127.0.0.1/"}, ["body", "url"]),
        ({"url": "not a url"}, ["body", "url"]),
        ({"slug": "reload"}, ["body", "slug"]),
        ({"slug": "42"}, ["body", "slug"]),
        ({"slug": "Bad_Slug"}, ["body", "slug"]),
        ({"options": {"timeout_s": 1e6}}, ["body", "options", "timeout_s"]),
        ({"labels": {"bad-name": "x"}}, ["body", "labels"]),
        ({"failure_threshold": 0}, ["body", "failure_threshold"]),
        ({"source": "file"}, ["body", "source"]),
    ],
)
def test_a_bad_field_is_422_naming_it(
    svc: RunningService, fields: dict[str, Any], loc: list[Any]
) -> None:
    response = svc.client.post("/v1/monitors", json=monitor(**fields))
    assert response.status_code == 422, response.text
    assert [error["loc"] for error in response.json()["detail"]] == [loc]


@pytest.mark.parametrize("ref", ["999", "no-such-monitor", "reload", "9" * 40, "\u00b2"])
def test_an_unknown_ref_is_404(svc: RunningService, ref: str) -> None:
    for response in (
        svc.client.get(f"/v1/monitors/{ref}"),
        patch(svc, ref, {"paused": True}),
        svc.client.delete(f"/v1/monitors/{ref}"),
        svc.client.post(f"/v1/monitors/{ref}/check"),
    ):
        assert response.status_code == 404, response.text


def test_patch_merges_null_deletes_and_header_secrets_are_kept(any_svc: RunningService) -> None:
    svc = any_svc
    created = create(svc)
    response = patch(
        svc,
        created["slug"],
        {"group": None, "labels": {"tier": "1"}, "options": {"headers": {"X-Extra": "e"}}},
    )
    assert response.status_code == 200, response.text
    changed = response.json()
    assert changed["group"] is None
    assert changed["labels"] == {"team": "site", "tier": "1"}
    assert changed["options"]["headers"] == {"Authorization": "***", "X-Extra": "***"}
    assert changed["options"]["timeout_s"] == 2
    # Headers changed: a new generation. The stored secret is still the one written.
    assert changed["generation"] == 2
    stored = svc.services.monitors._repository.get(created["slug"])
    assert stored.options["headers"] == {"Authorization": SECRET_HEADER, "X-Extra": "e"}
    # null deletes one header; the rest stay.
    response = patch(svc, created["id"], {"options": {"headers": {"X-Extra": None}}})
    assert response.json()["options"]["headers"] == {"Authorization": "***"}
    stored = svc.services.monitors._repository.get(created["slug"])
    assert stored.options["headers"] == {"Authorization": SECRET_HEADER}


def test_a_read_sent_back_as_a_patch_changes_nothing_secret(svc: RunningService) -> None:
    created = create(svc)
    read = svc.client.get(f"/v1/monitors/{created['id']}").json()
    writable = {k: read[k] for k in ("name", "slug", "url", "options", "interval_s", "paused")}
    response = patch(svc, created["id"], writable, "application/json")
    assert response.status_code == 200, response.text
    assert response.json()["generation"] == 1
    stored = svc.services.monitors._repository.get(created["slug"])
    assert SECRET_QUERY in stored.url
    assert stored.options["headers"] == {"Authorization": SECRET_HEADER}


def test_changing_the_url_bumps_the_generation_and_the_interval_reschedules(
    svc: RunningService,
) -> None:
    created = create(svc)
    rescheduled = patch(svc, created["id"], {"interval_s": 10}).json()
    assert rescheduled["generation"] == 1
    assert rescheduled["next_due_at"] is not None
    moved = patch(svc, created["id"], {"url": "http://127.0.0.1:9/other"}).json()
    assert moved["generation"] == 2
    assert moved["url"] == "http://127.0.0.1:9/other"


def test_a_patch_is_checked_whole(svc: RunningService) -> None:
    created = create(svc)
    for body, loc in (
        ({"interval_s": 1}, ["body", "interval_s"]),
        ({"url": None}, ["body", "url"]),
        ({"id": 5}, ["body", "id"]),
        ({"options": {"timeout_s": "slow"}}, ["body", "options", "timeout_s"]),
    ):
        response = patch(svc, created["id"], body)
        assert response.status_code == 422, response.text
        detail = response.json()["detail"]
        assert [error["loc"] for error in detail] == [loc]
        assert_no_secrets(response.text)
    assert svc.client.get(f"/v1/monitors/{created['id']}").json() == created


def test_a_patch_taking_another_monitors_name_is_409(svc: RunningService) -> None:
    create(svc, name="first")
    second = create(svc, name="second")
    response = patch(svc, second["id"], {"name": "first"})
    assert response.status_code == 409, response.text
    assert response.json()["detail"][0]["loc"] == ["body", "name"]


def test_a_patch_must_be_json(svc: RunningService) -> None:
    created = create(svc)
    response = patch(svc, created["id"], {"paused": True}, "text/plain")
    assert response.status_code == 415, response.text


def test_delete_answers_204_then_the_monitor_is_gone(svc: RunningService) -> None:
    created = create(svc)
    assert svc.client.delete(f"/v1/monitors/{created['slug']}").status_code == 204
    assert svc.client.get(f"/v1/monitors/{created['id']}").status_code == 404
    assert svc.client.get("/v1/monitors").json()["count"] == 0


def test_the_list_filters_by_group_label_state_and_source(any_svc: RunningService) -> None:
    svc = any_svc
    a = create(svc, name="a", group="web", labels={"team": "x"})
    b = create(svc, name="b", group="db", labels={"team": "y"}, paused=True)

    def names(**params: Any) -> list[str]:
        response = svc.client.get("/v1/monitors", params=params)
        assert response.status_code == 200, response.text
        return [m["name"] for m in response.json()["monitors"]]

    assert names(group="web") == ["a"]
    assert names(label="team=y") == ["b"]
    assert names(state="paused") == ["b"]
    assert names(state="unknown") == ["a"]
    assert names(source="api") == ["a", "b"]
    assert names(source="file") == []
    assert names(offset=1, limit=1) == ["b"]
    assert a["state"] == "unknown"
    assert b["state"] == "paused"
    for bad in ("team", '"a"=b', "=x"):
        response = svc.client.get("/v1/monitors", params={"label": bad})
        assert response.status_code == 422, response.text
        assert response.json()["detail"][0]["loc"] == ["query", "label"]


def test_check_now_answers_the_result_with_the_secrets_masked(
    svc: RunningService, target: ThreadedUvicorn
) -> None:
    created = create(svc, url=f"{target.url}/status/200?token={SECRET_QUERY}")
    response = svc.client.post(f"/v1/monitors/{created['id']}/check")
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["ok"] is True
    assert result["url"] == f"{target.url}/status/200?token=***"
    assert_no_secrets(response.text)


def test_check_now_of_a_failing_target_masks_the_error_message(svc: RunningService) -> None:
    # Port 9 on loopback: nothing listens, the connection is refused.
    created = create(svc, url=f"http://127.0.0.1:9/x?token={SECRET_QUERY}")
    response = svc.client.post(f"/v1/monitors/{created['id']}/check")
    assert response.status_code == 200, response.text
    assert response.json()["ok"] is False
    assert_no_secrets(response.text)


def test_a_paused_monitor_is_not_checked_now(svc: RunningService) -> None:
    created = create(svc, paused=True)
    response = svc.client.post(f"/v1/monitors/{created['id']}/check")
    assert response.status_code == 409, response.text
