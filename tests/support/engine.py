"""Engine parts built for tests: loopback allowed, real DNS, real sockets."""

from __future__ import annotations

from pathlib import Path

from app.engine.policy import DestinationPolicy, parse_networks
from app.engine.resolver import Resolver, SystemResolver
from app.engine.transport import HttpLayer

LOOPBACK = ("127.0.0.0/8", "::1/128")


def loopback_policy() -> DestinationPolicy:
    return DestinationPolicy(allowed_networks=parse_networks(LOOPBACK))


def make_http(
    resolver: Resolver | None = None,
    policy: DestinationPolicy | None = None,
    ca_bundle: Path | None = None,
    max_idle_clients: int = 256,
) -> HttpLayer:
    return HttpLayer(
        "test-agent",
        policy or loopback_policy(),
        resolver or SystemResolver(),
        ca_bundle=ca_bundle,
        max_idle_clients=max_idle_clients,
    )
