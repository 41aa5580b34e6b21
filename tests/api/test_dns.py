"""Name resolution through the whole service: one job's slow names do not starve another job,
and many checks of one name make one lookup.

No lookup leaves the machine. The starvation test runs the production resolver (the one
Services builds) over a stand-in getaddrinfo: the one place a stand-in is needed, since no DNS
server can be pointed at without leaving loopback. Names it does not know are an error; IP
literals (which every socket connect passes through getaddrinfo) go to the real one, which
parses them without a query.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from ipaddress import ip_address
from typing import Any

import pytest

from app.engine.resolver import IPAddress, StaticResolver
from tests.conftest import RunningService
from tests.support.api import submit, wait_final
from tests.support.destination import guard
from tests.support.servers import ThreadedUvicorn

ServiceFactory = Callable[..., RunningService]

SLOW_NAMES = [f"slow-{n}.test" for n in range(40)]


class SlowDns:
    """A getaddrinfo whose `slow-*.test` names answer only when released (bounded), and whose
    `fast.test` answers 127.0.0.1 at once."""

    def __init__(self, real: Callable[..., Any]) -> None:
        self._real = real
        self.released = threading.Event()
        self._lock = threading.Lock()
        self.slow_started = 0

    def __call__(self, host: str, port: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            ip_address(host)
        except ValueError:
            pass
        else:
            return self._real(host, port, *args, **kwargs)
        if host == "fast.test":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port or 0))]
        if host.startswith("slow-") and host.endswith(".test"):
            with self._lock:
                self.slow_started += 1
            self.released.wait(30)
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port or 0))]
        raise socket.gaierror(socket.EAI_NONAME, f"{host}: not known to this test")


@pytest.fixture
def slow_dns(monkeypatch: pytest.MonkeyPatch) -> Iterator[SlowDns]:
    fake = SlowDns(socket.getaddrinfo)
    monkeypatch.setattr(socket, "getaddrinfo", fake)
    yield fake
    fake.released.set()  # lets the lookup threads end before the next test


def test_one_jobs_slow_names_do_not_starve_another_jobs_lookups(
    service_factory: ServiceFactory, target: ThreadedUvicorn, slow_dns: SlowDns
) -> None:
    # Enough workers that every slow check really is waiting in DNS at once.
    svc = service_factory(workers=64, adaptive_concurrency=False)
    hog = submit(svc.client, [f"http://{name}:{target.port}/status/200" for name in SLOW_NAMES])
    # Whatever share of the lookup slots the hog may take, it has taken it.
    assert wait_until_stable(lambda: slow_dns.slow_started)

    polite = submit(svc.client, [f"http://fast.test:{target.port}/status/200"], timeout_s=8)
    done = wait_final(svc.client, polite["id"])

    [result] = done["results"]
    assert result["ok"] is True, result["error"]
    slow_dns.released.set()
    assert wait_final(svc.client, hog["id"], timeout=40)["status"] == "done"


def wait_until_stable(count: Callable[[], int]) -> bool:
    """True once `count()` is positive and has not grown for half a second (bounded)."""
    pause = threading.Event()
    last, same = -1, 0
    for _ in range(200):
        now = count()
        same = same + 1 if now == last and now > 0 else 0
        if same >= 10:
            return True
        last = now
        pause.wait(0.05)
    return False


class CountingResolver(StaticResolver):
    """StaticResolver whose calls may come from many threads at once."""

    def __init__(self, mapping: dict[str, list[str]]) -> None:
        super().__init__(mapping)
        self._lock = threading.Lock()
        self.count = 0

    def resolve(self, host: str, port: int, timeout: float) -> list[IPAddress]:
        with self._lock:
            self.count += 1
        return super().resolve(host, port, timeout)


def test_a_job_of_200_urls_on_one_name_makes_one_lookup(
    service_factory: ServiceFactory, target: ThreadedUvicorn
) -> None:
    resolver = CountingResolver({"one.test": ["127.0.0.1"]})
    svc = service_factory(resolver=resolver)
    urls = [f"http://one.test:{target.port}/status/200?n={n}" for n in range(200)]

    done = wait_final(svc.client, submit(svc.client, urls)["id"], timeout=60)

    assert done["summary"]["up"] == 200
    assert resolver.count == 1


def test_a_cached_answer_is_judged_by_the_policy_at_every_connect(
    service_factory: ServiceFactory,
) -> None:
    # The name was looked up once; each check is still refused, none connects.
    resolver = CountingResolver({"private.test": ["10.0.0.1"]})
    svc = service_factory(resolver=resolver, allowed_networks=())
    connects = guard(svc.services.http)
    urls = [f"http://private.test/{n}" for n in range(20)]

    done = wait_final(svc.client, submit(svc.client, urls)["id"])

    assert done["summary"]["errors"] == {"blocked": 20}
    assert all("private (10.0.0.0/8)" in r["error"]["message"] for r in done["results"])
    assert connects.connects == []
    assert resolver.count == 1
