"""The composition root: builds the engine, the store and the lifecycle from settings."""

from __future__ import annotations

import functools
import ipaddress
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from app.alerts.contract import Senders
from app.alerts.policy import DeliveryConfig
from app.alerts.retention import AlertRetention
from app.alerts.senders import channel_senders
from app.alerts.service import Alerts
from app.auth.gate import Auth
from app.cluster.calls import Calls
from app.cluster.chunk import ChunkRunner
from app.cluster.counts import ClusterJobCounts
from app.cluster.handlers import handlers
from app.cluster.jobs import CHUNK_TASK, ClusterJobs
from app.cluster.queue import TaskSpec
from app.cluster.replica import Replica
from app.cluster.results_writer import ResultsWriter
from app.cluster.retention import QueueRetention
from app.cluster.wakeups import Unsubscribe
from app.config import Settings
from app.engine.checker import Checker
from app.engine.dispatcher import Dispatcher
from app.engine.dnscache import SharedResolver
from app.engine.options import RetryPolicy
from app.engine.policy import DestinationPolicy, IPAddress, parse_networks
from app.engine.resolver import Resolver, SystemResolver
from app.engine.transport import HttpLayer
from app.lifecycle.coordinator import ShutdownCoordinator
from app.metrics.exporter import Metrics
from app.metrics.probe import Prober
from app.metrics.service import AlertCounts
from app.monitors.monitoring import Monitoring
from app.monitors.retention import HistoryRetention
from app.monitors.service import Monitors
from app.store.durable import DurableStore
from app.store.storage import Storage


@dataclass(eq=False)
class Services:
    settings: Settings
    storage: Storage
    http: HttpLayer
    dispatcher: Dispatcher
    coordinator: ShutdownCoordinator
    metrics: Metrics
    prober: Prober
    monitoring: Monitoring
    alerts: Alerts
    auth: Auth
    # This process as one of several replicas on PostgreSQL; None when it runs alone.
    replica: Replica | None = None
    # Batch jobs through the database and the task queue, when on a cluster.
    cluster_jobs: ClusterJobs | None = None
    # `/v1/check`, `/probe` and check-now run on a worker when this replica runs no checks.
    calls: Calls | None = None
    # The one writer of chunks' results, on a replica that runs checks.
    results_writer: ResultsWriter | None = None
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
        queue = QueueRetention(settings.db_retention_days)  # ended tasks, on PostgreSQL
        storage = Storage.open(settings, retention_tasks=(history, outbox, queue))
        store = storage.store
        try:  # keys first: a data_dir the admin key cannot be written to stops start here
            auth = Auth.build(settings, storage.database, storage.writer)
        except Exception:
            storage.close()
            raise
        policy = destination_policy(settings)
        names = shared_resolver(settings, resolver)
        http = HttpLayer(
            settings.user_agent,
            policy,
            names,
            ca_bundle=settings.ca_bundle,
            max_idle_clients=2 * (settings.workers + settings.monitor_workers),
        )
        replica = None
        if settings.clustered:
            replica = Replica.build(
                storage.database.url,
                settings.role,
                settings.cluster_lease_s,
                concurrency=_chunks_at_once(settings),
                channels=CHANNELS,
            )
        stopping = threading.Event()
        retry = RetryPolicy(base_s=settings.retry_backoff_s, max_delay_s=settings.retry_max_delay_s)
        dispatcher = Dispatcher(
            store,
            Checker(http, retry, stopping),
            workers=settings.workers,
            max_queued=settings.max_queued_checks,
            max_per_host=settings.max_connections_per_host_per_replica,
            min_host_interval_s=settings.min_host_interval_s,
            monitor_workers=settings.monitor_workers,
            monitor_slots_per_host=settings.monitor_slots_per_host,
        )
        # Alerts are written in the transaction of the state change the recorder decides.
        alerts = Alerts(
            storage.database,
            storage.writer,
            alert_senders or channel_senders(http, policy, names),
            storage.instance.id,
            DeliveryConfig.from_settings(settings),
        )
        if replica is None or replica.runs_checks:  # an API replica leaves sending to them
            alerts.start()
        monitoring = Monitoring.build(
            settings,
            storage.database,
            storage.writer,
            dispatcher,
            alerts.hook,
            alerts.file_tables,
            alerts.in_maintenance_now,
            replica,
        )
        coordinator = ShutdownCoordinator(
            dispatcher,
            http,
            settings.shutdown_grace_s,
            stopping,
            # No due monitor nor queued task should meet a dispatcher that refuses work.
            first=functools.partial(_halt, monitoring, replica),
        )
        metrics = Metrics(
            storage.database.engine,
            dispatcher,
            storage.writer,
            max_queued=settings.max_queued_checks,
            scheduler_stats=monitoring.scheduler.stats,
            alerts=functools.partial(_alert_counts, alerts),
        )
        prober = Prober(settings, lambda: monitoring.monitors.modules)
        cluster_jobs = results_writer = None
        if replica is not None:
            if replica.runs_checks:
                results_writer = ResultsWriter(storage.database)
                chunks = ChunkRunner(storage.database, dispatcher, stopping, results_writer)
                replica.register(TaskSpec(CHUNK_TASK, chunks))
                results_writer.start()
            cluster_jobs = _cluster_jobs(settings, storage, replica)
        calls = None
        if replica is not None:
            calls = Calls(storage.database, replica)
            answers = handlers(settings, dispatcher, prober, monitoring.monitors)
            for kind, handler in answers.items():
                calls.handle(kind, handler)
            replica.register(calls.spec())
        return cls(
            settings,
            storage,
            http,
            dispatcher,
            coordinator,
            metrics,
            prober,
            monitoring,
            alerts,
            auth,
            replica,
            cluster_jobs,
            calls,
            results_writer,
        )

    @property
    def store(self) -> DurableStore:
        return self.storage.store

    @property
    def monitors(self) -> Monitors:
        return self.monitoring.monitors

    def close(self) -> None:
        """After the drain: release the pool and the connections, then flush what is left
        for the database (every check is final by now) and close it."""
        if self.replica is not None:  # its running tasks ended with the drain
            self.replica.close(self.settings.shutdown_grace_s + 5.0)
        if self.results_writer is not None:  # after the chunks: they wait for their writes
            self.results_writer.stop(5.0)
        self.dispatcher.close()
        # Before the writer stops: sends in flight are recorded, unsent claims given back.
        self.alerts.stop(self.settings.shutdown_grace_s)
        self.http.abort_in_flight()
        self.http.close()
        self.storage.close()


# Wake-up channels replicas listen on (app/cluster/wakeups.py).
CHANNELS = ("urlhealth_jobs", "urlhealth_monitors", "urlhealth_calls")


def _cluster_jobs(settings: Settings, storage: Storage, replica: Replica) -> ClusterJobs:
    """Batch jobs on a cluster (app/cluster/jobs.py): streams of jobs on disk are woken by
    the database; status counts are the cluster's."""
    store = storage.store
    store.watch = functools.partial(_watch_job, replica)
    counts = ClusterJobCounts(storage.database)
    counts.refresh()  # the first /v1/status answers the database's counts, not zeros
    store.cluster_counts = counts.snapshot
    return ClusterJobs(
        storage.database, replica.queue, settings.max_queued_checks, settings.chunk_size
    )


def _watch_job(replica: Replica, job_id: str, callback: Callable[[], None]) -> Unsubscribe:
    return replica.wakeups.subscribe("urlhealth_jobs", job_id, callback)


def _chunks_at_once(settings: Settings) -> int:
    """Enough chunks at once to keep every worker thread busy, and one more in hand."""
    return max(2, -(-settings.workers // settings.chunk_size) + 1)


def _halt(monitoring: Monitoring, replica: Replica | None) -> None:
    monitoring.halt()
    if replica is not None:
        replica.stop_taking()


def _alert_counts(alerts: Alerts) -> list[AlertCounts]:
    """Messages sent and given up per channel since start, labelled by the channel's slug."""
    counts = alerts.delivery.counts()
    if not counts:
        return []
    slugs = alerts.channel_slugs()
    return [
        AlertCounts(slugs.get(channel_id, str(channel_id)), sent, failed)
        for channel_id, (sent, failed) in counts.items()
    ]


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
