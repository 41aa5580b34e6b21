"""`urlhealth serve` runs uvicorn's Server itself, so a signal reaches the coordinator at once.

uvicorn, on SIGTERM, stops listening, then waits for open connections to finish, and only then
runs the lifespan shutdown. A client streaming a job would keep its connection open until the
job ends on its own, so the drain starts here, the moment uvicorn begins shutting down, and the
streams end with their jobs' final states within the grace period. The signal handler itself
stays uvicorn's: it only sets a flag.
"""

from __future__ import annotations

import socket

import uvicorn

from app.lifecycle.coordinator import ShutdownCoordinator


class Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, coordinator: ShutdownCoordinator) -> None:
        super().__init__(config)
        self._coordinator = coordinator

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self._coordinator.begin()
        await super().shutdown(sockets)
