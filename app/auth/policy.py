"""Whether keys are required, and which address a call comes from."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from app.engine.policy import IPAddress, IPNetwork, parse_networks


def keys_required(mode: str, host: str) -> bool:
    """`auto` leaves the API open only while the service listens on loopback alone: then
    only this machine can call it (as before keys existed). A reverse proxy on the same host
    connects from loopback too, hence `required` there."""
    if mode == "off":
        return False
    if mode == "required":
        return True
    return not _loopback_only(host)


def _loopback_only(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a name: whatever it resolves to, not known to be loopback
        return False


class ClientAddress:
    """The caller's address: the peer's, or, when the peer is a trusted proxy, the nearest
    address in X-Forwarded-For that is not one (the ones before it could be made up)."""

    def __init__(self, trusted_proxies: Sequence[str]) -> None:
        self._trusted: tuple[IPNetwork, ...] = parse_networks(tuple(trusted_proxies))

    def of(self, peer: str | None, forwarded_for: str | None) -> str:
        peer = peer or "unknown"
        if not forwarded_for or not self._is_trusted(peer):
            return peer
        hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
        for hop in reversed(hops):
            if not self._is_trusted(hop):
                return hop
        return hops[0] if hops else peer

    def _is_trusted(self, address: str) -> bool:
        parsed = _parse(address)
        return parsed is not None and any(parsed in network for network in self._trusted)


def _parse(address: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(address.split("%")[0])
    except ValueError:
        return None
