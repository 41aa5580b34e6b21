"""The composition root: builds the engine, the store and the lifecycle from settings."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from app.config import Settings
from app.engine.checker import Checker
from app.engine.dispatcher import Dispatcher
from app.engine.transport import HttpLayer
from app.lifecycle.coordinator import ShutdownCoordinator
from app.store.memory import MemoryStore


@dataclass(eq=False)
class Services:
    settings: Settings
    store: MemoryStore
    http: HttpLayer
    dispatcher: Dispatcher
    coordinator: ShutdownCoordinator
    started_monotonic: float = field(default_factory=time.monotonic)

    @classmethod
    def build(cls, settings: Settings) -> Services:
        store = MemoryStore(settings.retention_max_jobs, settings.retention_max_age_s)
        http = HttpLayer(settings.user_agent)
        dispatcher = Dispatcher(
            store, Checker(http), workers=settings.workers, max_queued=settings.max_queued_checks
        )
        coordinator = ShutdownCoordinator(dispatcher, http, settings.shutdown_grace_s)
        return cls(settings, store, http, dispatcher, coordinator)

    def close(self) -> None:
        """After the drain: release the pool and the connections."""
        self.dispatcher.close()
        self.http.abort_in_flight()
        self.http.close()
