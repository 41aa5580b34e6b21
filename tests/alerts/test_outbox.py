"""The outbox rows a monitor's confirmed state changes write, in the recorder's transaction:
which changes alert, to which channels, once per transition, reminders and maintenance."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select

from app.alerts import admin, ticker
from app.alerts.maintenance import covered_now, shown_state
from app.alerts.outbox import AlertHook
from app.alerts.retention import prune_outbox
from app.alerts.rules import alert_key
from app.db.schema import alert_attempts, alert_outbox, channels, maintenance_windows, monitors
from app.monitors.recorder import Recorder, to_ms, write_check
from tests.support.alerts import add_channel, add_rule, record
from tests.support.monitors import T0, HistoryStore, add_monitor, check

HOOK = "http://127.0.0.1:9/hook"


def rows(store: HistoryStore, monitor_id: int | None = None) -> list[Any]:
    query = select(alert_outbox).order_by(alert_outbox.c.id)
    if monitor_id is not None:
        query = query.where(alert_outbox.c.monitor_id == monitor_id)
    with store.database.engine.connect() as connection:
        return list(connection.execute(query))


def kinds(found: list[Any]) -> list[tuple[str, int, str]]:
    return [(r.kind, r.channel_id, r.status) for r in found]


def setup(store: HistoryStore, **rule: Any) -> tuple[Recorder, int, int, int]:
    """Two channels, a catch-all rule to both, a monitor; the recorder with the hook."""
    a = add_channel(store.database, store.writer, "Ops A", HOOK)
    b = add_channel(store.database, store.writer, "Ops B", HOOK)
    add_rule(store.writer, "everyone", ["ops-a", "ops-b"], **rule)
    m = add_monitor(store.database, "api")
    return Recorder(store.writer, on_transition=AlertHook()), m, a, b


def test_one_blip_writes_no_alert(store: HistoryStore) -> None:
    recorder, m, _, _ = setup(store)
    record(recorder, m, ["up", "up", "down", "up", "up"])
    assert rows(store) == []


def test_failures_past_the_threshold_write_exactly_one_down_per_channel(
    store: HistoryStore,
) -> None:
    recorder, m, a, b = setup(store)
    made = record(recorder, m, ["up", "up", *["down"] * 6])
    assert [(t.from_state, t.to_state) for t in made] == [("unknown", "up"), ("up", "down")]
    found = rows(store, m)
    assert kinds(found) == [("down", a, "pending"), ("down", b, "pending")]
    first = found[0]
    assert first.key != found[1].key
    assert first.payload["key"] == first.key
    assert first.payload["to_state"] == "down"
    assert first.payload["since"] == (T0 + timedelta(minutes=2)).isoformat()
    assert first.payload["url"] == "http://127.0.0.1:9/api"  # no credentials, no query
    assert "secret" not in str(first.payload)


def test_the_same_transition_replayed_adds_no_row(store: HistoryStore) -> None:
    recorder, m, _, _ = setup(store)
    (_, down) = record(recorder, m, ["up", "up", "down", "down", "down"])
    hook = AlertHook()
    store.writer.submit(lambda c: hook(c, down)).result(10)
    assert len(rows(store, m)) == 2


def test_recovery_writes_exactly_one_resolved_per_channel(store: HistoryStore) -> None:
    recorder, m, a, b = setup(store)
    record(recorder, m, ["up", "up", *["down"] * 3, *["up"] * 4])
    assert kinds(rows(store, m)) == [
        ("down", a, "pending"),
        ("down", b, "pending"),
        ("resolved", a, "pending"),
        ("resolved", b, "pending"),
    ]


def test_degraded_alerts_only_when_the_rule_asks(store: HistoryStore) -> None:
    recorder, m, _, _ = setup(store)
    record(recorder, m, ["up", "up", *["degraded"] * 3, "up", "up"])
    assert rows(store, m) == []  # not alerted: no resolved either

    recorder2, m2, a, _ = _second(store, on_degraded=True)
    record(recorder2, m2, ["up", "up", *["degraded"] * 3])
    assert [r.kind for r in rows(store, m2)] == ["degraded"]
    assert rows(store, m2)[0].channel_id == a


def _second(store: HistoryStore, **rule: Any) -> tuple[Recorder, int, int, int]:
    c = add_channel(store.database, store.writer, "Slow", HOOK)
    add_rule(store.writer, "slow ones", ["slow"], match_labels={"tier": "slow"}, **rule)
    m = add_monitor(store.database, "slow-api", labels={"tier": "slow"})
    return Recorder(store.writer, on_transition=AlertHook()), m, c, c


def test_a_label_rule_wins_over_a_group_rule_and_the_monitor_over_both(
    store: HistoryStore,
) -> None:
    for name in ("By Group", "By Label", "Own"):
        add_channel(store.database, store.writer, name, HOOK)
    add_rule(store.writer, "group", ["by-group"], match_group="shop")
    add_rule(store.writer, "label", ["by-label"], match_labels={"team": "pay"})
    grouped = add_monitor(store.database, "cart", group_name="shop")
    labelled = add_monitor(store.database, "pay", group_name="shop", labels={"team": "pay"})
    own = add_monitor(
        store.database,
        "own",
        group_name="shop",
        labels={"team": "pay"},
        alerts={"channels": ["own"]},
    )
    muted = add_monitor(store.database, "muted", group_name="shop", alerts={"channels": []})
    recorder = Recorder(store.writer, on_transition=AlertHook())
    for m in (grouped, labelled, own, muted):
        record(recorder, m, ["down"] * 3)
    with store.database.engine.connect() as connection:
        slugs = {row.id: row.slug for row in connection.execute(select(channels))}
    assert [slugs[r.channel_id] for r in rows(store, grouped)] == ["by-group"]
    assert [slugs[r.channel_id] for r in rows(store, labelled)] == ["by-label"]
    assert [slugs[r.channel_id] for r in rows(store, own)] == ["own"]
    assert rows(store, muted) == []


def test_reminders_come_once_per_interval_while_down(store: HistoryStore) -> None:
    recorder, m, _, _ = setup(store, reminder_interval_s=600)
    (down,) = record(recorder, m, ["down"] * 3)
    since = down.since

    def tick(after_s: float) -> int:
        return store.writer.submit(
            lambda c: ticker.tick(c, since + timedelta(seconds=after_s))
        ).result(10)

    assert tick(599) == 0
    assert tick(601) == 2  # one per channel
    assert tick(900) == 0  # the same reminder, not again
    assert tick(1201) == 2
    reminders = [r for r in rows(store, m) if r.kind == "reminder"]
    assert len(reminders) == 4
    assert len({r.key for r in reminders}) == 4
    record(recorder, m, ["up", "up"], start=10)
    assert tick(1801) == 0  # up: no more reminders


def add_window(store: HistoryStore, **values: Any) -> int:
    row = {"name": "deploy", "match_labels": {}, **values}
    return store.writer.submit(lambda c: admin.add(c, maintenance_windows, row)).result(10)


def test_maintenance_holds_the_alert_and_sends_it_if_still_down_when_it_ends(
    store: HistoryStore,
) -> None:
    recorder, m, a, b = setup(store)
    end = T0 + timedelta(minutes=30)
    add_window(store, monitor_id=m, starts_at=T0, ends_at=end)
    record(recorder, m, ["up", "up", *["down"] * 4])
    assert kinds(rows(store, m)) == [("down", a, "held"), ("down", b, "held")]

    def tick(at: Any) -> int:
        return store.writer.submit(lambda c: ticker.tick(c, at)).result(10)

    assert tick(end - timedelta(seconds=1)) == 0
    assert tick(end) == 2
    assert kinds(rows(store, m)) == [("down", a, "pending"), ("down", b, "pending")]


def test_maintenance_silences_what_recovered_inside_it(store: HistoryStore) -> None:
    recorder, m, _, _ = setup(store)
    end = T0 + timedelta(hours=1)
    add_window(store, match_group="web", starts_at=T0, ends_at=end)
    store.writer.submit(
        lambda c: c.execute(monitors.update().where(monitors.c.id == m).values(group_name="web"))
    ).result(10)
    record(recorder, m, ["up", "up", *["down"] * 3, "up", "up"])
    assert [r.status for r in rows(store, m)] == ["held"] * 4
    assert store.writer.submit(lambda c: ticker.tick(c, end)).result(10) == 0
    assert [r.status for r in rows(store, m)] == ["silenced"] * 4


def test_a_recurring_window_follows_its_time_zone(store: HistoryStore) -> None:
    # T0 is Tuesday 2026-12-01 00:00 UTC = 01:00 in Paris (UTC+1 in winter).
    recorder, m, _, _ = setup(store)
    add_window(
        store,
        monitor_id=m,
        weekdays=[1],
        start_time="00:30",
        duration_s=3600,
        timezone="Europe/Paris",
    )
    record(recorder, m, ["down"] * 3)  # confirmed at 00:02 UTC = 01:02 Paris: inside
    assert [r.status for r in rows(store, m)] == ["held", "held"]
    after = T0 + timedelta(minutes=31)  # 01:31 Paris: the window ended at 01:30
    assert store.writer.submit(lambda c: ticker.tick(c, after)).result(10) == 2


def test_the_key_is_stable_per_transition(store: HistoryStore) -> None:
    recorder, m, a, _ = setup(store)
    (down,) = record(recorder, m, ["down"] * 3)
    (row, _) = rows(store, m)
    assert row.key == alert_key(m, to_ms(down.since), "down", a)
    # a write_check of the same result does not replay a transition (state already down)
    assert (
        store.writer.submit(lambda c: write_check(c, m, 1, T0, check("down"), AlertHook())).result(
            10
        )
        is None
    )


def test_retention_deletes_final_rows_and_their_attempts_never_owed_ones(
    store: HistoryStore,
) -> None:
    recorder, m, _, _ = setup(store)
    record(recorder, m, ["down"] * 3)
    sent, owed = rows(store, m)
    now = sent.created_at + timedelta(days=31)

    def write(c: Any) -> None:
        c.execute(alert_outbox.update().where(alert_outbox.c.id == sent.id).values(status="sent"))
        c.execute(
            alert_attempts.insert().values(
                outbox_id=sent.id, at=T0, ok=True, status_code=200, duration_ms=1.0
            )
        )

    store.writer.submit(write).result(10)
    kept = store.writer.submit(lambda c: prune_outbox(c, before=now - timedelta(days=40)))
    assert kept.result(10).rows == 0
    pruned = store.writer.submit(lambda c: prune_outbox(c, before=now - timedelta(days=30)))
    assert pruned.result(10).rows == 2  # the sent row and its attempt
    assert [r.id for r in rows(store, m)] == [owed.id]


def test_reads_show_maintenance_for_the_monitors_a_window_covers_now(
    store: HistoryStore,
) -> None:
    web = add_monitor(store.database, "web", group_name="web")
    add_monitor(store.database, "db", group_name="db")
    add_window(store, match_group="web", starts_at=T0, ends_at=T0 + timedelta(hours=1))
    with store.database.engine.connect() as connection:
        assert covered_now(connection, T0 + timedelta(minutes=5)) == {web}
        assert covered_now(connection, T0 + timedelta(hours=1)) == set()
    assert shown_state("down", False, True) == "maintenance"
    assert shown_state("down", True, True) == "paused"
    assert shown_state("down", False, False) == "down"


def test_a_held_alert_of_a_monitor_deleted_in_the_window_is_silenced(store: HistoryStore) -> None:
    recorder, m, _, _ = setup(store)
    end = T0 + timedelta(hours=1)
    add_window(store, starts_at=T0, ends_at=end)  # every monitor
    record(recorder, m, ["down"] * 3)
    store.writer.submit(lambda c: c.execute(monitors.delete().where(monitors.c.id == m))).result(10)
    assert store.writer.submit(lambda c: ticker.tick(c, end)).result(10) == 0
    assert [r.status for r in rows(store, m)] == ["silenced", "silenced"]
