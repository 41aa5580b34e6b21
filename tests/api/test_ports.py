"""The test servers never take the service's default port: the README's test command must
pass while the service from its first command is running."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator

from tests.conftest import RunningService, make_settings

DEFAULT_PORT = 8000


@contextlib.contextmanager
def _hold(port: int) -> Iterator[None]:
    """Listen on 127.0.0.1:port for the duration; if something else already holds it, the
    port is taken all the same."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # As uvicorn does: connections of an earlier run in TIME_WAIT must not keep us out.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        with contextlib.suppress(OSError):
            sock.bind(("127.0.0.1", port))
            sock.listen(1)
        yield
    finally:
        sock.close()


def test_a_service_from_make_settings_starts_while_port_8000_is_taken() -> None:
    with _hold(DEFAULT_PORT):
        svc = RunningService(make_settings())
        try:
            assert svc.server.port != DEFAULT_PORT
            assert svc.services.settings.port == svc.server.port
            assert svc.client.get("/healthz").status_code == 200
        finally:
            svc.close()
