"""Channels from the monitors file kept in step with it (added, changed, removed; a name the
API owns refused), and how rules combine (pure)."""

from __future__ import annotations

from app.alerts.contract import Senders
from app.alerts.rules import Rule, RuleRow, kind_of, resolve
from app.alerts.service import Alerts
from tests.support.alerts import Codec, send
from tests.support.monitors import HistoryStore


def alerts_for(store: HistoryStore) -> Alerts:
    return Alerts(store.database, store.writer, Senders(Codec(), send, None), "me")


def test_file_channels_follow_the_file_and_never_take_an_api_name(store: HistoryStore) -> None:
    alerts = alerts_for(store)
    hook = {"kind": "webhook", "url": "http://127.0.0.1:9/a"}
    assert alerts.sync_file_channels([("Pager", hook), ("Chat", hook)]) == []
    assert [(c.slug, c.source) for c in alerts.channels(0, 10)] == [
        ("pager", "file"),
        ("chat", "file"),
    ]
    alerts.create_channel("Api Owned", hook)
    refused = alerts.sync_file_channels([("Api Owned", hook)])
    assert refused == ["'Api Owned' is defined over the API: rename one of them"]
    bad = alerts.sync_file_channels([("Pager", {"kind": "webhook"})])
    assert len(bad) == 1
    assert bad[0].startswith("channel 'Pager':")
    assert len(alerts.channels(0, 10)) == 3  # neither changed anything

    changed = {**hook, "max_batch": 5}
    assert alerts.sync_file_channels([("Pager", changed)]) == []
    found = {c.slug: c for c in alerts.channels(0, 10)}
    assert set(found) == {"pager", "api-owned"}  # chat left the file
    assert found["pager"].config["max_batch"] == 5


RULES = [
    RuleRow(None, {}, Rule(("everyone",))),
    RuleRow("shop", {}, Rule(("shop",), reminder_interval_s=600)),
    RuleRow("shop", {}, Rule(("shop-2",), on_degraded=True, reminder_interval_s=300)),
    RuleRow(None, {"team": "pay"}, Rule(("pay",))),
]


def test_the_most_specific_rules_decide_and_combine() -> None:
    assert resolve(RULES, None, {}, None) == Rule(("everyone",))
    assert resolve(RULES, "shop", {}, None) == Rule(
        ("shop", "shop-2"), on_degraded=True, reminder_interval_s=300
    )
    assert resolve(RULES, "shop", {"team": "pay"}, None) == Rule(("pay",))


def test_a_monitors_own_fields_win_and_null_inherits() -> None:
    own = resolve(RULES, "shop", {}, {"channels": None, "on_degraded": False})
    assert own == Rule(("shop", "shop-2"), on_degraded=False, reminder_interval_s=300)
    assert resolve(RULES, "shop", {}, {"reminder_interval_s": None}) is not None
    assert resolve(RULES, None, {}, {"channels": []}) is None
    assert resolve([], None, {}, {"channels": ["mine"]}) == Rule(("mine",))


def test_resolved_only_for_an_incident_that_was_alerted() -> None:
    down_only = Rule(("c",))
    assert kind_of(down_only, "down", "up", "down") == "resolved"
    assert kind_of(down_only, "degraded", "up", "degraded") is None
    assert kind_of(down_only, "unknown", "up", None) is None
    assert kind_of(down_only, "up", "degraded", None) is None
    assert kind_of(Rule(("c",), send_on_resolved=False), "down", "up", "down") is None
