"""The destination policy at work in the engine: every way of spelling a forbidden address is
refused with `blocked`, before any connection, and canaries listening on loopback prove that
nothing reached them.

Safety: every test installs a ConnectGuard under the HTTP layer, so even if the policy let a
private or public address through, the connect would be refused on this machine (and the test
fail) rather than send traffic anywhere. Names that must resolve to such addresses come from a
fixed table (LocalResolver); real DNS is never asked.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from app.engine.checker import Checker
from app.engine.options import CheckOptions
from app.engine.policy import DestinationPolicy, parse_networks
from app.schemas.results import CheckResult, ErrorKind, RedirectHop
from tests.support.destination import Canaries, ConnectGuard, LocalResolver, guard, redirect_url
from tests.support.destination import redirector as start_redirector
from tests.support.engine import make_http
from tests.support.servers import RawServer

PUBLIC_V4 = "93.184.216.34"
PUBLIC_V6 = "2606:2800:220:1:248:1893:25c7:1946"

# Names with fake DNS answers: none of them is ever looked up for real.
NAMES: dict[str, list[str]] = {
    "mixed.test": [PUBLIC_V4, "127.0.0.1"],
    "mixed-reversed.test": ["127.0.0.1", PUBLIC_V4],
    "mixed-mapped.test": [PUBLIC_V4, "::ffff:127.0.0.1"],
    "mixed-v6.test": [PUBLIC_V6, "::1"],
    "mixed-private.test": [PUBLIC_V4, "10.0.0.1"],
    "private.test": ["10.0.0.1"],
    "lan.test": ["192.168.1.1"],
    "rfc1918-172.test": ["172.16.0.1"],
    "metadata.test": ["169.254.169.254"],
    "ecs-metadata.test": ["169.254.170.2"],
    "ec2-v6-metadata.test": ["fd00:ec2::254"],
    "link-local.test": ["169.254.1.1"],
    "link-local-v6.test": ["fe80::1"],
    "cgnat.test": ["100.64.0.1"],
    "ula.test": ["fd00::1"],
    "nat64-loopback.test": ["64:ff9b::7f00:1"],
    "nat64-metadata.test": ["64:ff9b::a9fe:a9fe"],
    "sixtofour-loopback.test": ["2002:7f00:1::"],
    "empty.test": [],
}

ONLY_127_0_0_1 = DestinationPolicy(allowed_networks=parse_networks(["127.0.0.1/32"]))
LOOPBACK_AND_UNSPECIFIED = DestinationPolicy(
    allowed_networks=parse_networks(["127.0.0.0/8", "::1/128", "0.0.0.0/32", "::/128"])
)


@dataclass
class Engine:
    checker: Checker
    guard: ConnectGuard
    resolver: LocalResolver

    def check(self, url: str, **options: object) -> CheckResult:
        options.setdefault("timeout_s", 5.0)
        return self.checker.check(url, CheckOptions(**options))  # type: ignore[arg-type]


EngineFactory = Callable[[DestinationPolicy], Engine]


@pytest.fixture
def engine_for() -> Iterator[EngineFactory]:
    """Builds a guarded engine with the given policy and the fake-DNS resolver."""
    built: list[Engine] = []

    def build(policy: DestinationPolicy) -> Engine:
        resolver = LocalResolver(NAMES)
        http = make_http(resolver=resolver, policy=policy)
        engine = Engine(Checker(http), guard(http), resolver)
        built.append(engine)
        return engine

    yield build
    for engine in built:
        engine.checker._http.abort_in_flight()
        engine.checker._http.close()
        assert engine.guard.refused == [], "the engine tried to connect off this machine"


@pytest.fixture
def default_engine(engine_for: EngineFactory) -> Engine:
    """The default policy: no allowed networks, so loopback and private space are denied."""
    return engine_for(DestinationPolicy())


@pytest.fixture(scope="module")
def redirect_server() -> Iterator[RawServer]:
    server = start_redirector("127.0.0.1")
    yield server
    server.stop()


def url_for(template: str, canaries: Canaries) -> str:
    if "{v6}" in template and canaries.v6 is None:
        pytest.skip("this machine cannot listen on ::1 (no IPv6 loopback)")
    return template.format(**canaries.ports())


def assert_blocked_before_connecting(
    result: CheckResult, rule: str, engine: Engine, canaries: Canaries
) -> None:
    assert result.ok is False
    assert result.outcome == "down"
    assert result.error is not None
    assert result.error.kind == ErrorKind.BLOCKED, result.error
    assert rule in result.error.message, result.error.message
    # Refused before a socket was opened: no connection attempt to any address, no phases.
    assert engine.guard.connects == []
    assert result.timings_ms is None
    assert result.remote_ip is None
    assert result.status_code is None
    assert canaries.hits() == {}
    # A policy refusal is final: it is not retried, whatever `retries` allows.
    assert [a.error.kind if a.error else None for a in result.attempts] == [ErrorKind.BLOCKED]


# Each spelling reaches a canary when allowed (proved below), so blocking it means something.
LOOPBACK_SPELLINGS = [
    pytest.param("http://127.0.0.1:{v4}/", "loopback (127.0.0.0/8)", id="dotted"),
    pytest.param("http://127.0.0.2:{v4b}/", "loopback (127.0.0.0/8)", id="other-127"),
    pytest.param("http://2130706433:{v4}/", "loopback (127.0.0.0/8)", id="decimal"),
    pytest.param("http://0x7f.1:{v4}/", "loopback (127.0.0.0/8)", id="hex-short"),
    pytest.param("http://0x7f000001:{v4}/", "loopback (127.0.0.0/8)", id="hex-whole"),
    pytest.param("http://017700000001:{v4}/", "loopback (127.0.0.0/8)", id="octal-whole"),
    pytest.param("http://127.1:{v4}/", "loopback (127.0.0.0/8)", id="short-dotted"),
    pytest.param("http://localhost:{v4}/", "loopback (127.0.0.0/8)", id="localhost"),
    pytest.param(
        "http://[::ffff:127.0.0.1]:{v4}/",
        "ipv4-mapped ::ffff:127.0.0.1 -> loopback (127.0.0.0/8)",
        id="v4-mapped",
    ),
    pytest.param(
        "http://[::ffff:7f00:1]:{v4}/",
        "ipv4-mapped ::ffff:127.0.0.1 -> loopback (127.0.0.0/8)",
        id="v4-mapped-hex",
    ),
    pytest.param("http://0.0.0.0:{v4}/", "unspecified (0.0.0.0/8)", id="unspecified-v4"),
    pytest.param("http://[::1]:{v6}/", "loopback (::1)", id="v6-loopback"),
    pytest.param("http://[::]:{v6}/", "unspecified (::)", id="unspecified-v6"),
]


@pytest.mark.parametrize(("template", "rule"), LOOPBACK_SPELLINGS)
def test_every_loopback_spelling_is_blocked_by_default_before_any_connect(
    default_engine: Engine, canaries: Canaries, template: str, rule: str
) -> None:
    result = default_engine.check(url_for(template, canaries), retries=2)

    assert_blocked_before_connecting(result, rule, default_engine, canaries)


@pytest.mark.parametrize(("template", "rule"), LOOPBACK_SPELLINGS)
def test_every_loopback_spelling_reaches_a_canary_once_loopback_is_allowed(
    engine_for: EngineFactory, canaries: Canaries, template: str, rule: str
) -> None:
    # The control for the test above: the canary does count these connections, and the
    # allowed networks are what lets them through.
    engine = engine_for(LOOPBACK_AND_UNSPECIFIED)

    result = engine.check(url_for(template, canaries))

    assert result.ok is True, result.error
    assert result.status_code == 200
    assert result.timings_ms is not None
    assert sum(canaries.hits().values()) == 1
    assert len(engine.guard.connects) == 1


def test_dotted_octal_spelling_is_refused_as_a_url_and_never_connects(
    default_engine: Engine, canaries: Canaries
) -> None:
    # httpx (the API's validator too) rejects leading-zero octets instead of reading octal,
    # so this spelling is a 422 at submission; the engine, if handed it, fetches nothing.
    result = default_engine.check(f"http://0177.0.0.1:{canaries.v4.port}/")

    assert result.ok is False
    assert result.error is not None
    assert "Invalid IPv4 address" in result.error.message
    assert default_engine.guard.connects == []
    assert default_engine.resolver.calls == []
    assert canaries.hits() == {}


@pytest.mark.parametrize(
    ("name", "rule"),
    [
        pytest.param("mixed.test", "loopback (127.0.0.0/8)", id="public-then-loopback"),
        pytest.param("mixed-reversed.test", "loopback (127.0.0.0/8)", id="loopback-then-public"),
        pytest.param("mixed-mapped.test", "ipv4-mapped ::ffff:127.0.0.1 -> loopback", id="mapped"),
        pytest.param("mixed-v6.test", "loopback (::1)", id="v6"),
        pytest.param("mixed-private.test", "private (10.0.0.0/8)", id="public-then-private"),
    ],
)
def test_name_answering_a_public_and_a_denied_address_is_blocked_without_connecting_to_either(
    default_engine: Engine, canaries: Canaries, name: str, rule: str
) -> None:
    # One bad answer denies the name: the public address is not tried either, since a
    # rebinding attacker controls which answer a client would use.
    result = default_engine.check(f"http://{name}:{canaries.v4.port}/", retries=2)

    assert_blocked_before_connecting(result, rule, default_engine, canaries)
    assert default_engine.resolver.calls == [name]
    assert result.error is not None
    assert result.error.message.startswith(f"{name} is denied")


@pytest.mark.parametrize(
    ("url", "rule"),
    [
        pytest.param("http://private.test/", "private (10.0.0.0/8)", id="10/8"),
        pytest.param("http://lan.test/", "private (192.168.0.0/16)", id="192.168/16"),
        pytest.param("http://rfc1918-172.test/", "private (172.16.0.0/12)", id="172.16/12"),
        pytest.param(
            "http://metadata.test/latest/meta-data/", "cloud metadata (169.254.169.254)", id="imds"
        ),
        pytest.param("http://ecs-metadata.test/", "cloud metadata (169.254.170.2)", id="ecs"),
        pytest.param(
            "http://ec2-v6-metadata.test/", "cloud metadata (fd00:ec2::254)", id="imds-v6"
        ),
        pytest.param("http://link-local.test/", "link-local (169.254.0.0/16)", id="link-local"),
        pytest.param("http://link-local-v6.test/", "link-local (fe80::/10)", id="link-local-v6"),
        pytest.param("http://cgnat.test/", "CGNAT (100.64.0.0/10)", id="cgnat"),
        pytest.param("http://ula.test/", "private (fc00::/7)", id="ula"),
        pytest.param(
            "http://nat64-loopback.test/",
            "nat64 64:ff9b::7f00:1 -> loopback (127.0.0.0/8)",
            id="nat64-loopback",
        ),
        pytest.param(
            "http://nat64-metadata.test/",
            "nat64 64:ff9b::a9fe:a9fe -> cloud metadata (169.254.169.254)",
            id="nat64-metadata",
        ),
        pytest.param(
            "http://sixtofour-loopback.test/",
            "6to4 2002:7f00:1:: -> loopback (127.0.0.0/8)",
            id="6to4-loopback",
        ),
        pytest.param("http://empty.test/", "no addresses to connect to", id="empty-answer"),
        # The same addresses written as literals skip the table but not the policy.
        pytest.param("http://10.0.0.1/", "private (10.0.0.0/8)", id="literal-10/8"),
        pytest.param(
            "http://169.254.169.254/latest/meta-data/",
            "cloud metadata (169.254.169.254)",
            id="literal-imds",
        ),
        pytest.param("http://[fd00::1]/", "private (fc00::/7)", id="literal-ula"),
        pytest.param(
            "http://[64:ff9b::7f00:1]/", "nat64 64:ff9b::7f00:1 -> loopback", id="literal-nat64"
        ),
    ],
)
def test_private_link_local_and_metadata_destinations_are_blocked_naming_the_rule(
    default_engine: Engine, canaries: Canaries, url: str, rule: str
) -> None:
    result = default_engine.check(url, retries=2)

    assert_blocked_before_connecting(result, rule, default_engine, canaries)


def test_metadata_address_stays_blocked_when_link_local_networks_are_allowed(
    engine_for: EngineFactory, canaries: Canaries
) -> None:
    engine = engine_for(DestinationPolicy(allowed_networks=parse_networks(["169.254.0.0/16"])))

    result = engine.check("http://metadata.test/latest/meta-data/")

    assert_blocked_before_connecting(result, "cloud metadata (169.254.169.254)", engine, canaries)


# --- redirects --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "rule"),
    [
        pytest.param("http://127.0.0.2:{v4b}/", "loopback (127.0.0.0/8)", id="other-127"),
        pytest.param(
            "http://[::ffff:127.0.0.2]:{v4b}/",
            "ipv4-mapped ::ffff:127.0.0.2 -> loopback",
            id="v4-mapped",
        ),
        # 0.0.0.0 is where the kernel would connect to 127.0.0.1 itself: still not allowed.
        pytest.param("http://0.0.0.0:{v4}/", "unspecified (0.0.0.0/8)", id="unspecified"),
        pytest.param("http://[::1]:{v6}/", "loopback (::1)", id="v6-loopback"),
        pytest.param("http://mixed-private.test:{v4}/", "private (10.0.0.0/8)", id="mixed-dns"),
        pytest.param("http://metadata.test/", "cloud metadata (169.254.169.254)", id="metadata"),
    ],
)
def test_redirect_from_an_allowed_server_to_a_denied_address_is_blocked_at_that_hop(
    engine_for: EngineFactory,
    canaries: Canaries,
    redirect_server: RawServer,
    template: str,
    rule: str,
) -> None:
    engine = engine_for(ONLY_127_0_0_1)
    location = url_for(template, canaries)
    start = redirect_url(redirect_server, location)

    result = engine.check(start, retries=2)

    assert result.ok is False
    assert result.error is not None
    assert result.error.kind == ErrorKind.BLOCKED, result.error
    assert rule in result.error.message
    assert result.redirects == [RedirectHop(url=start, status_code=302, location=location)]
    # The only connection made was to the allowed server; nothing reached a canary.
    assert engine.guard.connects == [("127.0.0.1", redirect_server.port)]
    assert canaries.hits() == {}
    assert len(result.attempts) == 1


def test_redirect_to_a_dotted_octal_spelling_is_an_invalid_redirect_and_never_connects(
    engine_for: EngineFactory, canaries: Canaries, redirect_server: RawServer
) -> None:
    engine = engine_for(ONLY_127_0_0_1)

    location = f"http://0177.0.0.2:{canaries.v4b.port}/"

    result = engine.check(redirect_url(redirect_server, location))

    assert result.ok is False
    assert engine.guard.connects == [("127.0.0.1", redirect_server.port)]
    assert canaries.hits() == {}
    # A Location that cannot be parsed is a bad redirect, not a bad response. (Fails today:
    # httpx parses Location inside client.send and raises RemoteProtocolError first, which
    # classify() turns into invalid_response, and the hop is not recorded.)
    assert result.error is not None
    assert result.error.kind == ErrorKind.INVALID_REDIRECT, result.error


def test_redirect_to_an_allowed_address_is_followed_to_the_canary(
    engine_for: EngineFactory, canaries: Canaries, redirect_server: RawServer
) -> None:
    # Control for the redirect tests: the same hop to an allowed address does arrive.
    engine = engine_for(DestinationPolicy(allowed_networks=parse_networks(["127.0.0.0/8"])))

    result = engine.check(redirect_url(redirect_server, f"http://127.0.0.2:{canaries.v4b.port}/"))

    assert result.ok is True, result.error
    assert len(result.redirects) == 1
    assert canaries.hits() == {f"127.0.0.2:{canaries.v4b.port}": 1}


# --- settings: allowed networks, denied networks, allowed ports -------------------------------


def test_allowing_loopback_lets_the_canary_url_connect_exactly_once(
    engine_for: EngineFactory, canaries: Canaries
) -> None:
    engine = engine_for(DestinationPolicy(allowed_networks=parse_networks(["127.0.0.0/8"])))

    result = engine.check(f"http://127.0.0.1:{canaries.v4.port}/")

    assert result.ok is True, result.error
    assert result.remote_ip == "127.0.0.1"
    assert canaries.hits() == {f"127.0.0.1:{canaries.v4.port}": 1}


@pytest.mark.parametrize(
    ("template", "rule"),
    [
        pytest.param("http://127.0.0.1:{v4}/", "network 127.0.0.1/32 denied by settings", id="ip"),
        pytest.param(
            "http://2130706433:{v4}/", "network 127.0.0.1/32 denied by settings", id="decimal"
        ),
        pytest.param(
            "http://[::ffff:127.0.0.1]:{v4}/",
            "ipv4-mapped ::ffff:127.0.0.1 -> network 127.0.0.1/32 denied by settings",
            id="v4-mapped",
        ),
    ],
)
def test_denied_networks_beat_allowed_networks(
    engine_for: EngineFactory, canaries: Canaries, template: str, rule: str
) -> None:
    engine = engine_for(
        DestinationPolicy(
            allowed_networks=parse_networks(["127.0.0.0/8"]),
            denied_networks=parse_networks(["127.0.0.1/32"]),
        )
    )

    result = engine.check(url_for(template, canaries))

    assert_blocked_before_connecting(result, rule, engine, canaries)


def test_port_outside_allowed_ports_is_blocked_before_resolving(
    engine_for: EngineFactory, canaries: Canaries
) -> None:
    other = canaries.v4b.port
    engine = engine_for(
        DestinationPolicy(
            allowed_networks=parse_networks(["127.0.0.0/8"]), allowed_ports=frozenset({other})
        )
    )

    result = engine.check(f"http://localhost:{canaries.v4.port}/")

    assert_blocked_before_connecting(
        result, f"port {canaries.v4.port} not in allowed ports", engine, canaries
    )
    assert engine.resolver.calls == []  # refused before the name was even looked up


def test_port_in_allowed_ports_connects(engine_for: EngineFactory, canaries: Canaries) -> None:
    port = canaries.v4.port
    engine = engine_for(
        DestinationPolicy(
            allowed_networks=parse_networks(["127.0.0.0/8"]), allowed_ports=frozenset({port})
        )
    )

    result = engine.check(f"http://127.0.0.1:{port}/")

    assert result.ok is True, result.error
    assert canaries.hits() == {f"127.0.0.1:{port}": 1}
