"""The destination policy: pure decisions on addresses and ports, no sockets involved."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.engine.policy import (
    BUILTIN_RULES,
    DestinationPolicy,
    IPAddress,
    Rule,
    Verdict,
    embedded_ipv4,
    parse_networks,
)

DEFAULT = DestinationPolicy()
PUBLIC_V4 = IPv4Address("93.184.216.34")
TEREDO_SERVER = IPv4Address("65.54.227.120")


def ip(text: str) -> IPAddress:
    return ip_address(text)


def mapped(a: IPv4Address) -> IPv6Address:
    return IPv6Address(0xFFFF_0000_0000 | int(a))


def compatible(a: IPv4Address) -> IPv6Address:
    return IPv6Address(int(a))


def sixtofour(a: IPv4Address, suffix: int = 1) -> IPv6Address:
    return IPv6Address((0x2002 << 112) | (int(a) << 80) | suffix)


def nat64(a: IPv4Address) -> IPv6Address:
    return IPv6Address((0x0064_FF9B << 96) | int(a))


def nat64_local(a: IPv4Address, middle: int = 0) -> IPv6Address:
    return IPv6Address((0x0064_FF9B_0001 << 80) | (middle << 32) | int(a))


def teredo(server: IPv4Address, client: IPv4Address, flags_port: int = 0x8000_63BF) -> IPv6Address:
    # RFC 4380: 2001:0000:<server>:<flags><port>:<client XOR ffffffff>
    return IPv6Address(
        (0x2001_0000 << 96) | (int(server) << 64) | (flags_port << 32) | (~int(client) & 0xFFFFFFFF)
    )


LOOPBACK = IPv4Address("127.0.0.1")
METADATA = IPv4Address("169.254.169.254")

DENIED_BY_DEFAULT = [
    ("127.0.0.1", "loopback (127.0.0.0/8)"),
    ("127.255.255.254", "loopback (127.0.0.0/8)"),
    ("::1", "loopback (::1)"),
    ("10.1.2.3", "private (10.0.0.0/8)"),
    ("172.16.0.1", "private (172.16.0.0/12)"),
    ("172.31.255.255", "private (172.16.0.0/12)"),
    ("192.168.1.1", "private (192.168.0.0/16)"),
    ("fd12:3456::1", "private (fc00::/7)"),
    ("169.254.1.1", "link-local (169.254.0.0/16)"),
    ("fe80::1", "link-local (fe80::/10)"),
    ("fe80::1%eth0", "link-local (fe80::/10)"),
    ("fec0::1", "site-local (fec0::/10)"),
    ("100.64.0.1", "CGNAT (100.64.0.0/10)"),
    ("100.127.255.254", "CGNAT (100.64.0.0/10)"),
    ("224.0.0.1", "multicast (224.0.0.0/4)"),
    ("239.255.255.250", "multicast (224.0.0.0/4)"),
    ("ff02::1", "multicast (ff00::/8)"),
    ("240.0.0.1", "reserved (240.0.0.0/4)"),
    ("255.255.255.254", "reserved (240.0.0.0/4)"),
    ("::1:0:0:1", "reserved (::/8)"),
    ("100::1", "reserved (100::/8)"),
    ("4000::1", "reserved (4000::/3)"),
    ("fe00::1", "reserved (fe00::/9)"),
    ("0.0.0.0", "unspecified (0.0.0.0/8)"),
    ("0.1.2.3", "unspecified (0.0.0.0/8)"),
    ("::", "unspecified (::)"),
    ("255.255.255.255", "broadcast (255.255.255.255)"),
    ("198.18.0.1", "benchmarking (198.18.0.0/15)"),
    ("198.19.255.255", "benchmarking (198.18.0.0/15)"),
    ("2001:2::1", "benchmarking (2001:2::/48)"),
    ("192.0.2.1", "documentation (192.0.2.0/24)"),
    ("198.51.100.1", "documentation (198.51.100.0/24)"),
    ("203.0.113.1", "documentation (203.0.113.0/24)"),
    ("2001:db8::1", "documentation (2001:db8::/32)"),
    ("3fff::1", "documentation (3fff::/20)"),
    ("192.0.0.8", "IETF protocol assignments (192.0.0.0/24)"),
    ("169.254.169.254", "cloud metadata (169.254.169.254)"),
    ("169.254.170.2", "cloud metadata (169.254.170.2)"),
    ("fd00:ec2::254", "cloud metadata (fd00:ec2::254)"),
    ("100.100.100.200", "cloud metadata (100.100.100.200)"),
    ("168.63.129.16", "cloud metadata (168.63.129.16)"),
    ("192.0.0.192", "cloud metadata (192.0.0.192)"),
]

EMBEDDED_DENIED = [
    (mapped(LOOPBACK), "ipv4-mapped ::ffff:127.0.0.1 -> loopback (127.0.0.0/8)"),
    (mapped(METADATA), "ipv4-mapped ::ffff:169.254.169.254 -> cloud metadata (169.254.169.254)"),
    (compatible(LOOPBACK), "ipv4-compatible ::7f00:1 -> loopback (127.0.0.0/8)"),
    (compatible(IPv4Address("0.0.0.2")), "ipv4-compatible ::2 -> unspecified (0.0.0.0/8)"),
    (sixtofour(IPv4Address("10.0.0.1")), "6to4 2002:a00:1::1 -> private (10.0.0.0/8)"),
    (
        teredo(IPv4Address("192.168.0.1"), PUBLIC_V4),
        "teredo-server 2001:0:c0a8:1:8000:63bf:a247:27dd -> private (192.168.0.0/16)",
    ),
    (
        teredo(TEREDO_SERVER, LOOPBACK),
        "teredo-client 2001:0:4136:e378:8000:63bf:80ff:fffe -> loopback (127.0.0.0/8)",
    ),
    (nat64(LOOPBACK), "nat64 64:ff9b::7f00:1 -> loopback (127.0.0.0/8)"),
    (
        nat64_local(METADATA, middle=0xABCD),
        "nat64-local 64:ff9b:1::abcd:a9fe:a9fe -> cloud metadata (169.254.169.254)",
    ),
]

PUBLIC = [
    "93.184.216.34",
    "8.8.8.8",
    "1.1.1.1",
    "2606:4700::1111",
    "2001:4860:4860::8888",
    str(mapped(PUBLIC_V4)),
    str(compatible(PUBLIC_V4)),
    str(sixtofour(PUBLIC_V4)),
    str(nat64(PUBLIC_V4)),
    str(nat64_local(PUBLIC_V4)),
    str(teredo(TEREDO_SERVER, PUBLIC_V4)),
]


# -- built-in deny list -------------------------------------------------------------------------


@pytest.mark.parametrize(("address", "rule"), DENIED_BY_DEFAULT)
def test_default_policy_denies_special_address_naming_most_specific_rule(
    address: str, rule: str
) -> None:
    assert DEFAULT.check_address(ip(address)) == Verdict(False, rule)


@pytest.mark.parametrize(("address", "rule"), EMBEDDED_DENIED, ids=lambda v: str(v))
def test_ipv6_forms_embedding_a_denied_ipv4_are_denied_naming_form_and_inner_rule(
    address: IPv6Address, rule: str
) -> None:
    assert DEFAULT.check_address(address) == Verdict(False, rule)


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_and_their_embedded_forms_are_allowed(address: str) -> None:
    assert DEFAULT.check_address(ip(address)) == Verdict(True)
    assert DEFAULT.check_address(ip(address), 443) == Verdict(True)


def test_teredo_is_denied_when_either_embedded_address_is_denied() -> None:
    assert DEFAULT.check_address(teredo(TEREDO_SERVER, PUBLIC_V4)).allowed
    assert not DEFAULT.check_address(teredo(LOOPBACK, PUBLIC_V4)).allowed
    assert not DEFAULT.check_address(teredo(TEREDO_SERVER, LOOPBACK)).allowed


# -- embedded_ipv4 ------------------------------------------------------------------------------


def test_embedded_ipv4_extracts_every_form() -> None:
    a = IPv4Address("198.51.100.7")
    assert embedded_ipv4(mapped(a)) == [("ipv4-mapped", a)]
    assert embedded_ipv4(compatible(a)) == [("ipv4-compatible", a)]
    assert embedded_ipv4(sixtofour(a, suffix=0xDEAD)) == [("6to4", a)]
    assert embedded_ipv4(nat64(a)) == [("nat64", a)]
    assert embedded_ipv4(nat64_local(a, middle=0x1234_5678)) == [("nat64-local", a)]
    assert embedded_ipv4(teredo(TEREDO_SERVER, a)) == [
        ("teredo-server", TEREDO_SERVER),
        ("teredo-client", a),
    ]


def test_embedded_ipv4_decodes_the_rfc4380_teredo_example() -> None:
    assert embedded_ipv4(IPv6Address("2001:0:4136:e378:8000:63bf:3fff:fdd2")) == [
        ("teredo-server", IPv4Address("65.54.227.120")),
        ("teredo-client", IPv4Address("192.0.2.45")),
    ]


@pytest.mark.parametrize("address", ["::", "::1", "2606:4700::1111", "fe80::1", "64:ff9b:2::1"])
def test_embedded_ipv4_is_empty_for_plain_ipv6_including_unspecified_and_loopback(
    address: str,
) -> None:
    assert embedded_ipv4(IPv6Address(address)) == []


# -- ports --------------------------------------------------------------------------------------


@pytest.mark.parametrize("port", [0, -1, 65536, 70000, 65616])
def test_ports_outside_1_to_65535_are_denied(port: int) -> None:
    assert DEFAULT.check_port(port) == Verdict(False, f"port {port} outside 1-65535")
    assert DEFAULT.check_address(PUBLIC_V4, port) == Verdict(False, f"port {port} outside 1-65535")


@pytest.mark.parametrize("port", [1, 80, 443, 65535])
def test_ports_inside_1_to_65535_are_allowed_by_default(port: int) -> None:
    assert DEFAULT.check_port(port) == Verdict(True)


def test_allowed_ports_restricts_to_the_listed_ports() -> None:
    policy = DestinationPolicy(allowed_ports=frozenset({80, 443}))
    assert policy.check_port(443) == Verdict(True)
    assert policy.check_port(25) == Verdict(False, "port 25 not in allowed ports")
    assert policy.check_address(PUBLIC_V4, 25) == Verdict(False, "port 25 not in allowed ports")
    assert policy.check_port(70000) == Verdict(False, "port 70000 outside 1-65535")


def test_port_is_checked_before_the_address() -> None:
    assert DEFAULT.check_address(LOOPBACK, 0) == Verdict(False, "port 0 outside 1-65535")


# -- settings: allowed, denied, own endpoints ---------------------------------------------------


def test_allowed_networks_override_the_builtin_deny_list() -> None:
    policy = DestinationPolicy(allowed_networks=parse_networks("127.0.0.0/8,::1/128,10.9.0.0/16"))
    assert policy.check_address(ip("127.0.0.1"), 8080).allowed
    assert policy.check_address(ip("::1"), 8080).allowed
    assert policy.check_address(ip("10.9.1.1")).allowed
    assert policy.check_address(ip("10.8.0.1")) == Verdict(False, "private (10.0.0.0/8)")
    assert policy.check_address(ip("::2")).allowed is False


def test_ipv4_mapped_form_of_an_allowed_address_is_allowed() -> None:
    policy = DestinationPolicy(allowed_networks=parse_networks("127.0.0.0/8"))
    assert policy.check_address(mapped(LOOPBACK), 8080).allowed
    assert policy.check_address(nat64(LOOPBACK)).allowed


def test_allowing_an_ipv6_wrapper_does_not_allow_the_denied_ipv4_inside_it() -> None:
    policy = DestinationPolicy(allowed_networks=parse_networks("::/0"))
    assert policy.check_address(ip("fd00::1")).allowed
    assert not policy.check_address(mapped(LOOPBACK)).allowed
    assert not policy.check_address(sixtofour(LOOPBACK)).allowed


def test_cloud_metadata_yields_only_to_an_allowed_network_inside_its_own() -> None:
    broad = DestinationPolicy(allowed_networks=parse_networks("169.254.0.0/16,0.0.0.0/0"))
    assert broad.check_address(ip("169.254.1.1")).allowed
    assert broad.check_address(METADATA) == Verdict(False, "cloud metadata (169.254.169.254)")
    assert broad.check_address(ip("168.63.129.16")) == Verdict(
        False, "cloud metadata (168.63.129.16)"
    )
    exact = DestinationPolicy(allowed_networks=parse_networks("169.254.169.254/32"))
    assert exact.check_address(METADATA).allowed


def test_denied_networks_beat_allowed_networks() -> None:
    policy = DestinationPolicy(
        allowed_networks=parse_networks("10.0.0.0/8"),
        denied_networks=parse_networks("10.9.0.0/16"),
    )
    assert policy.check_address(ip("10.1.1.1")).allowed
    assert policy.check_address(ip("10.9.1.1")) == Verdict(
        False, "network 10.9.0.0/16 denied by settings"
    )


def test_denied_networks_apply_to_public_addresses_and_their_embedded_forms() -> None:
    policy = DestinationPolicy(denied_networks=parse_networks("8.0.0.0/8, 8.8.8.0/24"))
    deny = "network 8.8.8.0/24 denied by settings"
    assert policy.check_address(ip("8.8.8.8")) == Verdict(False, deny)
    assert policy.check_address(ip("8.1.1.1")) == Verdict(
        False, "network 8.0.0.0/8 denied by settings"
    )
    assert policy.check_address(ip("::ffff:8.8.8.8")) == Verdict(
        False, f"ipv4-mapped ::ffff:8.8.8.8 -> {deny}"
    )


def test_denied_networks_are_reported_before_builtin_rules() -> None:
    policy = DestinationPolicy(denied_networks=parse_networks("10.9.0.0/16,2002::/16"))
    assert policy.check_address(ip("10.9.0.1")).rule == "network 10.9.0.0/16 denied by settings"
    assert policy.check_address(sixtofour(PUBLIC_V4)).rule == (
        "network 2002::/16 denied by settings"
    )


def test_own_endpoint_is_denied_even_inside_allowed_networks() -> None:
    policy = DestinationPolicy(
        allowed_networks=parse_networks("127.0.0.0/8,0.0.0.0/8"),
        own_endpoints=[(LOOPBACK, 8000)],
        allowed_ports=frozenset({8000, 8001}),
    )
    own = Verdict(False, "the service's own listen address 127.0.0.1:8000")
    assert policy.check_address(LOOPBACK, 8000) == own
    assert policy.check_address(ip("0.0.0.0"), 8000) == own  # the kernel routes 0.0.0.0 to lo
    assert policy.check_address(mapped(LOOPBACK), 8000) == Verdict(
        False, f"ipv4-mapped ::ffff:127.0.0.1 -> {own.rule}"
    )
    assert policy.check_address(LOOPBACK, 8001).allowed
    assert policy.check_address(ip("127.0.0.2"), 8000).allowed
    assert policy.check_addresses([LOOPBACK], 8000) == own


def test_own_endpoint_needs_a_port_to_match() -> None:
    policy = DestinationPolicy(
        allowed_networks=parse_networks("127.0.0.0/8"), own_endpoints=[(LOOPBACK, 8000)]
    )
    assert policy.check_address(LOOPBACK).allowed


@pytest.mark.parametrize(("listen", "shown"), [("0.0.0.0", "0.0.0.0:8000"), ("::", "[::]:8000")])
@pytest.mark.parametrize("target", ["127.0.0.1", "127.3.2.1", "::1", "0.0.0.0", "::"])
def test_wildcard_own_endpoint_denies_its_port_on_every_loopback_address(
    listen: str, shown: str, target: str
) -> None:
    policy = DestinationPolicy(
        allowed_networks=parse_networks("127.0.0.0/8,::1/128,0.0.0.0/8,::/128"),
        own_endpoints=[(ip(listen), 8000)],
    )
    assert policy.check_address(ip(target), 8000) == Verdict(
        False, f"the service's own listen address {shown}"
    )
    assert policy.check_address(ip(target), 8001).allowed
    assert policy.check_address(PUBLIC_V4, 8000).allowed


def test_own_endpoint_given_in_ipv4_mapped_form_matches_the_ipv4_address() -> None:
    policy = DestinationPolicy(
        allowed_networks=parse_networks("127.0.0.0/8"), own_endpoints=[(mapped(LOOPBACK), 9000)]
    )
    assert policy.check_address(LOOPBACK, 9000).rule == (
        "the service's own listen address 127.0.0.1:9000"
    )


def test_own_endpoint_is_reported_before_denied_networks() -> None:
    policy = DestinationPolicy(
        denied_networks=parse_networks("127.0.0.0/8"), own_endpoints=[(LOOPBACK, 8000)]
    )
    assert policy.check_address(LOOPBACK, 8000).rule == (
        "the service's own listen address 127.0.0.1:8000"
    )


# -- check_addresses ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "answers", [["8.8.8.8", "127.0.0.1"], ["127.0.0.1", "8.8.8.8"], ["2606:4700::1111", "::1"]]
)
def test_any_denied_answer_denies_the_whole_name(answers: list[str]) -> None:
    verdict = DEFAULT.check_addresses([ip(a) for a in answers], 443)
    assert not verdict.allowed
    assert verdict.rule is not None
    assert verdict.rule.startswith("loopback")


def test_first_denied_answer_in_order_is_reported() -> None:
    answers = [ip("8.8.8.8"), ip("10.0.0.1"), ip("127.0.0.1")]
    assert DEFAULT.check_addresses(answers).rule == "private (10.0.0.0/8)"


def test_all_public_answers_allow_the_name() -> None:
    assert DEFAULT.check_addresses([ip("8.8.8.8"), ip("2606:4700::1111")], 443) == Verdict(True)


def test_empty_answer_list_is_denied() -> None:
    assert DEFAULT.check_addresses([]) == Verdict(False, "no addresses to connect to")
    assert DEFAULT.check_addresses([], 443).allowed is False
    assert DEFAULT.check_addresses([], 0) == Verdict(False, "port 0 outside 1-65535")


# -- parse_networks -----------------------------------------------------------------------------


def test_parse_networks_accepts_a_comma_separated_string_with_blanks() -> None:
    assert parse_networks(" 127.0.0.0/8, ,::1/128,10.1.2.3/8 ,") == (
        IPv4Network("127.0.0.0/8"),
        IPv6Network("::1/128"),
        IPv4Network("10.0.0.0/8"),
    )


def test_parse_networks_accepts_a_list_and_bare_addresses() -> None:
    assert parse_networks(["192.168.1.7", " fd00::/8 ", ""]) == (
        IPv4Network("192.168.1.7/32"),
        IPv6Network("fd00::/8"),
    )
    assert parse_networks("") == ()


@pytest.mark.parametrize("bad", ["10.0.0.0/33", "example.com", "1.2.3.4/8/8"])
def test_parse_networks_names_the_bad_item(bad: str) -> None:
    with pytest.raises(ValueError, match="invalid network") as excinfo:
        parse_networks(f"10.0.0.0/8,{bad}")
    assert repr(bad) in str(excinfo.value)


# -- properties ---------------------------------------------------------------------------------

IPV4_RULES = [r for r in BUILTIN_RULES if r.network.version == 4]
IPV6_RULES = [r for r in BUILTIN_RULES if r.network.version == 6]
# The same policy must be applied to the embedded address, settings included.
POLICIES = {
    "default": DEFAULT,
    "with-settings": DestinationPolicy(
        allowed_networks=parse_networks("127.0.0.0/8,10.0.0.0/8,169.254.0.0/16"),
        denied_networks=parse_networks("10.9.0.0/16,8.8.0.0/16"),
    ),
}
PROPERTY = settings(max_examples=150, deadline=None)
PER_RANGE = settings(max_examples=40, deadline=None)  # times ~40 ranges


def inside(network: IPv4Network | IPv6Network) -> st.SearchStrategy[IPAddress]:
    base = network.network_address
    return st.integers(0, network.num_addresses - 1).map(lambda n: base + n)


ipv4s = st.one_of(
    st.ip_addresses(v=4),
    st.sampled_from(IPV4_RULES).flatmap(lambda r: inside(r.network)),
    st.sampled_from(
        [
            *(LOOPBACK, METADATA, IPv4Address(0), IPv4Address(1), PUBLIC_V4),
            *(IPv4Address("8.8.8.8"), IPv4Address("10.9.1.2")),  # hit POLICIES' settings
        ]
    ),
).map(lambda a: IPv4Address(int(a)))


def _within(rule: str, network: IPv4Network | IPv6Network) -> bool:
    # The reported rule is the range itself or a more specific built-in one inside it.
    return any(
        r.describe() == rule
        and r.network.prefixlen >= network.prefixlen
        and r.network.network_address in network
        for r in BUILTIN_RULES
    )


@pytest.mark.parametrize("rule", IPV4_RULES, ids=Rule.describe)
@PER_RANGE
@given(data=st.data())
def test_any_address_inside_a_builtin_ipv4_range_is_denied(rule: Rule, data: st.DataObject) -> None:
    address = data.draw(inside(rule.network))
    verdict = DEFAULT.check_address(address, 443)
    assert not verdict.allowed
    assert verdict.rule is not None
    assert _within(verdict.rule, rule.network)


@pytest.mark.parametrize("rule", IPV6_RULES, ids=Rule.describe)
@PER_RANGE
@given(data=st.data())
def test_any_plain_address_inside_a_builtin_ipv6_range_is_denied(
    rule: Rule, data: st.DataObject
) -> None:
    address = data.draw(inside(rule.network))
    assert isinstance(address, IPv6Address)
    if embedded_ipv4(address):
        return  # judged by the IPv4 inside: see the classification property below
    verdict = DEFAULT.check_address(address)
    assert not verdict.allowed
    assert verdict.rule is not None
    assert _within(verdict.rule, rule.network)


@PROPERTY
@given(address=st.ip_addresses(v=4))
def test_every_ipv4_address_the_stdlib_calls_non_global_is_denied(address: IPv4Address) -> None:
    if not address.is_global:
        assert not DEFAULT.check_address(address).allowed


@PROPERTY
@given(top=st.sampled_from([0, 2, 3, 4, 5, 6, 7]), rest=st.integers(0, 2**125 - 1))
def test_ipv6_outside_global_unicast_without_embedded_ipv4_is_denied(top: int, rest: int) -> None:
    address = IPv6Address(top << 125 | rest)  # top 3 bits 001 would be 2000::/3
    if embedded_ipv4(address):
        return  # judged by the IPv4 inside: see the classification property below
    assert not DEFAULT.check_address(address).allowed


@pytest.mark.parametrize("name", POLICIES)
@PROPERTY
@given(
    a=ipv4s,
    suffix=st.integers(0, 2**80 - 1),
    middle=st.integers(0, 2**48 - 1),
    flags_port=st.integers(0, 2**32 - 1),
    port=st.sampled_from([None, 80, 443]),
)
def test_embedded_forms_classify_exactly_like_the_ipv4_address(
    name: str, a: IPv4Address, suffix: int, middle: int, flags_port: int, port: int | None
) -> None:
    policy = POLICIES[name]
    expected = policy.check_address(a, port)
    forms = {
        "mapped": mapped(a),
        # :: and ::1 are not embedded forms, but 0.0.0.0 and 0.0.0.1 are denied like them.
        "compatible": compatible(a),
        "6to4": sixtofour(a, suffix),
        "nat64": nat64(a),
        "nat64-local": nat64_local(a, middle),
        "teredo-client": teredo(TEREDO_SERVER, a, flags_port),
    }
    for form, address in forms.items():
        verdict = policy.check_address(address, port)
        assert verdict.allowed == expected.allowed, (form, str(address), verdict, expected)
        if not expected.allowed and int(a) > 1:
            assert verdict.rule is not None
            assert verdict.rule.endswith(f" -> {expected.rule}"), (form, verdict)
