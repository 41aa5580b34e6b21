"""Channels and alert rules in the monitors file: checked with the whole file (a bad one
changes nothing and names its table, index and field), kept in step on reload, read-only
over the API; a file monitor in the group alerts through the file's rule."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.main import create_app
from app.monitors.recorder import Recorder
from app.services import Services
from tests.alerts.test_api import wait_for_alert
from tests.conftest import make_settings
from tests.support.alerts import Receiver, record
from tests.support.servers import ThreadedUvicorn

DOWN = ["up", "up", "down", "down", "down"]


class FileService:
    def __init__(self, path: Path) -> None:
        settings = make_settings(monitors_file=path, alert_scan_interval_s=0.2)
        app = create_app(settings)  # the real senders, through the destination policy
        self.services: Services = app.state.services
        self.server = ThreadedUvicorn(app, port=settings.port).start()
        self.client = httpx.Client(base_url=self.server.url, timeout=30.0, trust_env=False)

    def close(self) -> None:
        self.client.close()
        self.server.stop()


def write(path: Path, hook_url: str, *, rule_group: str = "shop", extra: str = "") -> None:
    path.write_text(
        f"""
[[channels]]
name = "Ops hook"
kind = "webhook"
url = "{hook_url}"
secret = "file-secret"

[[alert_rules]]
name = "Shop down"
match_group = "{rule_group}"
channels = ["ops-hook"]

[[monitors]]
name = "Shop"
slug = "shop"
url = "http://127.0.0.1:9/"
group = "shop"
paused = true
{extra}""",
        encoding="utf-8",
    )


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    started = Receiver()
    yield started
    started.stop()


def names(client: httpx.Client, path: str, key: str) -> list[tuple[str, str]]:
    return [(item["name"], item["source"]) for item in client.get(path).json()[key]]


def test_file_channels_and_rules_load_alert_reload_and_are_read_only(
    tmp_path: Path, receiver: Receiver
) -> None:
    path = tmp_path / "monitors.toml"
    write(path, receiver.url)
    service = FileService(path)
    try:
        api = service.client
        assert names(api, "/v1/channels", "channels") == [("Ops hook", "file")]
        assert names(api, "/v1/alert-rules", "rules") == [("Shop down", "file")]
        assert "file-secret" not in api.get("/v1/channels/ops-hook").text
        # Read-only over the API.
        assert api.patch("/v1/channels/ops-hook", json={"name": "x"}).status_code == 409
        assert api.delete("/v1/channels/ops-hook").status_code == 409
        rule_id = api.get("/v1/alert-rules").json()["rules"][0]["id"]
        assert (
            api.patch(f"/v1/alert-rules/{rule_id}", json={"on_degraded": True}).status_code == 409
        )
        assert api.delete(f"/v1/alert-rules/{rule_id}").status_code == 409

        # The file's rule sends the file's monitor's outage to the file's channel.
        shop = api.get("/v1/monitors/shop").json()
        storage = service.services.storage
        recorder = Recorder(storage.writer, on_transition=service.services.alerts.hook)
        record(recorder, shop["id"], DOWN)
        (alert,) = wait_for_alert(service, monitor="shop", status="sent")  # type: ignore[arg-type]
        assert (alert["kind"], alert["channel"]) == ("down", "ops-hook")

        # A bad channel (and a rule naming an unknown channel): nothing changes, each named.
        path.write_text(
            path.read_text(encoding="utf-8").replace(
                'kind = "webhook"', 'kind = "webhook"\nmax_batch = 0'
            )
            + '\n[[alert_rules]]\nname = "Nowhere"\nchannels = ["nope"]\n',
            encoding="utf-8",
        )
        refused = api.post("/v1/monitors/reload")
        assert refused.status_code == 422, refused.text
        errors = refused.json()["detail"]
        assert [e["loc"] for e in errors] == [["channels", 0, "max_batch"]], errors
        assert errors[0]["where"] == "channels[0] 'Ops hook': max_batch"
        assert names(api, "/v1/alert-rules", "rules") == [("Shop down", "file")]

        # An unknown channel in a rule, alone, is said at reload too (found in the database).
        write(
            path, receiver.url, extra='\n[[alert_rules]]\nname = "Nowhere"\nchannels = ["nope"]\n'
        )
        refused = api.post("/v1/monitors/reload")
        assert refused.status_code == 422, refused.text
        assert [e["loc"] for e in refused.json()["detail"]] == [["alert_rules", 1, "channels"]]

        # So is a file monitor's own alert channel that no channel has.
        write(path, receiver.url, extra='alerts = { channels = ["nope"] }\n')
        refused = api.post("/v1/monitors/reload")
        assert refused.status_code == 422, refused.text
        (problem,) = refused.json()["detail"]
        assert problem["loc"] == ["monitors", 0, "alerts", "channels"]
        assert problem["where"] == "monitors[0] 'Shop': alerts.channels"

        # A good change is synced: the rule changed, a second channel added.
        write(path, receiver.url, rule_group="web")
        path.write_text(
            path.read_text(encoding="utf-8")
            + f'\n[[channels]]\nname = "Second"\nkind = "webhook"\nurl = "{receiver.url}"\n',
            encoding="utf-8",
        )
        assert api.post("/v1/monitors/reload").status_code == 200
        (rule,) = api.get("/v1/alert-rules").json()["rules"]
        assert rule["match_group"] == "web"
        assert names(api, "/v1/channels", "channels") == [("Ops hook", "file"), ("Second", "file")]

        # Gone from the file: gone.
        path.write_text(
            '[[monitors]]\nname = "Shop"\nslug = "shop"\nurl = "http://127.0.0.1:9/"\n',
            encoding="utf-8",
        )
        assert api.post("/v1/monitors/reload").status_code == 200
        assert names(api, "/v1/channels", "channels") == []
        assert names(api, "/v1/alert-rules", "rules") == []
    finally:
        service.close()


def test_a_file_channel_or_rule_may_not_take_a_name_the_api_holds(
    tmp_path: Path, receiver: Receiver
) -> None:
    path = tmp_path / "monitors.toml"
    path.write_text('[[monitors]]\nname = "Shop"\nurl = "http://127.0.0.1:9/"\n', encoding="utf-8")
    service = FileService(path)
    try:
        api = service.client
        config = {"kind": "webhook", "url": receiver.url}
        assert (
            api.post("/v1/channels", json={"name": "Ops hook", "config": config}).status_code == 201
        )
        write(path, receiver.url)
        refused = api.post("/v1/monitors/reload")
        assert refused.status_code == 422, refused.text
        assert [e["loc"] for e in refused.json()["detail"]] == [["channels", 0, "name"]]
        assert api.get("/v1/monitors").json()["count"] == 1  # nothing changed, monitors too
        assert api.get("/v1/monitors/shop").json()["group"] is None
    finally:
        service.close()


def test_an_apprise_channel_is_taken_from_the_file_only(tmp_path: Path) -> None:
    path = tmp_path / "monitors.toml"
    path.write_text(
        '[[channels]]\nname = "Long tail"\nkind = "apprise"\nurls = ["json://127.0.0.1:9/"]\n',
        encoding="utf-8",
    )
    service = FileService(path)
    try:
        api = service.client
        (shown,) = api.get("/v1/channels").json()["channels"]
        assert (shown["kind"], shown["source"]) == ("apprise", "file")
        config: dict[str, Any] = {"kind": "apprise", "urls": ["json://127.0.0.1:9/"]}
        refused = api.post("/v1/channels", json={"name": "Mine", "config": config})
        assert refused.status_code == 422
    finally:
        service.close()
