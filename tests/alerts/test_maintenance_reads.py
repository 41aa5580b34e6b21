"""A monitor inside a maintenance window shows `maintenance` in every read of it (the
monitor, the list, the summary); outside one, or paused, it shows what it did before."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.alerts.test_api import Service


@pytest.fixture
def service() -> Iterator[Service]:
    started = Service()
    yield started
    started.close()


def monitor(service: Service, slug: str, **values: Any) -> int:
    body = {"name": slug, "slug": slug, "url": "http://127.0.0.1:9/", "group": "shop", **values}
    created = service.client.post("/v1/monitors", json=body)
    assert created.status_code == 201, created.text
    return int(created.json()["id"])


def states(service: Service) -> dict[str, tuple[str, str, str]]:
    """Each monitor's state as its own read, the list and the summary show it."""
    api = service.client
    listed = {m["slug"]: m["state"] for m in api.get("/v1/monitors").json()["monitors"]}
    summary = {m["slug"]: m["state"] for m in api.get("/v1/monitors-summary").json()["monitors"]}
    return {
        slug: (api.get(f"/v1/monitors/{slug}").json()["state"], listed[slug], summary[slug])
        for slug in listed
    }


def test_a_window_shows_maintenance_in_every_read_until_it_is_removed(service: Service) -> None:
    monitor(service, "covered")
    monitor(service, "elsewhere", group="web")
    monitor(service, "paused", paused=True)
    now = datetime.now(UTC)
    window = {
        "name": "now",
        "match_group": "shop",
        "starts_at": (now - timedelta(minutes=5)).isoformat(),
        "ends_at": (now + timedelta(hours=1)).isoformat(),
    }
    created = service.client.post("/v1/maintenance", json=window)
    assert created.status_code == 201, created.text
    shown = states(service)
    assert shown["covered"] == ("maintenance",) * 3
    assert shown["elsewhere"][0] != "maintenance"
    assert "maintenance" not in shown["elsewhere"]
    assert shown["paused"][:2] == ("paused", "paused")  # paused wins over maintenance

    assert service.client.delete(f"/v1/maintenance/{created.json()['id']}").status_code == 204
    assert "maintenance" not in states(service)["covered"]
