"""The destination policy through the running service: jobs for forbidden destinations end
`blocked`, the service refuses to check itself, and canaries on loopback prove that nothing
reached them.

Every test installs a ConnectGuard under the service's HTTP layer, so a policy bug would make
a connect fail on this machine (and the test fail) instead of sending traffic anywhere. Fake
DNS answers come from a fixed table; real DNS is never asked.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.conftest import RunningService
from tests.support.api import submit, wait_final
from tests.support.destination import Canaries, ConnectGuard, LocalResolver, guard, redirect_url
from tests.support.destination import redirector as start_redirector
from tests.support.servers import RawServer, ThreadedUvicorn

ServiceFactory = Callable[..., RunningService]

NAMES: dict[str, list[str]] = {
    "mixed.test": ["93.184.216.34", "127.0.0.1"],
    "mixed-reversed.test": ["127.0.0.1", "93.184.216.34"],
    "private.test": ["10.0.0.1"],
    "metadata.test": ["169.254.169.254"],
    "nat64-loopback.test": ["64:ff9b::7f00:1"],
}

# (URL template, text the blocked message must contain); {v4}/{v4b}/{v6} are canary ports.
DENIED_BY_DEFAULT: list[tuple[str, str]] = [
    ("http://127.0.0.1:{v4}/", "loopback (127.0.0.0/8)"),
    ("http://127.0.0.2:{v4b}/", "loopback (127.0.0.0/8)"),
    ("http://2130706433:{v4}/", "loopback (127.0.0.0/8)"),
    ("http://0x7f.1:{v4}/", "loopback (127.0.0.0/8)"),
    ("http://127.1:{v4}/", "loopback (127.0.0.0/8)"),
    ("http://localhost:{v4}/", "loopback (127.0.0.0/8)"),
    ("http://[::ffff:127.0.0.1]:{v4}/", "ipv4-mapped ::ffff:127.0.0.1 -> loopback"),
    ("http://[::ffff:7f00:1]:{v4}/", "ipv4-mapped ::ffff:127.0.0.1 -> loopback"),
    ("http://0.0.0.0:{v4}/", "unspecified (0.0.0.0/8)"),
    ("http://mixed.test:{v4}/", "loopback (127.0.0.0/8)"),
    ("http://mixed-reversed.test:{v4}/", "loopback (127.0.0.0/8)"),
    ("http://private.test:{v4}/", "private (10.0.0.0/8)"),
    ("http://metadata.test/latest/meta-data/", "cloud metadata (169.254.169.254)"),
    ("http://nat64-loopback.test:{v4}/", "nat64 64:ff9b::7f00:1 -> loopback"),
    ("http://[::1]:{v6}/", "loopback (::1)"),
    ("http://[::]:{v6}/", "unspecified (::)"),
]


@pytest.fixture
def guarded(
    service_factory: ServiceFactory,
) -> Iterator[Callable[..., tuple[RunningService, ConnectGuard]]]:
    """Starts a service (settings overrides as for service_factory) with the fake-DNS resolver
    and a ConnectGuard under its HTTP layer."""
    guards: list[ConnectGuard] = []

    def start(**overrides: Any) -> tuple[RunningService, ConnectGuard]:
        svc = service_factory(resolver=LocalResolver(NAMES), **overrides)
        installed = guard(svc.services.http)
        guards.append(installed)
        return svc, installed

    yield start
    for installed in guards:
        assert installed.refused == [], "the service tried to connect off this machine"


def run_job(svc: RunningService, urls: list[str], **options: Any) -> dict[str, Any]:
    job = submit(svc.client, urls, **options)
    done = wait_final(svc.client, job["id"])
    assert done["status"] == "done"
    assert done["completed"] == done["total"] == len(urls)
    return done


def denied_urls(canaries: Canaries) -> list[tuple[str, str]]:
    """DENIED_BY_DEFAULT with canary ports filled in; the ::1 forms only with IPv6 loopback."""
    return [
        (template.format(**canaries.ports()), rule)
        for template, rule in DENIED_BY_DEFAULT
        if canaries.v6 is not None or "{v6}" not in template
    ]


def test_service_refuses_to_check_itself_by_any_spelling_but_checks_other_targets(
    guarded: Callable[..., tuple[RunningService, ConnectGuard]], target: ThreadedUvicorn
) -> None:
    svc, connects = guarded()  # loopback allowed: only its own listen address is refused
    port = svc.services.settings.port
    itself = [
        f"http://127.0.0.1:{port}/healthz",
        f"http://localhost:{port}/healthz",
        f"http://2130706433:{port}/healthz",
        f"http://[::ffff:127.0.0.1]:{port}/healthz",
        f"http://0.0.0.0:{port}/healthz",
        f"http://[::]:{port}/healthz",
    ]
    elsewhere = f"{target.url}/status/200"

    done = run_job(svc, [*itself, elsewhere])

    by_url = {r["url"]: r for r in done["results"]}
    for url in itself:
        error = by_url[url]["error"]
        assert error is not None, url
        assert error["kind"] == "blocked", (url, error)
        assert f"the service's own listen address 127.0.0.1:{port}" in error["message"], error
    assert by_url[elsewhere]["ok"] is True, by_url[elsewhere]["error"]
    assert [c for c in connects.connects if c[1] == port] == []
    assert done["summary"]["up"] == 1
    assert done["summary"]["errors"] == {"blocked": len(itself)}


def test_default_policy_blocks_every_loopback_private_and_mixed_destination(
    guarded: Callable[..., tuple[RunningService, ConnectGuard]], canaries: Canaries
) -> None:
    svc, connects = guarded(allowed_networks=())
    denied = denied_urls(canaries)

    done = run_job(svc, [url for url, _ in denied], retries=2)

    by_url = {r["url"]: r for r in done["results"]}
    for url, rule in denied:
        result = by_url[url]
        assert result["ok"] is False, url
        assert result["error"]["kind"] == "blocked", (url, result["error"])
        assert rule in result["error"]["message"], (url, result["error"])
        assert result["timings_ms"] is None, url  # no connection phase at all
        assert len(result["attempts"]) == 1, url  # blocked is never retried
    assert connects.connects == []
    assert canaries.hits() == {}
    assert done["summary"]["up"] == 0
    assert done["summary"]["down"] == len(denied)
    assert done["summary"]["errors"] == {"blocked": len(denied)}


def test_sync_check_blocks_like_a_job(
    guarded: Callable[..., tuple[RunningService, ConnectGuard]], canaries: Canaries
) -> None:
    svc, connects = guarded(allowed_networks=())
    urls = [f"http://2130706433:{canaries.v4.port}/", f"http://mixed.test:{canaries.v4.port}/"]

    response = svc.client.post("/v1/check", json={"urls": urls})

    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["error"]["kind"] for r in results] == ["blocked", "blocked"]
    assert all("loopback" in r["error"]["message"] for r in results)
    assert connects.connects == []
    assert canaries.hits() == {}


def test_out_of_range_port_is_422_at_submission_while_a_denied_port_is_accepted_and_blocked(
    guarded: Callable[..., tuple[RunningService, ConnectGuard]], canaries: Canaries
) -> None:
    # Validation refuses what no socket could reach; the policy refuses what one could.
    svc, connects = guarded(allowed_networks=())
    for invalid in ("http://127.0.0.1:70000/", f"http://0177.0.0.1:{canaries.v4.port}/"):
        response = svc.client.post("/v1/jobs", json={"urls": [invalid]})
        assert response.status_code == 422, (invalid, response.text)
        assert response.json()["detail"][0]["loc"] == ["body", "urls", 0]

    done = run_job(svc, [f"http://127.0.0.1:{canaries.v4.port}/"])

    assert done["results"][0]["error"]["kind"] == "blocked"
    assert connects.connects == []
    assert canaries.hits() == {}


def test_allowed_ports_setting_blocks_other_ports(
    guarded: Callable[..., tuple[RunningService, ConnectGuard]],
    canaries: Canaries,
    target: ThreadedUvicorn,
) -> None:
    svc, connects = guarded(allowed_ports=(target.port,))
    other = f"http://127.0.0.1:{canaries.v4.port}/"
    allowed = f"{target.url}/status/200"

    done = run_job(svc, [other, allowed])

    by_url = {r["url"]: r for r in done["results"]}
    assert by_url[allowed]["ok"] is True, by_url[allowed]["error"]
    assert by_url[other]["error"]["kind"] == "blocked"
    assert f"port {canaries.v4.port} not in allowed ports" in by_url[other]["error"]["message"]
    assert all(port == target.port for _, port in connects.connects)
    assert canaries.hits() == {}


def test_denied_networks_setting_beats_the_loopback_allowance(
    guarded: Callable[..., tuple[RunningService, ConnectGuard]], canaries: Canaries
) -> None:
    svc, _ = guarded(denied_networks=("127.0.0.2/32",))  # loopback allowed otherwise
    denied = f"http://127.0.0.2:{canaries.v4b.port}/"
    allowed = f"http://127.0.0.1:{canaries.v4.port}/"

    done = run_job(svc, [denied, allowed])

    by_url = {r["url"]: r for r in done["results"]}
    assert by_url[denied]["error"]["kind"] == "blocked"
    assert "network 127.0.0.2/32 denied by settings" in by_url[denied]["error"]["message"]
    assert by_url[allowed]["ok"] is True, by_url[allowed]["error"]
    # The allowed URL really connected, so the canaries count what reaches them.
    assert canaries.hits() == {f"127.0.0.1:{canaries.v4.port}": 1}


@pytest.fixture
def redirect_server() -> Iterator[RawServer]:
    server = start_redirector("127.0.0.1")
    yield server
    server.stop()


def test_redirect_from_an_allowed_target_to_a_denied_address_is_blocked(
    guarded: Callable[..., tuple[RunningService, ConnectGuard]],
    canaries: Canaries,
    redirect_server: RawServer,
) -> None:
    svc, connects = guarded(allowed_networks=("127.0.0.1/32",))
    location = f"http://127.0.0.2:{canaries.v4b.port}/"
    start = redirect_url(redirect_server, location)

    result = run_job(svc, [start])["results"][0]

    assert result["error"]["kind"] == "blocked"
    assert "loopback (127.0.0.0/8)" in result["error"]["message"]
    assert result["redirects"] == [{"url": start, "status_code": 302, "location": location}]
    assert connects.connects == [("127.0.0.1", redirect_server.port)]
    assert canaries.hits() == {}


def test_a_blocked_loopback_url_names_the_setting_that_allows_it(
    guarded: Callable[..., tuple[RunningService, ConnectGuard]], canaries: Canaries
) -> None:
    svc, connects = guarded(allowed_networks=())

    done = run_job(svc, [f"http://127.0.0.1:{canaries.v4.port}/", "http://private.test/"])

    for result in done["results"]:
        message = result["error"]["message"]
        assert "URLHEALTH_ALLOWED_NETWORKS" in message, message
        assert "allowed_networks" in message, message
    assert connects.connects == []
    assert canaries.hits() == {}


def test_a_url_denied_by_the_operator_does_not_suggest_allowing_it(
    guarded: Callable[..., tuple[RunningService, ConnectGuard]], canaries: Canaries
) -> None:
    # denied_networks wins over allowed_networks: pointing at the latter would mislead.
    svc, _connects = guarded(denied_networks=("127.0.0.0/8",))

    done = run_job(svc, [f"http://127.0.0.1:{canaries.v4.port}/"])

    message = done["results"][0]["error"]["message"]
    assert "denied by settings" in message
    assert "ALLOWED_NETWORKS" not in message
    assert canaries.hits() == {}
