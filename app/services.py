"""The composition root: builds the engine, the store and the lifecycle from settings."""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from dataclasses import dataclass, field

from app.alerts.contract import NO_SENDERS, Senders
from app.alerts.policy import DeliveryConfig
from app.alerts.retention import AlertRetention
from app.alerts.service import Alerts
from app.config import Settings
from app.engine.checker import Checker
from app.engine.dispatcher import Dispatcher
from app.engine.dnscache import SharedResolver
from app.engine.options import RetryPolicy
from app.engine.policy import DestinationPolicy, IPAddress, parse_networks
from app.engine.resolver import Resolver, SystemResolver
from app.engine.transport import HttpLayer
from app.lifecycle.coordinator import ShutdownCoordinator
from app.monitors.retention import HistoryRetention
from app.store.durable import DurableStore
from app.store.storage import Storage


@dataclass(eq=False)
class Services:
    settings: Settings
    storage: Storage
    http: HttpLayer
    dispatcher: Dispatcher
    coordinator: ShutdownCoordinator
    alerts: Alerts
    started_monotonic: float = field(default_factory=time.monotonic)

    @classmethod
    def build(
        cls,
        settings: Settings,
        resolver: Resolver | None = None,
        alert_senders: Senders | None = None,
    ) -> Services:
        """`resolver` is for tests that need DNS answers no real name has; `alert_senders`
        for tests that send alerts to a loopback receiver. Opens (and migrates) the
        database: raises DatabaseError, naming the masked URL, if it cannot."""
        history = HistoryRetention(settings.history_raw_days, settings.history_rollup_days)
        outbox = AlertRetention(settings.alert_retention_days)
        storage = Storage.open(settings, retention_tasks=(history, outbox))
        store = storage.store
        http = HttpLayer(
            settings.user_agent,
            destination_policy(settings),
            shared_resolver(settings, resolver),
            ca_bundle=settings.ca_bundle,
            max_idle_clients=2 * settings.workers,
        )
        stopping = threading.Event()
        retry = RetryPolicy(base_s=settings.retry_backoff_s, max_delay_s=settings.retry_max_delay_s)
        dispatcher = Dispatcher(
            store,
            Checker(http, retry, stopping),
            workers=settings.workers,
            max_queued=settings.max_queued_checks,
            max_per_host=settings.max_connections_per_host,
            min_host_interval_s=settings.min_host_interval_s,
        )
        coordinator = ShutdownCoordinator(dispatcher, http, settings.shutdown_grace_s, stopping)
        # The monitors' Recorder takes `alerts.hook` as its on_transition.
        alerts = Alerts(
            storage.database,
            storage.writer,
            alert_senders or NO_SENDERS,
            storage.instance.id,
            DeliveryConfig.from_settings(settings),
        ).start()
        return cls(settings, storage, http, dispatcher, coordinator, alerts)

    @property
    def store(self) -> DurableStore:
        return self.storage.store

    def close(self) -> None:
        """After the drain: release the pool and the connections, then flush what is left
        for the database (every check is final by now) and close it."""
        self.dispatcher.close()
        # Before the writer stops: sends in flight are recorded, unsent claims given back.
        self.alerts.stop(self.settings.shutdown_grace_s)
        self.http.abort_in_flight()
        self.http.close()
        self.storage.close()


def shared_resolver(settings: Settings, inner: Resolver | None = None) -> SharedResolver:
    """The system resolver (or a test's) behind the fair, caching front every check uses.

    A test's resolver is wrapped too, so the service under test resolves as in production;
    tests that need a fresh answer per connect (DNS rebinding) build the engine without it.
    """
    return SharedResolver(
        # Sized like the front, so its own bound never binds first.
        inner or SystemResolver(max_in_flight=settings.dns_max_in_flight),
        max_in_flight=settings.dns_max_in_flight,
        per_owner=settings.dns_slots_per_job,
        ttl_s=settings.dns_cache_ttl_s,
        negative_ttl_s=settings.dns_negative_ttl_s,
        max_names=settings.dns_cache_max_names,
    )


def destination_policy(settings: Settings) -> DestinationPolicy:
    return DestinationPolicy(
        allowed_networks=parse_networks(settings.allowed_networks),
        denied_networks=parse_networks(settings.denied_networks),
        own_endpoints=[(address, settings.port) for address in _own_addresses(settings.host)],
        allowed_ports=frozenset(settings.allowed_ports) or None,
    )


def _own_addresses(host: str) -> list[IPAddress]:
    """The listen address as IPs, so the service can't be told to check itself."""
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:  # a name like "localhost": resolved once, at startup, from local sources
        answers = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError:
        return []
    return [ipaddress.ip_address(str(answer[4][0]).split("%")[0]) for answer in answers]
