"""Phase timings, the address connected to and the HTTP version, measured on real loopback
connections. Only lower bounds and orderings are asserted: this machine is noisy."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme

from app.engine.checker import Checker
from app.engine.options import CheckOptions
from app.schemas.results import CheckResult, Timings
from tests.support.engine import make_http
from tests.support.servers import ThreadedUvicorn, refused_port
from tests.support.tls import ca_bundle, https_url, leaf_pem, tls_server


@pytest.fixture(scope="module")
def tls_ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def tls_target(
    tls_ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ThreadedUvicorn]:
    pem = leaf_pem(tls_ca, tmp_path_factory.mktemp("timings") / "server.pem", "127.0.0.1")
    with tls_server(pem) as server:
        yield server


@pytest.fixture
def checker(tls_ca: trustme.CA, tmp_path: Path) -> Iterator[Checker]:
    """A fresh HTTP layer per test: the first check of a host opens a new connection."""
    layer = make_http(ca_bundle=ca_bundle(tls_ca, tmp_path))
    yield Checker(layer)
    layer.close()


def check(checker: Checker, url: str, **options: Any) -> CheckResult:
    options.setdefault("timeout_s", 10.0)
    result = checker.check(url, CheckOptions(**options))
    assert result.ok is True, result.error
    return result


def timings(result: CheckResult) -> Timings:
    assert result.timings_ms is not None
    return result.timings_ms


def test_first_plain_http_check_times_connect_and_first_byte_but_no_tls(
    checker: Checker, target: ThreadedUvicorn
) -> None:
    result = check(checker, f"{target.url}/status/200")
    phases = timings(result)
    assert phases.dns >= 0
    assert phases.connect > 0
    assert phases.tls == 0
    assert phases.ttfb > 0
    assert phases.transfer >= 0
    assert phases.total >= phases.ttfb
    assert phases.total >= phases.connect + phases.ttfb
    assert result.elapsed_ms is not None
    assert phases.total <= result.elapsed_ms
    assert result.timings_all_hops_ms == phases  # no redirects: one hop


def test_first_https_check_times_the_tls_handshake(
    checker: Checker, tls_target: ThreadedUvicorn
) -> None:
    phases = timings(check(checker, https_url(tls_target)))
    assert phases.connect > 0
    assert phases.tls > 0
    assert phases.total >= phases.connect + phases.tls + phases.ttfb


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_second_check_of_a_host_reuses_the_connection_without_setup_time(
    checker: Checker, target: ThreadedUvicorn, tls_target: ThreadedUvicorn, scheme: str
) -> None:
    url = f"{target.url}/status/200" if scheme == "http" else https_url(tls_target)
    first = timings(check(checker, url))
    second = timings(check(checker, url))
    assert first.connect > 0
    assert (second.dns, second.connect, second.tls) == (0, 0, 0)
    assert second.ttfb > 0


def test_all_hops_timings_cover_at_least_the_final_hop(
    checker: Checker, target: ThreadedUvicorn
) -> None:
    result = check(checker, f"{target.url}/redirect/3")
    assert len(result.redirects) == 3
    final = timings(result)
    every = result.timings_all_hops_ms
    assert every is not None
    assert every.total >= final.total
    assert every.ttfb >= final.ttfb
    assert every.connect >= final.connect
    # Each hop's time counts: three redirects plus the final answer took more than it alone.
    assert every.ttfb > final.ttfb


def test_slow_server_shows_in_time_to_first_byte(checker: Checker, target: ThreadedUvicorn) -> None:
    phases = timings(check(checker, f"{target.url}/delay/300"))
    assert phases.ttfb >= 300
    assert phases.total >= phases.ttfb


def test_result_names_the_address_connected_to_and_the_http_version(
    checker: Checker, target: ThreadedUvicorn
) -> None:
    result = check(checker, f"{target.url}/status/200")
    assert result.remote_ip == "127.0.0.1"
    assert result.http_version == "HTTP/1.1"


def test_https_result_names_the_address_and_the_http_version(
    checker: Checker, tls_target: ThreadedUvicorn
) -> None:
    result = check(checker, https_url(tls_target))
    assert result.remote_ip == "127.0.0.1"
    assert result.http_version == "HTTP/1.1"


def test_head_check_has_timings_with_no_transfer_of_a_body(
    checker: Checker, target: ThreadedUvicorn
) -> None:
    phases = timings(check(checker, f"{target.url}/status/200", method="HEAD"))
    assert phases.ttfb > 0
    assert phases.total >= phases.ttfb


def test_failed_check_has_no_timings(checker: Checker) -> None:
    result = checker.check(f"http://127.0.0.1:{refused_port()}/", CheckOptions(timeout_s=5))
    assert result.ok is False
    assert result.timings_ms is None
    assert result.remote_ip is None
    assert result.http_version is None


def test_redirect_hops_on_one_host_reuse_one_connection(
    checker: Checker, target: ThreadedUvicorn
) -> None:
    # The checker is new to this test, so it holds no connection from an earlier one.
    result = check(checker, f"{target.url}/redirect/3")
    assert len(result.redirects) == 3
    final, every = timings(result), result.timings_all_hops_ms
    assert every is not None
    # The first hop connected; the small redirect bodies were read, so every later hop
    # reused that connection and the final hop needed no connect at all.
    assert every.connect > 0
    assert final.connect == 0
