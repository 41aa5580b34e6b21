"""Destination policy: may the service open a TCP connection to this IP address and port?

The service fetches URLs that strangers send it, so the check runs at connect time against the
address actually being connected to. Host names, DNS rebinding and odd spellings ("2130706433",
"0x7f.1") therefore never matter here: only resolved addresses do.

Precedence in ``check_address(ip, port)``, first match decides:

1. Port: outside 1-65535, or not in ``allowed_ports`` when that is set.
2. Own endpoints: the service's own listen (ip, port). A wildcard listen address (0.0.0.0, ::)
   denies its port on every loopback and unspecified address, of either family, and connecting
   to an unspecified address counts as connecting to loopback (that is what the kernel does).
   Skipped when ``port`` is None.
3. ``denied_networks`` from settings, reporting the most specific (longest prefix) match.
4. IPv6 forms that embed IPv4 (mapped, compatible, 6to4, Teredo, NAT64): each embedded IPv4
   address is run through this whole policy, with the same port, and the first denial in
   ``embedded_ipv4`` order decides; if none is denied the address is allowed. An
   ``allowed_networks`` entry covering only the IPv6 form does not launder a denied IPv4
   inside it: allow the IPv4 address instead.
5. Built-in deny list, most specific match reported (cloud metadata over link-local). An
   ``allowed_networks`` entry containing the address overrides it, except that a cloud metadata
   address yields only to an allowed network inside its own (169.254.169.254/32), never to a
   broad LAN allowance such as 169.254.0.0/16 or 100.64.0.0/10: metadata hands out credentials.
6. Otherwise allowed.

``check_addresses`` checks the port first, then every answer in order, and returns the first
denial: one bad answer denies the name, and an empty answer is denied too.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_network
from typing import TypeAlias

IPAddress: TypeAlias = IPv4Address | IPv6Address
IPNetwork: TypeAlias = IPv4Network | IPv6Network

__all__ = [
    "BUILTIN_RULES",
    "DestinationPolicy",
    "IPAddress",
    "IPNetwork",
    "Rule",
    "Verdict",
    "embedded_ipv4",
    "parse_networks",
]

CLOUD_METADATA = "cloud metadata"

# Where a built-in denial can be lifted; shown with it, since a newcomer's first check of a
# local URL meets one (the name is the setting's in app/config.py and its variable's).
ALLOW_HINT = (
    "to check it, add its network to the setting allowed_networks (URLHEALTH_ALLOWED_NETWORKS)"
)


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    rule: str | None = None
    # True when allowed_networks could allow it: a built-in rule other than cloud metadata.
    # Advice, not part of the decision, so verdicts compare without it.
    allowable: bool = field(default=False, compare=False)

    def explain(self) -> str:
        """The rule, and for a built-in denial the setting that lifts it."""
        rule = self.rule or "denied"
        return f"{rule}; {ALLOW_HINT}" if self.allowable else rule


ALLOWED = Verdict(True)


@dataclass(frozen=True, slots=True)
class Rule:
    network: IPNetwork
    label: str

    def describe(self) -> str:
        net = self.network
        where = net.network_address if net.prefixlen == net.max_prefixlen else net
        return f"{self.label} ({where})"


def _rules(label: str, *networks: str) -> list[Rule]:
    return [Rule(ip_network(n), label) for n in networks]


# What ipaddress calls is_reserved for IPv6: everything outside 2000::/3 that has no more
# specific meaning. Embedded-IPv4 forms inside ::/8 are judged by step 4 before this applies.
_IPV6_RESERVED = (
    *("::/8", "100::/8", "200::/7", "400::/6", "800::/5", "1000::/4", "4000::/3", "6000::/3"),
    *("8000::/3", "a000::/3", "c000::/3", "e000::/4", "f000::/5", "f800::/6", "fe00::/9"),
)

# Sorted longest prefix first, so the first match is the most specific rule.
BUILTIN_RULES: tuple[Rule, ...] = tuple(
    sorted(
        [
            *_rules("loopback", "127.0.0.0/8", "::1/128"),
            *_rules("private", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"),
            *_rules("link-local", "169.254.0.0/16", "fe80::/10"),
            # Deprecated, but some stacks still route it on-link like private space.
            *_rules("site-local", "fec0::/10"),
            *_rules("CGNAT", "100.64.0.0/10"),
            *_rules("multicast", "224.0.0.0/4", "ff00::/8"),
            *_rules("reserved", "240.0.0.0/4", *_IPV6_RESERVED),
            *_rules("unspecified", "0.0.0.0/8", "::/128"),
            *_rules("broadcast", "255.255.255.255/32"),
            *_rules("benchmarking", "198.18.0.0/15", "2001:2::/48"),
            *_rules(
                "documentation",
                *("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24"),
                *("2001:db8::/32", "3fff::/20"),  # 3fff::/20 is RFC 9637 (2024)
            ),
            *_rules("IETF protocol assignments", "192.0.0.0/24"),
            *_rules(
                CLOUD_METADATA,
                *("169.254.169.254/32", "169.254.170.2/32", "fd00:ec2::254/128"),
                *("100.100.100.200/32", "168.63.129.16/32", "192.0.0.192/32"),
            ),
        ],
        key=lambda rule: -rule.network.prefixlen,
    )
)

_COMPATIBLE = IPv6Network("::/96")
_NAT64 = IPv6Network("64:ff9b::/96")
_NAT64_LOCAL = IPv6Network("64:ff9b:1::/48")


def embedded_ipv4(ip: IPv6Address) -> list[tuple[str, IPv4Address]]:
    """Every IPv4 address ``ip`` carries, as (form name, address); empty if none."""
    low32 = IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.ipv4_mapped is not None:
        return [("ipv4-mapped", ip.ipv4_mapped)]
    if ip in _COMPATIBLE:
        # :: and ::1 are the IPv6 unspecified and loopback addresses, not 0.0.0.0 and 0.0.0.1.
        return [("ipv4-compatible", low32)] if int(ip) > 1 else []
    if ip.sixtofour is not None:
        return [("6to4", ip.sixtofour)]
    if ip.teredo is not None:
        server, client = ip.teredo
        return [("teredo-server", server), ("teredo-client", client)]
    if ip in _NAT64:
        return [("nat64", low32)]
    if ip in _NAT64_LOCAL:
        return [("nat64-local", low32)]
    return []


def parse_networks(value: str | Iterable[str]) -> tuple[IPNetwork, ...]:
    """Parse "10.0.0.0/8, ::1" or ["10.0.0.0/8", "::1"]; empty items are ignored."""
    items = value.split(",") if isinstance(value, str) else value
    networks: list[IPNetwork] = []
    for item in items:
        text = item.strip()
        if not text:
            continue
        try:
            networks.append(ip_network(text, strict=False))
        except ValueError as exc:
            raise ValueError(f"invalid network {text!r}: {exc}") from None
    return tuple(networks)


def _plain(ip: IPAddress) -> IPAddress:
    # A zone id ("fe80::1%eth0") would make equality with own endpoints fail.
    if isinstance(ip, IPv6Address) and ip.scope_id is not None:
        return IPv6Address(int(ip))
    return ip


def _show(ip: IPAddress) -> str:
    # Python 3.11 prints ::ffff:7f00:1; the dotted form is what people recognise.
    if isinstance(ip, IPv6Address) and ip.ipv4_mapped is not None:
        return f"::ffff:{ip.ipv4_mapped}"
    return str(ip)


def _endpoint(ip: IPAddress, port: int) -> str:
    return f"[{_show(ip)}]:{port}" if ip.version == 6 else f"{ip}:{port}"


def _is_local(ip: IPAddress) -> bool:
    return ip.is_loopback or ip.is_unspecified


class DestinationPolicy:
    """Decides whether a connection to (ip, port) is allowed. Immutable and thread-safe."""

    def __init__(
        self,
        allowed_networks: Iterable[IPNetwork] = (),
        denied_networks: Iterable[IPNetwork] = (),
        own_endpoints: Iterable[tuple[IPAddress, int]] = (),
        allowed_ports: frozenset[int] | None = None,
    ) -> None:
        self.allowed_networks: tuple[IPNetwork, ...] = tuple(allowed_networks)
        self.denied_networks: tuple[IPNetwork, ...] = tuple(
            sorted(denied_networks, key=lambda net: -net.prefixlen)
        )
        own: list[tuple[IPAddress, int]] = []
        for ip, port in own_endpoints:
            ip = _plain(ip)
            if isinstance(ip, IPv6Address) and ip.ipv4_mapped is not None:
                ip = ip.ipv4_mapped
            own.append((ip, port))
        self.own_endpoints: tuple[tuple[IPAddress, int], ...] = tuple(own)
        self.allowed_ports = allowed_ports

    def check_port(self, port: int) -> Verdict:
        # Must run before any lookup or socket: getaddrinfo wraps ports modulo 65536, so
        # 65616 quietly comes back as 80.
        if not 1 <= port <= 65535:
            return Verdict(False, f"port {port} outside 1-65535")
        if self.allowed_ports is not None and port not in self.allowed_ports:
            return Verdict(False, f"port {port} not in allowed ports")
        return ALLOWED

    def check_address(self, ip: IPAddress, port: int | None = None) -> Verdict:
        if port is not None:
            verdict = self.check_port(port)
            if not verdict.allowed:
                return verdict
            verdict = self._check_own(_plain(ip), port)
            if not verdict.allowed:
                return verdict
        return self._check_ip(_plain(ip), port)

    def check_addresses(self, ips: Sequence[IPAddress], port: int | None = None) -> Verdict:
        if port is not None:
            verdict = self.check_port(port)
            if not verdict.allowed:
                return verdict
        if not ips:
            return Verdict(False, "no addresses to connect to")
        for ip in ips:
            verdict = self.check_address(ip, port)
            if not verdict.allowed:
                return verdict
        return ALLOWED

    def _check_own(self, ip: IPAddress, port: int) -> Verdict:
        for own_ip, own_port in self.own_endpoints:
            if port != own_port:
                continue
            if (
                ip == own_ip
                or (own_ip.is_unspecified and _is_local(ip))
                or (ip.is_unspecified and own_ip.is_loopback)
            ):
                return Verdict(False, f"the service's own listen address {_endpoint(own_ip, port)}")
        return ALLOWED

    def _check_ip(self, ip: IPAddress, port: int | None) -> Verdict:
        for net in self.denied_networks:
            if ip in net:
                return Verdict(False, f"network {net} denied by settings")
        if isinstance(ip, IPv6Address):
            embedded = embedded_ipv4(ip)
            for form, inner in embedded:
                verdict = self.check_address(inner, port)
                if not verdict.allowed:
                    shown = f"{form} {_show(ip)} -> {verdict.rule}"
                    return Verdict(False, shown, verdict.allowable)
            if embedded:
                return ALLOWED
        rule = next((r for r in BUILTIN_RULES if ip in r.network), None)
        if rule is None:
            return ALLOWED
        sticky = rule.label == CLOUD_METADATA
        for net in self.allowed_networks:
            # Both contain ip, so a prefix at least as long means net lies inside the rule's.
            if ip in net and (not sticky or net.prefixlen >= rule.network.prefixlen):
                return ALLOWED
        return Verdict(False, rule.describe(), allowable=not sticky)
