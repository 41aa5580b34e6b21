"""The monitors file checked as a whole: defaults merged under each monitor, modules, and
errors that name the monitor and the field (never its values)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from app.alerts.filetables import FileTables
from app.alerts.senders import channel_senders
from app.monitors.errors import MonitorsFileError
from app.monitors.file import load
from app.services import destination_policy
from tests.conftest import make_settings

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "monitors.example.toml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "monitors.toml"
    path.write_text(text, encoding="utf-8")
    return path


def errors_of(path: Path) -> list[dict[str, Any]]:
    with pytest.raises(MonitorsFileError) as caught:
        load(path, make_settings(monitor_min_interval_s=2.0))
    return caught.value.errors


def test_the_example_file_loads_and_so_do_its_commented_examples(tmp_path: Path) -> None:
    settings = make_settings()
    shipped = load(EXAMPLE, settings)
    assert shipped.monitors == []
    assert set(shipped.modules) == {"http_2xx", "http_fast"}
    # The examples, uncommented, are a valid file too.
    text = EXAMPLE.read_text(encoding="utf-8")
    head, _, examples = text.partition("# --- examples")
    uncommented = re.sub(r"^# ?", "", examples.split("\n", 1)[1], flags=re.MULTILINE)
    # Its channels and rules are checked by the alerts' tables, as the service does.
    senders = channel_senders(None, destination_policy(settings), None)  # type: ignore[arg-type]
    # load() reads no database: the tables need none here.
    tables = FileTables(senders, None)  # type: ignore[arg-type]
    loaded = load(write(tmp_path, head + uncommented), settings, tables)
    assert [c.definition.slug for c in loaded.monitors] == ["example-home", "example-api", "local"]
    assert [c["slug"] for c in loaded.alerting.channels] == ["ops-hook", "ops-slack", "phone"]
    assert [r["name"] for r in loaded.alerting.rules] == ["API outages", "Everything else"]
    assert loaded.monitors[0].definition.alerts == {"on_degraded": True}
    assert list(loaded.status_pages) == ["site", "public-api"]
    assert loaded.status_pages["site"].selects("web", {"team": "site"})
    home, api, _local = (c.definition for c in loaded.monitors)
    assert home.interval_s == 60
    assert home.group == "web"
    assert home.options == {"timeout_s": 10, "expected_status": "200-399"}
    assert api.interval_s == 30
    assert api.group == "api"
    assert api.options["headers"] == {"Authorization": "Bearer change-me"}
    assert api.options["timeout_s"] == 10


def test_defaults_merge_under_each_monitor_headers_key_by_key(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[defaults]
interval_s = 20
labels = { env = "prod" }
options = { timeout_s = 3, headers = { "X-A" = "a", "X-B" = "b" } }

[[monitors]]
name = "One"
url = "http://127.0.0.1:9/"
labels = { team = "x" }
options = { headers = { "X-B" = "mine" } }
""",
    )
    (one,) = load(path, make_settings()).monitors
    assert one.definition.slug == "one"
    assert one.definition.interval_s == 20
    assert one.definition.labels == {"env": "prod", "team": "x"}
    assert one.definition.options == {"timeout_s": 3, "headers": {"X-A": "a", "X-B": "mine"}}
    assert one.options.headers == {"X-A": "a", "X-B": "mine"}


def test_every_error_names_the_monitor_and_the_field_without_its_value(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[[monitors]]
name = "Good"
url = "http://127.0.0.1:9/"

[[monitors]]
name = "Fast"
url = "http://127.0.0.1:9/?token=very-secret"
interval_s = 1

[[monitors]]
name = "Bad header"
url = "gopher://127.0.0.1/"
options = { headers = { "Content-Length" = "very-secret" } }

[[monitors]]
name = "Good"
url = "http://127.0.0.1:9/again"

[modules.broken]
timeout_s = -1
""",
    )
    errors = errors_of(path)
    found = {(str(e["monitor"]), tuple(e["loc"])) for e in errors}
    assert found == {
        ("Fast", ("monitors", 1, "interval_s")),
        ("Bad header", ("monitors", 2, "url")),
        ("Bad header", ("monitors", 2, "options", "headers", "Content-Length")),
        ("Good", ("monitors", 3, "name")),
        ("Good", ("monitors", 3, "slug")),
        ("None", ("modules", "broken", "timeout_s")),
    }
    assert "monitors[1] 'Fast': interval_s" in [e["where"] for e in errors]
    assert "very-secret" not in repr(errors)


@pytest.mark.parametrize(
    ("text", "loc"),
    [
        ("[[monitors]]\nname = 'x'\nurl = ", ["file"]),
        ("[[monitors]]\nname = 'x'\nurl = 'http://127.0.0.1/'\nsource = 'api'\n", None),
        ("[alerts]\nx = 1\n", ["alerts"]),
        ("[defaults]\nretries = 2\n", ["defaults", "retries"]),
    ],
)
def test_a_malformed_file_is_refused_saying_where(
    tmp_path: Path, text: str, loc: list[object] | None
) -> None:
    errors = errors_of(write(tmp_path, text))
    assert len(errors) == 1
    assert errors[0]["loc"] == (loc or ["monitors", 0, "source"])


def test_a_missing_file_is_an_error_not_an_empty_file(tmp_path: Path) -> None:
    errors = errors_of(tmp_path / "absent.toml")
    assert errors[0]["loc"] == ["file"]
    assert "cannot read" in str(errors[0]["msg"])
