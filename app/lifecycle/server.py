"""`urlhealth serve` runs uvicorn's Server itself, so a signal reaches the coordinator at once.

uvicorn, on SIGTERM, stops listening, then waits for open connections to finish, and only then
runs the lifespan shutdown. A client streaming a job would keep its connection open until the
job ends on its own, so the drain starts here, the moment uvicorn begins shutting down, and the
streams end with their jobs' final states within the grace period.

Signals differ from uvicorn's own handling in two ways. A second SIGINT or SIGTERM is not
uvicorn's force exit (which skips the lifespan shutdown, so running checks would never report
and streams would end without their `end` line): it cuts the grace period short, and the drain
still gives every check its final state. And the signal is not raised again once the server
has stopped, so a clean drain exits 0 without a KeyboardInterrupt traceback (the CLI chooses
the exit status from the drain's outcome). The handler still only sets flags; the shutdown
coroutine acts on them.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from types import FrameType

import uvicorn

from app.lifecycle.coordinator import ShutdownCoordinator

log = logging.getLogger("urlhealth.lifecycle")

# How often the shutdown looks for a second signal (uvicorn's own loops tick at this rate).
_SIGNAL_POLL_S = 0.1


class Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, coordinator: ShutdownCoordinator) -> None:
        super().__init__(config)
        self._coordinator = coordinator
        self._signals = 0

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # Not uvicorn's: no force exit, and nothing kept to be raised again at the end.
        self._signals += 1
        self.should_exit = True

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            # Only now do the sockets listen: "ready" before this would be a promise.
            log.info("ready on %s", ", ".join(self._addresses()))

    def _addresses(self) -> list[str]:
        scheme = "https" if self.config.ssl else "http"
        addresses = []
        for server in getattr(self, "servers", ()):
            for sock in server.sockets:
                name = sock.getsockname()
                if sock.family == socket.AF_INET6:
                    addresses.append(f"{scheme}://[{name[0]}]:{name[1]}")
                elif sock.family == socket.AF_INET:
                    addresses.append(f"{scheme}://{name[0]}:{name[1]}")
                else:
                    addresses.append(str(name))
        return addresses

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self._coordinator.begin()
        # A shutdown a signal began is hurried by the second; any other, by the first.
        watcher = asyncio.create_task(self._hurry_on_signal(2 if self._signals else 1))
        try:
            await super().shutdown(sockets)
        finally:
            watcher.cancel()

    async def _hurry_on_signal(self, signals: int) -> None:
        while self._signals < signals:
            await asyncio.sleep(_SIGNAL_POLL_S)
        log.warning("a signal during shutdown: ending the grace period now")
        self._coordinator.hurry()
