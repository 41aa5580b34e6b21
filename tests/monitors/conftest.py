"""The history tests run against memory://, an SQLite file and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.backends import BACKENDS, url_for
from tests.support.monitors import HistoryStore, history_store


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[HistoryStore]:
    with history_store(url_for(request.param, tmp_path, request), tmp_path) as opened:
        yield opened
