"""`urlhealth check` run as a subprocess against loopback targets, its output parsed back."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from datetime import datetime
from pathlib import Path

import pytest

from tests.support.destination import Canaries
from tests.support.servers import RawServer, ThreadedUvicorn

REPO = Path(__file__).resolve().parents[2]
LOOPBACK = ["--allow-network", "127.0.0.0/8"]
RUN_TIMEOUT_S = 60.0


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app", "check", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=RUN_TIMEOUT_S,
        env=_env(),
    )


def _env() -> dict[str, str]:
    # No URLHEALTH_ setting: the CLI must not need the environment.
    return {k: v for k, v in os.environ.items() if not k.startswith("URLHEALTH_")}


def test_all_up_exits_0_and_json_lists_every_result(target: ThreadedUvicorn) -> None:
    urls = [f"{target.url}/status/200", f"{target.url}/status/204"]
    done = run(*LOOPBACK, "--format", "json", *urls)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert sorted(r["url"] for r in report["results"]) == sorted(urls)
    assert {r["outcome"] for r in report["results"]} == {"up"}
    assert report["summary"]["up"] == 2


def test_any_down_exits_1_and_ndjson_has_one_line_per_url(target: ThreadedUvicorn) -> None:
    urls = [f"{target.url}/status/200", f"{target.url}/status/503"]
    done = run(*LOOPBACK, "--format", "ndjson", *urls)
    assert done.returncode == 1, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    by_url = {line["url"]: line for line in lines}
    assert by_url[urls[1]]["error"]["kind"] == "unexpected_status"
    assert by_url[urls[0]]["outcome"] == "up"


def test_csv_parses_with_the_csv_module(target: ThreadedUvicorn) -> None:
    urls = [f"{target.url}/status/200", f"{target.url}/status/404"]
    done = run(*LOOPBACK, "--format", "csv", *urls)
    assert done.returncode == 1
    rows = list(csv.DictReader(io.StringIO(done.stdout)))
    assert {row["url"]: row["outcome"] for row in rows} == {urls[0]: "up", urls[1]: "down"}
    assert {row["url"]: row["status_code"] for row in rows}[urls[1]] == "404"
    assert {row["url"]: row["error_kind"] for row in rows}[urls[1]] == "unexpected_status"


def test_junit_has_one_testcase_per_url_and_failures_with_kind(target: ThreadedUvicorn) -> None:
    urls = [f"{target.url}/status/200", f"{target.url}/status/500", f"{target.url}/status/404"]
    done = run(*LOOPBACK, "--format", "junit", *urls)
    assert done.returncode == 1
    root = ET.fromstring(done.stdout)
    cases = root.findall(".//testcase")
    assert sorted(case.get("name") or "" for case in cases) == sorted(urls)
    failures = root.findall(".//testcase/failure")
    assert len(failures) == 2
    assert {f.get("type") for f in failures} == {"unexpected_status"}
    assert all(f.get("message") for f in failures)
    suite = root.find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures")) == ("3", "2")


@pytest.mark.parametrize("fmt", ["table", "markdown"])
def test_table_and_markdown_name_every_url(target: ThreadedUvicorn, fmt: str) -> None:
    urls = [f"{target.url}/status/200", f"{target.url}/status/502"]
    done = run(*LOOPBACK, "--format", fmt, *urls)
    assert done.returncode == 1
    for url in urls:
        assert url in done.stdout
    if fmt == "markdown":
        assert "| --- |" in done.stdout or "|---" in done.stdout


def test_metadata_address_is_blocked_without_contact_and_exits_1() -> None:
    done = run("--format", "json", "http://169.254.169.254/latest/meta-data/")
    assert done.returncode == 1, done.stderr
    (result,) = json.loads(done.stdout)["results"]
    assert result["error"]["kind"] == "blocked"
    assert result["remote_ip"] is None


def test_loopback_is_blocked_by_default_and_never_contacted(canaries: Canaries) -> None:
    done = run("--format", "ndjson", f"http://127.0.0.1:{canaries.v4.port}/")
    assert done.returncode == 1
    assert json.loads(done.stdout)["error"]["kind"] == "blocked"
    assert canaries.hits() == {}
    # The same canary once the network is allowed: proof the test can see a contact.
    run(
        "--allow-network", "127.0.0.1/32", "--timeout", "1", f"http://127.0.0.1:{canaries.v4.port}/"
    )
    assert canaries.hits() != {}


def test_bad_url_exits_2_naming_it() -> None:
    done = run("ftp://127.0.0.1/file")
    assert done.returncode == 2
    assert "ftp://127.0.0.1/file" in done.stderr


def test_bad_option_exits_2_naming_it(target: ThreadedUvicorn) -> None:
    done = run(*LOOPBACK, "--header", "no colon here", f"{target.url}/status/200")
    assert done.returncode == 2
    assert "--header" in done.stderr
    done = run(*LOOPBACK, "--expected-status", "abc", f"{target.url}/status/200")
    assert done.returncode == 2
    assert "--expected-status" in done.stderr


def test_no_urls_is_bad_usage() -> None:
    assert run().returncode == 2


def test_urls_from_stdin_with_dash(target: ThreadedUvicorn) -> None:
    urls = [f"{target.url}/status/200", f"{target.url}/status/201"]
    stdin = "# comment\n" + "\n".join(urls) + "\n\n"
    done = run(*LOOPBACK, "--format", "ndjson", "-f", "-", stdin=stdin)
    assert done.returncode == 0, done.stderr
    assert sorted(json.loads(line)["url"] for line in done.stdout.splitlines()) == sorted(urls)


def test_output_file_gets_the_report(target: ThreadedUvicorn, tmp_path: Path) -> None:
    out = tmp_path / "report.xml"
    done = run(*LOOPBACK, "--format", "junit", "-o", str(out), f"{target.url}/status/200")
    assert done.returncode == 0, done.stderr
    assert len(ET.parse(out).getroot().findall(".//testcase")) == 1


def test_degraded_fails_only_with_fail_on_degraded(target: ThreadedUvicorn, tmp_path: Path) -> None:
    rules = tmp_path / "assertions.toml"
    rules.write_text("max_latency_ms = 1\n")
    url = f"{target.url}/delay/300"
    args = [*LOOPBACK, "--assertions", str(rules), "--format", "ndjson", url]
    done = run(*args)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["outcome"] == "degraded"
    assert run("--fail-on", "degraded", *args).returncode == 1


def test_assertions_from_json_file(target: ThreadedUvicorn, tmp_path: Path) -> None:
    rules = tmp_path / "assertions.json"
    rules.write_text(json.dumps({"body_contains": ["never there"]}))
    done = run(
        *LOOPBACK, "--assertions", str(rules), "--format", "ndjson", f"{target.url}/status/200"
    )
    assert done.returncode == 1
    assert json.loads(done.stdout)["error"]["kind"] == "assertion_failed"


def test_sigint_prints_finished_results_and_exits_130(target: ThreadedUvicorn) -> None:
    fast = f"{target.url}/status/200"
    slow = f"{target.url}/delay/10000"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "app",
            "check",
            *LOOPBACK,
            "--timeout",
            "50",
            "--format",
            "ndjson",
            fast,
            slow,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env=_env(),
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()  # ndjson streams: the fast one is printed first
        assert json.loads(first)["url"] == fast
        proc.send_signal(signal.SIGINT)
        rest, err = proc.communicate(timeout=RUN_TIMEOUT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    assert proc.returncode == 130, err
    assert slow not in rest
    assert "interrupted" in err


def test_help_is_a_manual() -> None:
    done = run("--help")
    assert done.returncode == 0
    manual = done.stdout.lower()
    for text in ("exit codes", "130", "--allow-network", "junit", "examples", "--assertions"):
        assert text in manual


def test_unwritable_output_file_is_bad_usage_naming_it(
    target: ThreadedUvicorn, tmp_path: Path
) -> None:
    out = tmp_path / "missing-dir" / "report.xml"
    done = run(*LOOPBACK, "-o", str(out), f"{target.url}/status/200")
    assert done.returncode == 2
    assert str(out) in done.stderr
    assert done.stdout == ""


@pytest.mark.parametrize(
    ("flags", "path", "expect"),
    [
        (["--expected-status", "404"], "/status/404", {"outcome": "up", "status_code": 404}),
        (
            ["--no-follow-redirects", "--expected-status", "200-299"],
            "/redirect/1",
            {"outcome": "down", "status_code": 302},
        ),
        (["--max-redirects", "1"], "/redirect/3", {"outcome": "down"}),
        (["--retries", "1"], "/status/503", {"attempts": 2}),
        (["--timeout", "0.2"], "/delay/3000", {"kind": "timeout"}),
        (["--header", "X-Probe: yes", "--method", "HEAD"], "/status/200", {"outcome": "up"}),
    ],
)
def test_check_flags_reach_the_engine(
    target: ThreadedUvicorn, flags: list[str], path: str, expect: dict[str, object]
) -> None:
    done = run(*LOOPBACK, "--format", "ndjson", *flags, f"{target.url}{path}")
    result = json.loads(done.stdout)
    seen = {
        "outcome": result["outcome"],
        "status_code": result["status_code"],
        "attempts": len(result["attempts"]),
        "kind": (result["error"] or {}).get("kind"),
    }
    assert {key: seen[key] for key in expect} == expect, done.stderr
    assert done.returncode == (0 if result["outcome"] == "up" else 1)


def test_a_timeout_over_the_settings_limit_names_the_flag(target: ThreadedUvicorn) -> None:
    done = run(*LOOPBACK, "--timeout", "1000", f"{target.url}/status/200")
    assert done.returncode == 2
    assert "--timeout" in done.stderr


def test_checks_of_one_host_respect_max_connections_per_host(
    target: ThreadedUvicorn, tmp_path: Path
) -> None:
    config = tmp_path / "settings.toml"
    config.write_text("max_connections_per_host = 1\n")  # the former name, still accepted
    urls = [f"{target.url}/delay/300?n={n}" for n in range(3)]
    done = run(*LOOPBACK, "--config", str(config), "--workers", "3", "--format", "json", *urls)
    assert done.returncode == 0, done.stderr
    results = sorted(json.loads(done.stdout)["results"], key=lambda r: r["checked_at"])
    starts = [datetime.fromisoformat(r["checked_at"]) for r in results]
    # One at a time: each check starts after the previous one's answer came.
    for before, after, result in zip(starts, starts[1:], results, strict=False):
        assert (after - before).total_seconds() * 1000 >= result["elapsed_ms"]


def test_check_never_opens_the_services_database(target: ThreadedUvicorn, tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = {**_env(), "URLHEALTH_DATA_DIR": str(data)}
    done = subprocess.run(
        [sys.executable, "-m", "app", "check", *LOOPBACK, f"{target.url}/status/200"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=RUN_TIMEOUT_S,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert not data.exists()
    # The service itself would create it: proof the path is the one it uses.
    upgrade = subprocess.run(
        [sys.executable, "-m", "app", "db", "upgrade"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=RUN_TIMEOUT_S,
        env=env,
    )
    assert upgrade.returncode == 0, upgrade.stderr
    assert data.exists()


def test_sigint_with_json_writes_the_finished_results_marked_interrupted(
    target: ThreadedUvicorn, hanging_server: RawServer
) -> None:
    fast = f"{target.url}/status/200"
    hanging = f"{hanging_server.url}/"
    flags = ["--workers", "1", "--timeout", "50", "--format", "json"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "app", "check", *LOOPBACK, *flags, fast, hanging],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env=_env(),
    )
    try:
        # One worker takes the URLs in order: the hanging one is reached once the fast is done.
        pause = threading.Event()
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while hanging_server.connections == 0 and time.monotonic() < deadline:
            assert proc.poll() is None
            pause.wait(0.05)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=RUN_TIMEOUT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    assert proc.returncode == 130, err
    report = json.loads(out)
    assert [r["url"] for r in report["results"]] == [fast]
    assert report["summary"]["interrupted"] is True
    assert (report["summary"]["finished"], report["summary"]["total"]) == (1, 2)
