"""The per-monitor families read from the `monitors` table at scrape time, parsed back with
prometheus_client's parser."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta

from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Connection, delete

from app.db.engine import Database
from app.db.schema import monitors
from app.db.writer import Writer
from app.metrics.monitors import MonitorFamilies
from tests.support.monitor_rows import T0, insert_monitors, monitor_row, update_monitor
from tests.support.servers import ThreadedUvicorn

Series = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(families: MonitorFamilies) -> Series:
    text = families.render().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def of(series: Series, name: str, **labels: str) -> float | None:
    """The value of the one series of `name` whose labels include `labels`."""
    found = [v for (n, ls), v in series.items() if n == name and set(labels.items()) <= ls]
    assert len(found) <= 1, (name, labels, found)
    return found[0] if found else None


def test_each_checked_monitor_has_blackbox_probe_series_labelled_monitor_group_url(
    database: Database,
    writer: Writer,
    checked: Callable[..., bytes],
    target: ThreadedUvicorn,
) -> None:
    ok = checked("/status/200")
    failing = checked("/status/500")
    secret_url = target.url.replace("http://", "http://user:pw@") + "/status/200?token=s3cret"
    insert_monitors(
        writer,
        [
            monitor_row(1, secret_url, ok, slug="shop", group="web", state="up"),
            monitor_row(2, f"{target.url}/status/500", failing, slug="api", state="down"),
        ],
    )

    series = scrape(MonitorFamilies(database.engine))

    shop = {"monitor": "shop", "group": "web", "url": f"{target.url}/status/200"}
    assert of(series, "probe_success", **shop) == 1.0
    assert of(series, "probe_http_status_code", **shop) == 200.0
    assert of(series, "probe_http_version", **shop) == 1.1
    assert of(series, "probe_http_redirects", **shop) == 0.0
    assert of(series, "probe_http_ssl", **shop) == 0.0
    duration = of(series, "probe_duration_seconds", **shop)
    assert duration is not None
    assert duration == json.loads(ok)["elapsed_ms"] / 1000
    timings = json.loads(ok)["timings_all_hops_ms"]
    phases = {"resolve": "dns", "connect": "connect", "tls": "tls", "processing": "ttfb"}
    for phase, field in {**phases, "transfer": "transfer"}.items():
        seen = of(series, "probe_http_duration_seconds", phase=phase, **shop)
        assert seen == timings[field] / 1000, phase
    assert of(series, "probe_ssl_earliest_cert_expiry", **shop) is None  # plain http
    assert of(series, "urlhealth_monitor_state", state="up", **shop) == 1.0
    started = datetime.fromisoformat(json.loads(ok)["checked_at"]).timestamp()
    assert of(series, "urlhealth_monitor_last_check_timestamp_seconds", **shop) == started

    api = {"monitor": "api", "group": ""}
    assert of(series, "probe_success", **api) == 0.0
    assert of(series, "probe_http_status_code", **api) == 500.0
    assert of(series, "urlhealth_monitor_state", state="down", **api) == 1.0
    assert of(series, "urlhealth_monitors", state="up") == 1.0
    assert of(series, "urlhealth_monitors", state="down") == 1.0
    # No label anywhere shows the credentials or the query.
    text = MonitorFamilies(database.engine).render().decode()
    assert "pw@" not in text
    assert "s3cret" not in text


def test_paused_and_never_checked_monitors_show_only_their_state_no_probe_series(
    database: Database, writer: Writer, checked: Callable[..., bytes], target: ThreadedUvicorn
) -> None:
    insert_monitors(
        writer,
        [
            monitor_row(1, f"{target.url}/", checked("/status/200"), slug="paused", paused=True),
            monitor_row(2, f"{target.url}/", None, slug="new"),
        ],
    )

    series = scrape(MonitorFamilies(database.engine))

    assert of(series, "urlhealth_monitor_state", monitor="paused", state="paused") == 1.0
    assert of(series, "urlhealth_monitor_state", monitor="new", state="unknown") == 1.0
    probes = [name for (name, labels) in series if name.startswith("probe_")]
    assert probes == []
    assert of(series, "urlhealth_monitor_last_check_timestamp_seconds", monitor="new") is None
    assert of(series, "urlhealth_monitors", state="paused") == 1.0
    assert of(series, "urlhealth_monitors", state="unknown") == 1.0


def test_a_scrape_parses_only_the_results_that_changed_since_the_last_one(
    database: Database, writer: Writer, checked: Callable[..., bytes], target: ThreadedUvicorn
) -> None:
    ok = checked("/status/200")
    insert_monitors(writer, [monitor_row(n, f"{target.url}/", ok) for n in range(1, 6)])
    families = MonitorFamilies(database.engine)
    scrape(families)
    assert families.parsed == 5

    assert scrape(families) == scrape(families)
    assert families.parsed == 5  # nothing changed: nothing read again

    update_monitor(
        writer, 3, last_result=checked("/status/500"), last_checked_at=T0 + timedelta(minutes=1)
    )
    update_monitor(writer, 4, state="down")  # a state change alone needs no parse
    update_monitor(writer, 5, slug="renamed")  # new labels: its lines are made again
    series = scrape(families)

    assert families.parsed == 7
    assert of(series, "probe_success", monitor="monitor-3") == 0.0
    assert of(series, "urlhealth_monitor_state", monitor="monitor-4", state="down") == 1.0
    assert of(series, "urlhealth_monitor_state", monitor="monitor-4", state="unknown") is None
    assert of(series, "probe_success", monitor="monitor-4") == 1.0
    assert of(series, "probe_success", monitor="renamed") == 1.0
    assert of(series, "probe_success", monitor="monitor-5") is None


def test_deleted_monitors_leave_the_output(
    database: Database, writer: Writer, checked: Callable[..., bytes], target: ThreadedUvicorn
) -> None:
    ok = checked("/status/200")
    insert_monitors(writer, [monitor_row(n, f"{target.url}/", ok) for n in (1, 2)])
    families = MonitorFamilies(database.engine)
    scrape(families)

    def remove(connection: Connection) -> None:
        connection.execute(delete(monitors).where(monitors.c.id == 2))

    writer.submit(remove).result(30)
    series = scrape(families)

    assert of(series, "probe_success", monitor="monitor-1") == 1.0
    assert of(series, "probe_success", monitor="monitor-2") is None


def test_an_unreadable_stored_result_gives_no_probe_series_and_no_error(
    database: Database, writer: Writer, target: ThreadedUvicorn
) -> None:
    insert_monitors(writer, [monitor_row(1, f"{target.url}/", b"{not json", state="up")])

    series = scrape(MonitorFamilies(database.engine))

    assert of(series, "probe_success", monitor="monitor-1") is None
    assert of(series, "urlhealth_monitor_state", monitor="monitor-1", state="up") == 1.0


def test_a_paused_monitor_resumed_shows_its_probe_series_again(
    database: Database, writer: Writer, checked: Callable[..., bytes], target: ThreadedUvicorn
) -> None:
    insert_monitors(writer, [monitor_row(1, f"{target.url}/", checked("/status/200"))])
    families = MonitorFamilies(database.engine)
    assert of(scrape(families), "probe_success", monitor="monitor-1") == 1.0

    update_monitor(writer, 1, paused=True)
    assert of(scrape(families), "probe_success", monitor="monitor-1") is None
    update_monitor(writer, 1, paused=False)
    series = scrape(families)

    assert of(series, "probe_success", monitor="monitor-1") == 1.0
    assert of(series, "urlhealth_monitor_state", monitor="monitor-1", state="unknown") == 1.0
