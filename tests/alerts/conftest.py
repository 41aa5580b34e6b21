"""Alert tests run against memory://, an SQLite file and PostgreSQL, with a real webhook
receiver on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.alerts import Receiver
from tests.support.backends import BACKENDS, url_for
from tests.support.monitors import HistoryStore, history_store


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[HistoryStore]:
    with history_store(url_for(request.param, tmp_path, request), tmp_path) as opened:
        yield opened


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    started = Receiver()
    yield started
    started.stop()


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10.0, trust_env=False) as client:
        yield client
