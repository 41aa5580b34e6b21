"""Slack, Discord and Teams senders against receivers that check the payload shapes those
services accept (and answer 400 otherwise, as they do): a burst is one message listing every
alert with its key; only a batch over the size limits is split, into whole-alert parts."""

from __future__ import annotations

import json
import re

import pytest

from app.alerts.channels import (
    DiscordChannel,
    SendOutcome,
    SlackChannel,
    TeamsChannel,
    chat,
    send,
    teams,
)
from app.alerts.channels.text import LINE_MAX, LINK_MAX, NAME_MAX, SUMMARY_MAX, URL_MAX
from app.alerts.message import AlertMessage, channel_test_alert
from app.engine.transport import HttpLayer
from tests.alerts.build import AT, burst, make_alert
from tests.alerts.receivers import (
    ADAPTIVE,
    Answer,
    Receiver,
    discord_shape,
    slack_shape,
    teams_shape,
)

LONG = "x" * 1000  # every clipped field at its longest


def long_burst(count: int) -> list[AlertMessage]:
    return [
        make_alert(n, monitor_name=LONG, url="https://h.example/" + LONG, summary=LONG, link=LONG)
        for n in range(1, count + 1)
    ]


def test_slack_burst_is_one_message_with_every_key(receiver: Receiver, http: HttpLayer) -> None:
    url = receiver.shaped("/slack", slack_shape, Answer(200, "ok"))
    alerts = burst(50)

    outcome = send(SlackChannel(url=url), alerts, http)

    assert (outcome.ok, outcome.status_code, outcome.error) == (True, 200, None)
    (got,) = receiver.received("/slack")
    doc = got.json()
    assert doc["blocks"][0]["text"]["text"] == "50 monitors down"
    sections = "\n".join(b["text"]["text"] for b in doc["blocks"][1:])
    for alert in alerts:
        assert f"key `{alert.key}`" in doc["text"]
        assert f"key `{alert.key}`" in sections
    assert "*DOWN* API 7 — https://api7.example/health?token=***" in doc["text"]


def test_slack_escapes_its_control_characters(receiver: Receiver, http: HttpLayer) -> None:
    url = receiver.shaped("/slack", slack_shape, Answer(200, "ok"))
    alert = make_alert(1, monitor_name="<!channel> & co", summary="a > b")
    assert send(SlackChannel(url=url), [alert], http).ok
    text = receiver.received("/slack")[0].json()["text"]
    assert "&lt;!channel&gt; &amp; co" in text
    assert "<!channel>" not in text


def test_slack_batch_over_its_limits_goes_in_whole_alert_parts(
    receiver: Receiver, http: HttpLayer
) -> None:
    url = receiver.shaped("/slack", slack_shape, Answer(200, "ok"))
    alerts = long_burst(100)

    outcome = send(SlackChannel(url=url, max_batch=100), alerts, http)

    received = receiver.received("/slack")
    assert outcome.ok
    assert outcome.error == f"sent as {len(received)} messages"
    assert len(received) > 1  # 100 lines of ~700 characters: over Slack's 40,000
    texts = [r.json()["text"] for r in received]
    for i, text in enumerate(texts):
        assert text.startswith(f"100 monitors down (part {i + 1} of {len(texts)})")
    every = "\n".join(texts)
    for alert in alerts:
        assert every.count(f"key `{alert.key}`") == 1


def test_a_failing_part_says_how_many_were_delivered(receiver: Receiver, http: HttpLayer) -> None:
    url = receiver.script("/slack-flaky", Answer(200, "ok"), Answer(500, "oops"))
    outcome = send(SlackChannel(url=url, max_batch=100), long_burst(100), http)
    assert (outcome.ok, outcome.retryable, outcome.status_code) == (False, True, 500)
    assert re.fullmatch(
        r"part 2 of (\d+): HTTP 500: oops \(1 of \1 parts delivered before it\)",
        outcome.error or "",
    )


def test_slack_refusal_is_final_and_quoted(receiver: Receiver, http: HttpLayer) -> None:
    url = receiver.script("/slack-gone", Answer(404, "no_service"))
    outcome = send(SlackChannel(url=url), [make_alert(1)], http)
    assert (outcome.ok, outcome.retryable, outcome.error) == (False, False, "HTTP 404: no_service")


def test_discord_burst_is_one_message_without_mentions(receiver: Receiver, http: HttpLayer) -> None:
    url = receiver.shaped("/discord", discord_shape, Answer(204))
    alerts = [make_alert(1, monitor_name="@everyone *now*"), *burst(40)[1:]]

    outcome = send(DiscordChannel(url=url), alerts, http)

    assert (outcome.ok, outcome.status_code) == (True, 204)
    (got,) = receiver.received("/discord")
    doc = got.json()
    assert doc["content"] == "40 monitors down"
    assert doc["allowed_mentions"] == {"parse": []}
    description = "\n".join(e["description"] for e in doc["embeds"])
    assert "@everyone \\*now\\*" in description
    for alert in alerts:
        assert f"key `{alert.key}`" in description


def test_discord_batch_at_its_longest_fits_in_whole_alert_parts(
    receiver: Receiver, http: HttpLayer
) -> None:
    url = receiver.shaped("/discord", discord_shape, Answer(204))
    outcome = send(DiscordChannel(url=url), long_burst(40), http)
    assert outcome.ok, outcome.error
    every = "\n".join(
        e["description"] for r in receiver.received("/discord") for e in r.json()["embeds"]
    )
    assert all(every.count(f"key `m{n}:t{100 + n}:c1`") == 1 for n in range(1, 41))


def test_discord_rate_limit_reports_retry_after(receiver: Receiver, http: HttpLayer) -> None:
    url = receiver.script(
        "/discord-limited", Answer(429, '{"retry_after": 1.5}', {"Retry-After": "2"})
    )
    outcome = send(DiscordChannel(url=url), [make_alert(1)], http)
    assert (outcome.retryable, outcome.retry_after_s) == (True, 2.0)


def test_teams_gets_an_adaptive_card_listing_every_key(receiver: Receiver, http: HttpLayer) -> None:
    url = receiver.shaped("/teams", teams_shape, Answer(202))
    alerts = [make_alert(1), make_alert(2, kind="resolved", from_state="down", to_state="up")]

    outcome = send(TeamsChannel(url=url), alerts, http)

    assert (outcome.ok, outcome.status_code) == (True, 202)
    (got,) = receiver.received("/teams")
    doc = got.json()
    attachment = doc["attachments"][0]
    assert attachment["contentType"] == ADAPTIVE
    card = attachment["content"]
    assert (card["type"], card["version"]) == ("AdaptiveCard", "1.4")
    assert card["body"][0] == {
        "type": "TextBlock",
        "text": "1 monitor down, 1 resolved",
        "weight": "Bolder",
        "size": "Medium",
        "wrap": True,
    }
    containers = card["body"][1:]
    headings = [c["items"][0] for c in containers]
    assert [(h["text"], h["color"]) for h in headings] == [
        ("DOWN: API 1", "Attention"),
        ("RESOLVED: API 2", "Good"),
    ]
    facts = [{f["title"]: f["value"] for f in c["items"][1]["facts"]} for c in containers]
    assert [f["Key"] for f in facts] == [a.key for a in alerts]
    assert facts[0]["Change"] == "up → down at 2026-12-02 14:00:05 UTC (was up 3h 2m)"
    assert facts[0]["Reason"] == "HTTP 500"


def test_teams_burst_of_its_default_batch_is_one_card(receiver: Receiver, http: HttpLayer) -> None:
    url = receiver.shaped("/teams", teams_shape, Answer(202))
    assert send(TeamsChannel(url=url), burst(40), http) == SendOutcome(True, False, 202)
    assert len(receiver.received("/teams")) == 1


def test_teams_batch_at_its_longest_fits_in_28_kb_parts(
    receiver: Receiver, http: HttpLayer
) -> None:
    url = receiver.shaped("/teams", teams_shape, Answer(202))
    outcome = send(TeamsChannel(url=url), long_burst(40), http)
    assert outcome.ok, outcome.error
    keys = [
        fact["value"]
        for r in receiver.received("/teams")
        for c in r.json()["attachments"][0]["content"]["body"][1:]
        for fact in c["items"][1]["facts"]
        if fact["title"] == "Key"
    ]
    assert sorted(keys) == sorted(a.key for a in long_burst(40))
    assert all(len(r.body) <= 28 * 1024 for r in receiver.received("/teams"))


@pytest.mark.parametrize("kind", ["slack", "discord", "teams"])
def test_long_fields_are_clipped_so_one_alert_stays_bounded(kind: str) -> None:
    payload = {
        "slack": chat.slack_payloads,
        "discord": chat.discord_payloads,
        "teams": teams.teams_payloads,
    }[kind](long_burst(1))
    encoded = json.dumps(payload, ensure_ascii=False)
    longest = max(NAME_MAX, URL_MAX, SUMMARY_MAX, LINK_MAX)
    assert "x" * longest not in encoded
    assert len(encoded) < 4 * LINE_MAX  # the alert appears at most twice (Slack), plus markup


def test_a_channel_test_message_reads_as_a_test(receiver: Receiver, http: HttpLayer) -> None:
    url = receiver.shaped("/slack", slack_shape, Answer(200, "ok"))
    alert = channel_test_alert("test:c7:1", AT)
    assert send(SlackChannel(url=url), [alert], http).ok
    text = receiver.received("/slack")[0].json()["text"]
    assert text.splitlines() == [
        "Test alert from urlhealth",
        "*TEST* urlhealth test alert — up → up at 2026-12-02 14:00:05 UTC"
        " — a test message: alerts reach this channel — key `test:c7:1`",
    ]
